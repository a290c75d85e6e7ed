// The loop the tenancy controllers share: level-based, like controller-runtime's
// reconcilers. A pass re-reads everything from the store and moves each object one step
// towards what its spec asks for; nothing is remembered between passes, so a pass may be
// repeated, interrupted, or run in several processes at once (the store's UNIQUE bindings and
// allocations and optimistic resourceVersions arbitrate).
//
// A pass runs every `pollMs` (other processes' writes are only seen by polling) and also soon
// after a commit of this process's store (store.onCommittedChange). Passes never overlap: a
// wake-up during a pass schedules exactly one more pass after it.
import { IngotError } from '../model/errors.js';
import type { Store, StoredResource } from '../store/store.js';

/** Same shape as the conductor's HandlerLog, so one pino adapter serves both. */
export interface ControllerLog {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export const SILENT_CONTROLLER_LOG: ControllerLog = { info: () => {}, warn: () => {}, error: () => {} };

export interface TenancyController {
  /** Starts polling (and listening for this process's commits). Idempotent. */
  start(): void;
  /** Stops the loop; resolves once a pass in progress has finished. */
  stop(): Promise<void>;
  /** One full pass over every object; for tests and for callers that drive their own loop. */
  reconcileOnce(): Promise<void>;
}

export const DEFAULT_POLL_MS = 1000;

export function createReconcileLoop(opts: { store: Store; pollMs?: number; log: ControllerLog; name: string; pass: () => Promise<void> }): TenancyController {
  const pollMs = opts.pollMs ?? DEFAULT_POLL_MS;
  if (!Number.isFinite(pollMs) || pollMs < 10) throw new Error(`${opts.name}: pollMs must be at least 10 ms, got ${pollMs}`);
  // Commits come in bursts (the conductor in the same process writes host status often): a
  // wake-up waits until at least `gap()` after the last pass ended, so a busy process runs
  // passes spaced out instead of back to back. The gap grows with the pass's own cost (twice
  // its last duration, up to pollMs), so a controller with thousands of objects keeps at most
  // about a third of the event loop it shares with the API and the conductor.
  const minGapMs = Math.min(pollMs, 100);
  let lastDurationMs = 0;
  const gap = (): number => Math.min(pollMs, Math.max(minGapMs, 2 * lastDurationMs));
  let running = false;
  let timer: NodeJS.Timeout | undefined;
  let unsubscribe: (() => void) | undefined;
  let current: Promise<void> | undefined;
  let wokenDuringPass = false;
  let lastEnd = 0;

  const schedule = (delayMs: number): void => {
    if (timer !== undefined) clearTimeout(timer);
    timer = setTimeout(kick, Math.max(0, delayMs));
  };

  function kick(): void {
    timer = undefined;
    if (!running || current !== undefined) return;
    wokenDuringPass = false;
    const startedAt = Date.now();
    current = opts
      .pass()
      .catch((error: unknown) => opts.log.error(`${opts.name} pass failed`, { error: String(error) }))
      .finally(() => {
        current = undefined;
        lastEnd = Date.now();
        lastDurationMs = lastEnd - startedAt;
        if (running) schedule(wokenDuringPass ? gap() : pollMs);
      });
  }

  return {
    start() {
      if (running) return;
      running = true;
      // A commit of ours may be our own status write; the next pass then finds nothing to do
      // and writes nothing, so this cannot spin.
      unsubscribe = opts.store.onCommittedChange(() => {
        if (!running) return;
        if (current !== undefined) {
          wokenDuringPass = true;
          return;
        }
        // Deferred (listeners run inside the store's commit path) and spaced out.
        schedule(lastEnd + gap() - Date.now());
      });
      schedule(0);
      opts.log.info(`${opts.name} started`, { pollMs });
    },
    async stop() {
      running = false;
      unsubscribe?.();
      unsubscribe = undefined;
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      await current;
    },
    reconcileOnce: () => opts.pass(),
  };
}

/** Every row of `kind` (all projects when `project` is undefined), through all pages. */
export async function listAll(store: Store, kind: string, project?: string): Promise<StoredResource[]> {
  const items: StoredResource[] = [];
  let cursor: string | undefined;
  do {
    const page = await store.list({ kind, limit: 1000, ...(project !== undefined ? { project } : {}), ...(cursor ? { continue: cursor } : {}) });
    items.push(...page.items);
    cursor = page.continue;
  } while (cursor);
  return items;
}

/** Oldest first: createdAt, then name (then project, so the order is total). */
export function byCreation(a: StoredResource, b: StoredResource): number {
  return cmp(a.createdAt, b.createdAt) || cmp(a.name, b.name) || cmp(a.project, b.project);
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function isConflict(error: unknown): boolean {
  return error instanceof IngotError && error.code === 'INGOT_ERR_CONFLICT';
}

export function isNotFound(error: unknown): boolean {
  return error instanceof IngotError && error.code === 'INGOT_ERR_NOT_FOUND';
}

/** JSON equality that ignores key order (statuses are compared before writing). */
export function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}

function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>)
        .filter(([, v]) => v !== undefined)
        .sort(([a], [b]) => cmp(a, b))
        .map(([k, v]) => [k, canonical(v)]),
    );
  }
  return value;
}
