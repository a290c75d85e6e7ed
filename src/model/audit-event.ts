// The audit event (DESIGN.md "Security, by design") and the one definition of its
// hash. It lives in model/ because both the store (which computes each event's hash inside
// the appending transaction) and server/audit (which verifies the chain) need the exact same
// bytes, and store/ may not depend on server/.
//
// Hash format, version 1 (docs/audit.md): SHA-256, lower-case hex, of the canonical JSON
// (keys sorted by UTF-16 code unit, no whitespace, undefined members left out) of
//   {v: 1, seq, id, time, actor, roles, project, sourceAddress, requestId, action,
//    target: {kind, project, name}, outcome, reason, changes, repeatCount?, prevHash}
// where repeatCount is present only when the event stands for 2 or more identical ones,
// where prevHash is the previous event's hash, or 64 zeros for the first event.
import { createHash } from 'node:crypto';

export const AUDIT_OUTCOMES = ['allowed', 'denied', 'failed', 'succeeded'] as const;
export type AuditOutcome = (typeof AUDIT_OUTCOMES)[number];

/** prevHash of the first event in a chain. */
export const AUDIT_GENESIS_HASH = '0'.repeat(64);
export const AUDIT_HASH_VERSION = 1;

/** What an event acted on; empty strings when there is no resource (e.g. a failed login). */
export interface AuditTarget {
  kind: string;
  /** '' for platform-scoped resources. */
  project: string;
  name: string;
}

/** One changed field. Secret-bearing fields carry "[redacted]" instead of values (redact.ts). */
export interface AuditChange {
  /** Dotted path, e.g. `spec.bmc.address`, `metadata.labels["ingot.dev/rack"]`, `spec.networks[0]`. */
  path: string;
  /** Absent when the field was added. */
  before?: unknown;
  /** Absent when the field was removed. */
  after?: unknown;
}

/** What a caller hands to Store.appendAuditEvent; the store assigns seq, prevHash and hash. */
export interface NewAuditEvent {
  /** uuid; generated when absent. */
  id?: string;
  /** ISO 8601; now when absent. */
  time?: string;
  /** Who: a token id, `anonymous` for a failed authentication, `system:conductor`, … */
  actor: string;
  roles: readonly string[];
  /** The actor's project ('' for platform identities). */
  project?: string;
  sourceAddress?: string;
  requestId?: string;
  /** A policy action (`host:update`) or an event name (`auth:failed`, `secret:use`). */
  action: string;
  target?: Partial<AuditTarget>;
  outcome: AuditOutcome;
  /** Why, for denied/failed outcomes: an error code or a short message (never a secret). */
  reason?: string;
  changes?: readonly AuditChange[];
  /** This event stands for this many identical ones (refusals repeated within a window); absent means 1. */
  repeatCount?: number;
}

export interface StoredAuditEvent {
  /** Position in the chain, 1, 2, 3, … without gaps. */
  seq: number;
  id: string;
  time: string;
  actor: string;
  roles: string[];
  project: string;
  sourceAddress: string;
  requestId: string;
  action: string;
  target: AuditTarget;
  outcome: AuditOutcome;
  reason: string;
  changes: AuditChange[];
  /** Present (>= 2) when the event stands for that many identical ones. */
  repeatCount?: number;
  prevHash: string;
  hash: string;
}

/** The chain's head as the store records it (seq 0 and the genesis hash when empty). */
export interface AuditHead {
  seq: number;
  hash: string;
}

/**
 * JSON with object keys sorted and no whitespace, so one value has one serialization.
 * Follows JSON.stringify for everything else (undefined members dropped, undefined in arrays
 * and non-finite numbers become null). JSON.stringify itself cannot be used on a sorted copy:
 * it always puts integer-like keys ("10", "2") first, in numeric order.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') return Number.isFinite(value) ? JSON.stringify(value) : 'null';
  if (typeof value === 'bigint') throw new TypeError('canonicalJson: bigint is not JSON');
  if (Array.isArray(value)) {
    return `[${value.map((item) => (item === undefined || typeof item === 'function' || typeof item === 'symbol' ? 'null' : canonicalJson(item))).join(',')}]`;
  }
  if (typeof value === 'object') {
    const withToJson = value as { toJSON?: () => unknown };
    if (typeof withToJson.toJSON === 'function') return canonicalJson(withToJson.toJSON());
    const record = value as Record<string, unknown>;
    const members: string[] = [];
    for (const key of Object.keys(record).sort()) {
      const member = record[key];
      if (member === undefined || typeof member === 'function' || typeof member === 'symbol') continue;
      members.push(`${JSON.stringify(key)}:${canonicalJson(member)}`);
    }
    return `{${members.join(',')}}`;
  }
  return 'null';
}

/** The hash of one event (every field but `hash` itself), format version 1. */
export function auditEventHash(event: Omit<StoredAuditEvent, 'hash'>): string {
  const content = {
    v: AUDIT_HASH_VERSION,
    seq: event.seq,
    id: event.id,
    time: event.time,
    actor: event.actor,
    roles: event.roles,
    project: event.project,
    sourceAddress: event.sourceAddress,
    requestId: event.requestId,
    action: event.action,
    target: { kind: event.target.kind, project: event.target.project, name: event.target.name },
    outcome: event.outcome,
    reason: event.reason,
    changes: event.changes,
    // Absent (left out of the canonical JSON) for single events, so their hashes are unchanged.
    repeatCount: event.repeatCount !== undefined && event.repeatCount > 1 ? event.repeatCount : undefined,
    prevHash: event.prevHash,
  };
  return createHash('sha256').update(canonicalJson(content), 'utf8').digest('hex');
}
