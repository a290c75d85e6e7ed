// The work queue carries the concurrency rules (after controller-runtime's workqueue):
// - a key (a host uid) is queued at most once: adding it again while it waits is a no-op;
// - a key never runs in two workers: added while running, it runs again once the run ends;
// - a delayed add keeps only the earliest due time;
// - at most `workers` keys run at once.
// Processes coordinate through the database lease instead (see conductor.ts).
import type { Clock, TimerHandle } from './clock.js';

export interface ProcessResult {
  /** Run the key again after this many milliseconds (0: as soon as a worker is free). */
  requeueAfterMs?: number;
}

export interface WorkQueueOptions {
  workers: number;
  clock: Clock;
  /** Handles one key; exceptions are the caller's to prevent (they are logged and dropped here). */
  process: (key: string) => Promise<ProcessResult>;
  onError?: (key: string, error: unknown) => void;
}

export class WorkQueue {
  readonly #options: WorkQueueOptions;
  /** Keys ready to run, in arrival order; mirrored by #queued for O(1) dedupe. */
  readonly #ready: string[] = [];
  readonly #queued = new Set<string>();
  readonly #running = new Set<string>();
  /** Keys added while running: they go back to #ready when their run ends. */
  readonly #dirty = new Set<string>();
  readonly #delayed = new Map<string, { due: number; timer: TimerHandle }>();
  readonly #idleWaiters: Array<() => void> = [];
  #stopped = false;

  constructor(options: WorkQueueOptions) {
    if (!Number.isInteger(options.workers) || options.workers < 1) throw new RangeError('workers must be a positive integer');
    this.#options = options;
  }

  /** Queues key to run as soon as a worker is free. */
  add(key: string): void {
    if (this.#stopped) return;
    const delayed = this.#delayed.get(key);
    if (delayed) {
      delayed.timer.cancel();
      this.#delayed.delete(key);
    }
    if (this.#running.has(key)) {
      this.#dirty.add(key);
      return;
    }
    if (this.#queued.has(key)) return;
    this.#queued.add(key);
    this.#ready.push(key);
    this.#pump();
  }

  /** Queues key after ms; if it is already due earlier (queued or delayed), the earlier time wins. */
  addAfter(key: string, ms: number): void {
    if (this.#stopped) return;
    if (ms <= 0) return this.add(key);
    if (this.#queued.has(key) || this.#dirty.has(key)) return;
    const due = this.#options.clock.now() + ms;
    const existing = this.#delayed.get(key);
    if (existing && existing.due <= due) return;
    existing?.timer.cancel();
    const timer = this.#options.clock.setTimeout(() => {
      const current = this.#delayed.get(key);
      if (current?.timer !== timer) return;
      this.#delayed.delete(key);
      this.add(key);
    }, ms);
    this.#delayed.set(key, { due, timer });
  }

  /** Removes a waiting or delayed key (e.g. the host was deleted); a running one finishes. */
  forget(key: string): void {
    this.#delayed.get(key)?.timer.cancel();
    this.#delayed.delete(key);
    this.#dirty.delete(key);
    if (this.#queued.delete(key)) this.#ready.splice(this.#ready.indexOf(key), 1);
  }

  get length(): number {
    return this.#ready.length;
  }

  get running(): number {
    return this.#running.size;
  }

  /** Due time of a delayed key, for tests and `ingot host` diagnostics. */
  dueAt(key: string): number | undefined {
    return this.#delayed.get(key)?.due;
  }

  isRunning(key: string): boolean {
    return this.#running.has(key);
  }

  /** Stops taking work, drops what waits, and resolves once running keys have finished. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const { timer } of this.#delayed.values()) timer.cancel();
    this.#delayed.clear();
    this.#ready.length = 0;
    this.#queued.clear();
    this.#dirty.clear();
    await this.idle();
  }

  /** Resolves when nothing runs and nothing is ready (delayed keys may remain). */
  idle(): Promise<void> {
    if (this.#running.size === 0 && this.#ready.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  #pump(): void {
    while (!this.#stopped && this.#running.size < this.#options.workers && this.#ready.length > 0) {
      const key = this.#ready.shift()!;
      this.#queued.delete(key);
      this.#running.add(key);
      void this.#run(key);
    }
    if (this.#running.size === 0 && this.#ready.length === 0) {
      for (const resolve of this.#idleWaiters.splice(0)) resolve();
    }
  }

  async #run(key: string): Promise<void> {
    let result: ProcessResult = {};
    try {
      result = await this.#options.process(key);
    } catch (error) {
      this.#options.onError?.(key, error);
    }
    this.#running.delete(key);
    if (this.#dirty.delete(key)) {
      this.add(key);
    } else if (result.requeueAfterMs !== undefined) {
      this.addAfter(key, result.requeueAfterMs);
    }
    this.#pump();
  }
}
