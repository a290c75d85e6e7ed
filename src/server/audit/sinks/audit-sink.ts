// Where audit events go besides the database. The database append is the record (and is
// awaited); sinks are copies and notifications, so their contract is "never block, never
// throw": each method only queues, and delivery problems are logged and counted.
import type { StoredAuditEvent } from '../../../model/audit-event.js';
import type { AlertMessage } from '../alert-rules.js';

export interface AuditSinkStats {
  /** Messages waiting (including one being delivered). */
  queued: number;
  delivered: number;
  /** Dropped because the queue was full (oldest first). */
  dropped: number;
  /** Given up on after retries, or refused permanently. */
  failed: number;
}

export interface AuditSink {
  readonly name: string;
  /** Queues one appended event. Returns at once; never throws. */
  sendEvent(event: StoredAuditEvent): void;
  /** Queues a matched alert; sinks without it do not receive alerts. */
  sendAlert?(alert: AlertMessage): void;
  stats(): AuditSinkStats;
  /** Resolves true when everything queued so far was handled, false if timeoutMs passed first. */
  flush(timeoutMs?: number): Promise<boolean>;
  /** Stops accepting messages, tries to deliver what is queued within timeoutMs, then gives up. */
  close(timeoutMs?: number): Promise<void>;
}

/** Logs without credentials or query strings: `https://hooks.example.com/audit`. */
export function describeUrl(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}

/** Resolves after ms, or at once when the signal aborts; the timer never keeps the process alive. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    timer.unref();
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Waits until check() holds, polling every few ms, up to timeoutMs. */
export async function waitUntil(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() >= deadline) return false;
    await sleep(5);
  }
  return true;
}
