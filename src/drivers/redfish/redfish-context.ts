// What every Redfish operation module needs: the HTTP client, the system locator and the
// task-polling policy. Built once by createRedfishDriver and passed down, so each part
// (power.ts, boot.ts, …) stays a handful of plain functions.
import type { RedfishClient } from './redfish-client.js';
import type { SystemLocator } from './system-locator.js';

export interface TaskPolling {
  /** Wait between polls of a task monitor when it sends no Retry-After (default 1 s). */
  intervalMs: number;
  /** Give up waiting for a task after this long (default 120 s); the caller retries later. */
  timeoutMs: number;
  sleep: (ms: number) => Promise<void>;
  now: () => number;
}

export interface RedfishContext {
  client: RedfishClient;
  locator: SystemLocator;
  tasks: TaskPolling;
}

/** Reads `obj[a][b]…` from untyped JSON without throwing. */
export function pick(obj: unknown, ...keys: string[]): unknown {
  let current: unknown = obj;
  for (const key of keys) {
    if (!current || typeof current !== 'object') return undefined;
    current = (current as Record<string, unknown>)[key];
  }
  return current;
}

export function pickString(obj: unknown, ...keys: string[]): string | undefined {
  const v = pick(obj, ...keys);
  return typeof v === 'string' ? v : undefined;
}

export function pickNumber(obj: unknown, ...keys: string[]): number | undefined {
  const v = pick(obj, ...keys);
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/** The `@odata.id` of a navigation property such as `Bios` or `Links.ManagedBy[0]`. */
export function linkOf(obj: unknown, ...keys: string[]): string | undefined {
  const v = pick(obj, ...keys);
  const id = pickString(Array.isArray(v) ? v[0] : v, '@odata.id');
  return id;
}
