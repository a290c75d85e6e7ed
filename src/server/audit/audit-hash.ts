// Verifying the audit hash chain. The hash itself is defined once, in
// src/model/audit-event.ts (the store computes it when appending); this file re-exports it and
// adds the verifier behind `ingot audit verify`.
//
// What each check catches (docs/audit.md):
// - seq not one more than the previous seq: rows deleted (a gap) or moved (out of order);
// - prevHash not equal to the previous event's hash: a row inserted, removed or reordered,
//   or the previous row edited and re-hashed by someone without the rest of the chain;
// - hash not equal to the hash recomputed from the row: the row itself was edited;
// - the last event not equal to the recorded head: the tail was deleted.
import { AUDIT_GENESIS_HASH, auditEventHash, canonicalJson, type AuditHead, type StoredAuditEvent } from '../../model/audit-event.js';
import type { Store } from '../../store/store.js';

export { AUDIT_GENESIS_HASH, AUDIT_HASH_VERSION, auditEventHash, canonicalJson } from '../../model/audit-event.js';

export type AuditChainProblem = 'seq-gap' | 'seq-order' | 'prev-hash-mismatch' | 'hash-mismatch' | 'head-mismatch';

export type AuditChainVerdict =
  | { ok: true; count: number; head: AuditHead }
  | { ok: false; seq: number; id: string; problem: AuditChainProblem; message: string; count: number };

export interface VerifyOptions {
  /**
   * The head recorded beside the chain (Store.getAuditHead), or one kept elsewhere (the JSONL
   * file, the webhook receiver). Without it a deleted tail cannot be noticed.
   */
  expectedHead?: AuditHead;
  /** Verify a slice that starts after this event instead of at the genesis. */
  startAfter?: AuditHead;
}

/**
 * Walks events in seq order and names the FIRST bad one. `count` is the number of events
 * checked (on failure: those before the bad one).
 */
export async function verifyAuditChain(
  events: AsyncIterable<StoredAuditEvent> | Iterable<StoredAuditEvent>,
  options: VerifyOptions = {},
): Promise<AuditChainVerdict> {
  let prevSeq = options.startAfter?.seq ?? 0;
  let prevHash = options.startAfter?.hash ?? AUDIT_GENESIS_HASH;
  let count = 0;
  const fail = (event: StoredAuditEvent, problem: AuditChainProblem, message: string): AuditChainVerdict => ({
    ok: false,
    seq: event.seq,
    id: event.id,
    problem,
    message: `audit event seq ${event.seq} (id ${event.id}): ${message}`,
    count,
  });
  for await (const event of events) {
    if (event.seq < prevSeq + 1) {
      return fail(event, 'seq-order', `comes after seq ${prevSeq}: events were reordered or duplicated`);
    }
    if (event.seq > prevSeq + 1) {
      const missing = event.seq === prevSeq + 2 ? `seq ${prevSeq + 1} is` : `seq ${prevSeq + 1} to ${event.seq - 1} are`;
      return fail(event, 'seq-gap', `${missing} missing: events were deleted`);
    }
    if (event.prevHash !== prevHash) {
      const previous = prevSeq === 0 ? 'the genesis value (64 zeros)' : `the hash of seq ${prevSeq}`;
      return fail(event, 'prev-hash-mismatch', `prevHash does not match ${previous}: an event before it was deleted, inserted, reordered, or edited and re-hashed`);
    }
    const { hash, ...content } = event;
    if (auditEventHash(content) !== hash) {
      return fail(event, 'hash-mismatch', 'its contents do not match its hash: the event was edited');
    }
    prevSeq = event.seq;
    prevHash = hash;
    count += 1;
  }
  const head = { seq: prevSeq, hash: prevHash };
  const expected = options.expectedHead;
  if (expected !== undefined && (expected.seq !== head.seq || expected.hash !== head.hash)) {
    const message =
      expected.seq > head.seq
        ? `the chain ends at seq ${head.seq} but the recorded head is seq ${expected.seq}: events after seq ${head.seq} were deleted`
        : `the chain ends at seq ${head.seq} (hash ${head.hash.slice(0, 12)}…) but the recorded head is seq ${expected.seq} (hash ${expected.hash.slice(0, 12)}…): the head or the tail was tampered with`;
    return { ok: false, seq: expected.seq > head.seq ? head.seq + 1 : head.seq, id: '', problem: 'head-mismatch', message, count };
  }
  return { ok: true, count, head };
}

/** Stored events after `afterSeq`, oldest first, a page at a time (memory stays bounded on long chains). */
export async function* storedAuditEvents(store: Store, options: { afterSeq?: number; pageSize?: number } = {}): AsyncGenerator<StoredAuditEvent> {
  const pageSize = options.pageSize ?? 1000;
  let afterSeq = options.afterSeq ?? 0;
  for (;;) {
    const page = await store.listAuditEvents({ limit: pageSize, afterSeq });
    yield* page;
    if (page.length < pageSize) return;
    afterSeq = (page[page.length - 1] as StoredAuditEvent).seq;
  }
}

/** How many times verify catches up with events appended while it walked, before it gives up on a busy chain. */
const MAX_CATCH_UP_ROUNDS = 10;

/**
 * `ingot audit verify`: the whole stored chain, then its end against the head recorded
 * beside it. Events appended while the walk runs are walked too (the head moved on because
 * the chain grew); a head ahead of a chain that did not grow means a deleted tail.
 */
export async function verifyStoredAuditChain(store: Store, options: { pageSize?: number } = {}): Promise<AuditChainVerdict> {
  let position: AuditHead = { seq: 0, hash: AUDIT_GENESIS_HASH };
  let total = 0;
  for (let round = 0; ; round++) {
    const verdict = await verifyAuditChain(storedAuditEvents(store, { afterSeq: position.seq, ...options }), { startAfter: position });
    if (!verdict.ok) return { ...verdict, count: total + verdict.count };
    total += verdict.count;
    position = verdict.head;
    const head = await store.getAuditHead();
    if (head.seq === position.seq && head.hash === position.hash) return { ok: true, count: total, head: position };
    if (verdict.count > 0 && head.seq > position.seq && round < MAX_CATCH_UP_ROUNDS) continue;
    const end = await verifyAuditChain([], { startAfter: position, expectedHead: head });
    return end.ok ? { ok: true, count: total, head: position } : { ...end, count: total };
  }
}

/** A one-line, stable fingerprint of a chain position, for operators to keep outside the database. */
export function describeHead(head: AuditHead): string {
  return canonicalJson({ seq: head.seq, hash: head.hash });
}
