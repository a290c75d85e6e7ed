// The audit writer: the one way events enter the audit trail. The database append is awaited
// (an event must not be lost: if it cannot be stored, the caller's request fails); then the
// event fans out to the sinks, which only queue and never block, and the alert rules run.
import type { NewAuditEvent, StoredAuditEvent } from '../../model/audit-event.js';
import type { Store } from '../../store/store.js';
import { alertMessage, evaluateAlertRules, type AlertRule } from './alert-rules.js';
import type { AuditSink } from './sinks/audit-sink.js';

export interface AuditWriterOptions {
  store: Store;
  sinks?: readonly AuditSink[];
  alertRules?: readonly AlertRule[];
  log?: (message: string) => void;
}

export interface AuditWriter {
  /** Appends the event in its own transaction, then publishes it. */
  record(event: NewAuditEvent): Promise<StoredAuditEvent>;
  /**
   * Appends inside the caller's transaction, so a write and its audit event commit or roll
   * back together. Call publish() with the result after the transaction commits.
   */
  appendIn(tx: Store, event: NewAuditEvent): Promise<StoredAuditEvent>;
  /** Sends a committed event to the sinks and evaluates the alert rules. Never throws. */
  publish(event: StoredAuditEvent): void;
  /** Replaces the alert rules (e.g. after the rules file was edited). */
  setAlertRules(rules: readonly AlertRule[]): void;
  /** Waits for every sink to drain; true if all did within timeoutMs. */
  flush(timeoutMs?: number): Promise<boolean>;
  close(timeoutMs?: number): Promise<void>;
}

export function createAuditWriter(options: AuditWriterOptions): AuditWriter {
  const { store } = options;
  const sinks = [...(options.sinks ?? [])];
  const log = options.log ?? (() => {});
  let rules = [...(options.alertRules ?? [])];

  function publish(event: StoredAuditEvent): void {
    for (const sink of sinks) {
      try {
        sink.sendEvent(event);
      } catch (error) {
        log(`audit sink ${sink.name} failed to queue event seq ${event.seq}: ${(error as Error).message}`);
      }
    }
    let matched: AlertRule[];
    try {
      matched = evaluateAlertRules(rules, event);
    } catch (error) {
      log(`audit alert rules failed on event seq ${event.seq}: ${(error as Error).message}`);
      return;
    }
    for (const rule of matched) {
      // The log carries the alert too, so it is seen even without a webhook.
      log(`audit alert "${rule.name}" (${rule.severity}): ${event.action} ${event.outcome} by ${event.actor} on ${event.target.kind} ${event.target.name} (event seq ${event.seq})`);
      const message = alertMessage(rule, event);
      for (const sink of sinks) {
        if (sink.sendAlert === undefined) continue;
        try {
          sink.sendAlert(message);
        } catch (error) {
          log(`audit sink ${sink.name} failed to queue alert "${rule.name}": ${(error as Error).message}`);
        }
      }
    }
  }

  return {
    async record(event) {
      const stored = await store.appendAuditEvent(event);
      publish(stored);
      return stored;
    },
    appendIn(tx, event) {
      return tx.appendAuditEvent(event);
    },
    publish,
    setAlertRules(next) {
      rules = [...next];
    },
    async flush(timeoutMs = 30_000) {
      const results = await Promise.all(sinks.map((s) => s.flush(timeoutMs)));
      return results.every(Boolean);
    },
    async close(timeoutMs = 5_000) {
      await Promise.all(sinks.map((s) => s.close(timeoutMs).catch((error: unknown) => log(`closing audit sink ${s.name} failed: ${(error as Error).message}`))));
    },
  };
}
