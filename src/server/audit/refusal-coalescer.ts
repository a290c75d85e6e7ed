// Refusals repeated by one caller (the same actor, address, action, target and reason) would
// otherwise cost one audit row each: 600 refused DELETEs in a second are 600 writes the caller
// chose to cause. The first refusal of a kind is recorded at once, as always; identical ones
// within `windowMs` are counted in memory and recorded as one event carrying `repeatCount`
// when the window ends (or the server closes). Events keep their chain order: a summary is
// appended when written, after whatever else happened meanwhile.
import type { NewAuditEvent } from '../../model/audit-event.js';
import { canonicalJson } from '../../model/audit-event.js';
import type { AuditWriter } from './audit-writer.js';

export interface RefusalCoalescerOptions {
  audit: AuditWriter;
  /** How long identical refusals are counted before their summary is written; default 60 s. */
  windowMs?: number;
  /** Kinds tracked at once; beyond, the oldest is written out early. Default 10,000. */
  maxKinds?: number;
  now?: () => number;
  /** Where failures of background writes go (a summary must not crash the server). */
  onError?: (err: unknown) => void;
}

export interface RefusalCoalescer {
  /** Records a refusal: at once if it is the first of its kind in the window, else counted. */
  record(event: NewAuditEvent): Promise<void>;
  /** Writes the summaries of windows that have ended (all of them with `all`). */
  flush(all?: boolean): Promise<void>;
  /** Writes every pending summary and stops the timer. */
  close(): Promise<void>;
}

interface Pending {
  windowStart: number;
  repeats: number;
  last: NewAuditEvent;
}

/** What makes two refusals "identical": everything but the request id and time. */
function kindOf(event: NewAuditEvent): string {
  const { actor, roles, project, sourceAddress, action, target, outcome, reason } = event;
  return canonicalJson({ actor, roles, project, sourceAddress, action, target, outcome, reason });
}

export function createRefusalCoalescer(options: RefusalCoalescerOptions): RefusalCoalescer {
  const windowMs = options.windowMs ?? 60_000;
  const maxKinds = options.maxKinds ?? 10_000;
  const now = options.now ?? Date.now;
  const onError = options.onError ?? (() => {});
  const pending = new Map<string, Pending>();

  async function writeSummary(entry: Pending): Promise<void> {
    if (entry.repeats === 0) return;
    const { time: _time, id: _id, ...rest } = entry.last;
    await options.audit.record({ ...rest, repeatCount: entry.repeats });
  }

  async function flush(all = false): Promise<void> {
    const t = now();
    const due: Pending[] = [];
    for (const [kind, entry] of pending) {
      if (all || t - entry.windowStart >= windowMs) {
        pending.delete(kind);
        due.push(entry);
      }
    }
    for (const entry of due) await writeSummary(entry);
  }

  const timer = setInterval(() => void flush().catch(onError), Math.max(1_000, Math.floor(windowMs / 2)));
  timer.unref();

  return {
    async record(event) {
      const kind = kindOf(event);
      const t = now();
      const entry = pending.get(kind);
      if (entry && t - entry.windowStart < windowMs) {
        entry.repeats++;
        entry.last = event;
        return;
      }
      if (entry) {
        pending.delete(kind);
        await writeSummary(entry);
      }
      await options.audit.record(event);
      pending.set(kind, { windowStart: t, repeats: 0, last: event });
      if (pending.size > maxKinds) {
        const [oldestKind, oldest] = pending.entries().next().value as [string, Pending];
        pending.delete(oldestKind);
        await writeSummary(oldest);
      }
    },
    flush,
    async close() {
      clearInterval(timer);
      await flush(true);
    },
  };
}
