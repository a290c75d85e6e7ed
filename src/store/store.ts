// The store contract: what the server and conductor may ask of the database. One
// implementation (kysely-store.ts) serves SQLite (embedded default) and PostgreSQL.
//
// Rules every method keeps:
// - Writes to a resource bump its resourceVersion by one and append a row to the change feed
//   (for ?watch=true) in the same transaction.
// - `replace` and `remove` take the resourceVersion the caller read; a mismatch throws
//   IngotError INGOT_ERR_CONFLICT and changes nothing (optimistic concurrency).
// - Inside `transaction(fn)`, everything fn does through its `tx` commits or rolls back together.
import type { AuditHead, AuditOutcome, NewAuditEvent, StoredAuditEvent } from '../model/audit-event.js';

/** Label and annotation maps, already validated by the model schemas. */
export type Labels = Record<string, string>;
export type Annotations = Record<string, string>;

export type Dialect = 'sqlite' | 'postgres';

export type { AuditChange, AuditHead, AuditOutcome, AuditTarget, NewAuditEvent, StoredAuditEvent } from '../model/audit-event.js';

/** Filters for listAuditEvents; all given filters must match. */
export interface AuditListOptions {
  /** Only events with seq greater than this (paging forward). */
  afterSeq?: number;
  /** Only events with seq less than this (paging backward with order 'desc'). */
  beforeSeq?: number;
  /** 1..1000; default 500. */
  limit?: number;
  /** 'asc' (default, oldest first) or 'desc' (newest first, for `audit tail`). */
  order?: 'asc' | 'desc';
  actor?: string;
  action?: string;
  outcome?: AuditOutcome;
  targetKind?: string;
  targetProject?: string;
  targetName?: string;
  /** The actor's project. */
  project?: string;
  /** ISO 8601 bounds on `time`, inclusive from, exclusive until. */
  since?: string;
  until?: string;
}

/** A resource row as stored; the API layer turns it into the public envelope. */
export interface StoredResource {
  kind: string;
  /** Empty string for platform-scoped resources. */
  project: string;
  name: string;
  uid: string;
  resourceVersion: number;
  labels: Labels;
  annotations: Annotations;
  spec: Record<string, unknown>;
  status: Record<string, unknown>;
  createdAt: string;
  updatedAt: string;
  deletionTimestamp?: string;
}

export interface ResourceKey {
  kind: string;
  /** Empty string (or absent) for platform-scoped resources. */
  project?: string;
  name: string;
}

export interface NewResource {
  kind: string;
  project?: string;
  name: string;
  labels?: Labels;
  annotations?: Annotations;
  spec: Record<string, unknown>;
  status: Record<string, unknown>;
}

/** A label selector as in Kubernetes: `rack=r1,tier!=gold,gpu` (equality, inequality, existence). */
export type LabelRequirement =
  | { key: string; op: '='; value: string }
  | { key: string; op: '!='; value: string }
  | { key: string; op: 'exists' }
  | { key: string; op: '!exists' };

export interface ListOptions {
  kind: string;
  /** undefined: all projects; '' : platform scope only; a name: that project only. */
  project?: string;
  labelSelector?: LabelRequirement[];
  /** Page size, 1..1000; default 500. */
  limit?: number;
  /** Opaque cursor from a previous page. */
  continue?: string;
}

export interface ListPage {
  items: StoredResource[];
  continue?: string;
}

export type EventType = 'Normal' | 'Warning';

export interface NewEvent {
  kind: string;
  project?: string;
  name: string;
  uid: string;
  type: EventType;
  /** CamelCase machine-readable reason, e.g. `StateChanged`, `PowerOn`, `RegistrationError`. */
  reason: string;
  message: string;
  fromState?: string;
  toState?: string;
}

export interface StoredEvent extends NewEvent {
  id: number;
  createdAt: string;
}

export type ChangeType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface Change {
  /** Monotonic position in the change feed; SSE event ids and watch resumption use it. */
  seq: number;
  type: ChangeType;
  object: StoredResource;
}

export interface Lease {
  name: string;
  holder: string;
  purpose: string;
  expiresAt: number;
}

export interface StoredToken {
  id: string;
  /** SHA-256 of the token, hex. The token itself is never stored. */
  hash: string;
  description: string;
  roles: string[];
  project: string;
  /** 'api' for API tokens; 'agent' for one-boot agent tokens bound to `hostUid`. */
  type: 'api' | 'agent';
  hostUid: string;
  expiresAt: number;
  createdAt: string;
  lastUsedAt?: string;
  revokedAt?: string;
  /**
   * The person or automation this token acts for: an OIDC subject (`oidc:<sub>`), or for a
   * token minted through the API the principal of the token that minted it. Absent for
   * tokens made before principals were kept; the token's own id stands in.
   */
  principal?: string;
}

export interface SecretCiphertext {
  /** uid of the Secret resource. */
  uid: string;
  version: number;
  /** Identifies the key-encryption key, so rekeying can find rows under an old key. */
  keyId: string;
  ciphertext: Buffer;
}

export type AgentCommandState = 'queued' | 'sent' | 'running' | 'done' | 'failed';

/** A command for the on-host agent. One per (hostUid, operationId). */
export interface AgentCommand {
  id: string;
  hostUid: string;
  /** The conductor's operation id (AgentPort.start); unique per host. */
  operationId: string;
  kind: string;
  /** The wire request, JSON; secret parts (user data) are sealed before they get here. */
  request: Record<string, unknown>;
  state: AgentCommandState;
  /** 0-100. */
  percent: number;
  message: string;
  result?: Record<string, unknown>;
  createdAt: string;
  updatedAt: string;
}

export type NewAgentCommand = Omit<AgentCommand, 'state' | 'percent' | 'message' | 'result' | 'updatedAt'>;

/** What an agent reports about a command; applied only while the command is not done/failed. */
export interface AgentCommandUpdate {
  state: 'running' | 'done' | 'failed';
  percent?: number;
  message?: string;
  result?: Record<string, unknown>;
}

/** One boot of the agent on one host: its one-boot token and its boot medium. */
export interface AgentSession {
  id: string;
  hostUid: string;
  /** Random id of this boot, carried in the boot configuration. */
  bootId: string;
  /** The StoredToken (type agent) minted for this boot. */
  tokenId: string;
  /** SHA-256 (hex) of the unguessable boot-medium id in the media URL. */
  mediaHash: string;
  /** The boot configuration without the token (apiUrl, caPem, hostUid, bootId). */
  bootConfig: Record<string, unknown>;
  /** The token, sealed with the SecretBox (aad `agent-session/<id>`), for building the medium. */
  sealedToken: Buffer;
  createdAt: string;
  /** Epoch ms; the medium and the token die then. */
  expiresAt: number;
  lookedUpAt?: string;
  lastSeenAt?: string;
  endedAt?: string;
}

/** One address of one pool held by one claim. */
export interface IpAllocation {
  poolUid: string;
  /** Canonical text: dotted quad, or RFC 5952 for IPv6. */
  address: string;
  family: 4 | 6;
  claimUid: string;
  createdAt: string;
}

/** What allocateAddress needs to know about the pool; the caller validated it (parseIpPoolSpec). */
export interface AddressAllocationRequest {
  poolUid: string;
  /** Used in messages only. */
  poolName: string;
  claimUid: string;
  /** Inclusive, one address family, non-overlapping; at most 64. */
  ranges: Array<{ start: string; end: string }>;
  /** Addresses inside the ranges that are never handed out (gateway, network, broadcast). */
  reserved?: string[];
  /** A specific address instead of the lowest free one. */
  requested?: string;
}

/** A host serving a claim: one row per host, at most one per claim. */
export interface HostBinding {
  hostUid: string;
  claimUid: string;
  project: string;
  createdAt: string;
}

/** Lifecycle of a two-person-rule approval (src/server/approvals/). */
export type ApprovalState = 'pending' | 'approved' | 'rejected' | 'expired' | 'executed';

/**
 * A change held back until a second identity approves it. `request` is what is needed to
 * replay it; approvals are only queued for host routes, whose bodies carry no secret values.
 */
export interface StoredApproval {
  id: string;
  /** The policy action of the held request (e.g. host:delete). */
  action: string;
  targetKind: string;
  targetName: string;
  request: { method: string; path: string; body?: unknown };
  /** Why it needs an approval (threshold exceeded, or the policy says approval:required). */
  cause: string;
  /** Token id (or `oidc:<sub>`) of the requester. */
  requestedBy: string;
  requestedAt: string;
  expiresAt: string;
  state: ApprovalState;
  decidedBy?: string;
  decidedAt?: string;
  reason?: string;
}

export interface Store {
  readonly dialect: Dialect;

  /** Runs fn in one database transaction; nested calls join the outer transaction. */
  transaction<T>(fn: (tx: Store) => Promise<T>): Promise<T>;

  // Resources
  get(key: ResourceKey): Promise<StoredResource | undefined>;
  getByUid(uid: string): Promise<StoredResource | undefined>;
  list(options: ListOptions): Promise<ListPage>;
  count(kind: string, project?: string): Promise<number>;
  /** Throws INGOT_ERR_ALREADY_EXISTS if the name is taken in that scope. */
  create(resource: NewResource): Promise<StoredResource>;
  /**
   * Writes labels/annotations/spec/status/deletionTimestamp of `next` if the stored
   * resourceVersion still equals `next.resourceVersion`; returns the row with the new version.
   */
  replace(next: StoredResource): Promise<StoredResource>;
  /** Deletes the row if its version matches (or unconditionally when `resourceVersion` is omitted). */
  remove(key: ResourceKey, resourceVersion?: number): Promise<void>;

  // Host/resource events (the `ingot host events` timeline)
  appendEvent(event: NewEvent): Promise<StoredEvent>;
  listEvents(key: ResourceKey, options?: { afterId?: number; limit?: number }): Promise<StoredEvent[]>;

  // Change feed, for watches
  changesSince(seq: number, options: { kind: string; project?: string; limit?: number }): Promise<Change[]>;
  latestChangeSeq(): Promise<number>;
  /** In-process notification after a commit that appended changes (cross-process watchers poll). */
  onCommittedChange(listener: () => void): () => void;

  // Leases: one holder per name (e.g. `host/<uid>`) until expiry.
  /** Takes or renews the lease if free, expired, or already ours; returns whether we hold it. */
  acquireLease(name: string, holder: string, purpose: string, ttlMs: number, now: number): Promise<boolean>;
  releaseLease(name: string, holder: string): Promise<void>;
  getLease(name: string): Promise<Lease | undefined>;

  // Secret values (ciphertext only: encryption happens above the store)
  putSecretCiphertext(row: SecretCiphertext): Promise<void>;
  getSecretCiphertext(uid: string): Promise<SecretCiphertext | undefined>;
  listSecretCiphertexts(): Promise<SecretCiphertext[]>;
  /**
   * Writes `row` only if the stored row of `row.uid` still has `expected.version` and
   * `expected.keyId` (re-sealing under a new key must never overwrite a value set meanwhile).
   * Returns whether it wrote.
   */
  replaceSecretCiphertextIf(row: SecretCiphertext, expected: { version: number; keyId: string }): Promise<boolean>;
  deleteSecretCiphertext(uid: string): Promise<void>;

  // Tokens
  createToken(token: StoredToken): Promise<void>;
  findTokenByHash(hash: string): Promise<StoredToken | undefined>;
  listTokens(): Promise<StoredToken[]>;
  touchToken(id: string, at: string): Promise<void>;
  revokeToken(id: string, at: string): Promise<void>;

  // Audit trail (append-only, hash-chained; see src/model/audit-event.ts and docs/audit.md)
  /**
   * Appends one event at the end of the chain: assigns the next seq (no gaps, even after a
   * rollback), sets prevHash to the latest event's hash and computes hash, all in one
   * transaction under the store's write-order lock, so concurrent appenders (several server
   * processes on PostgreSQL) never fork the chain. Inside transaction(fn) the event commits
   * or rolls back with the rest. Over-long fields are truncated before hashing.
   */
  appendAuditEvent(event: NewAuditEvent): Promise<StoredAuditEvent>;
  listAuditEvents(options?: AuditListOptions): Promise<StoredAuditEvent[]>;
  /** The last appended event's seq and hash, as recorded beside the chain (detects a truncated tail). */
  getAuditHead(): Promise<AuditHead>;

  // Agent commands and sessions (see src/conductor/agent-queue.ts)
  /**
   * Inserts the command unless one with the same (hostUid, operationId) exists; either way
   * returns the stored command and whether this call created it.
   */
  createAgentCommand(command: NewAgentCommand): Promise<{ created: boolean; command: AgentCommand }>;
  getAgentCommand(id: string): Promise<AgentCommand | undefined>;
  findAgentCommand(hostUid: string, operationId: string): Promise<AgentCommand | undefined>;
  /**
   * The oldest command of `hostUid` that is queued or sent (a sent command is delivered again
   * until the agent reports it running: the first delivery may have been lost), marked sent.
   */
  claimNextAgentCommand(hostUid: string, at: string): Promise<AgentCommand | undefined>;
  /**
   * Applies an agent's report unless the command already ended (done/failed stay as they are).
   * Returns the command as stored afterwards, or undefined when no such id exists.
   */
  updateAgentCommand(id: string, update: AgentCommandUpdate, at: string): Promise<AgentCommand | undefined>;
  createAgentSession(session: AgentSession): Promise<void>;
  getAgentSessionByMediaHash(mediaHash: string): Promise<AgentSession | undefined>;
  getAgentSessionByTokenId(tokenId: string): Promise<AgentSession | undefined>;
  /** The newest session of the host that has not ended (it may have expired: check expiresAt). */
  getActiveAgentSession(hostUid: string): Promise<AgentSession | undefined>;
  /** Records a lookup (sets lookedUpAt once) and/or a heartbeat (lastSeenAt). */
  touchAgentSession(id: string, seen: { lookedUpAt?: string; lastSeenAt?: string }): Promise<void>;
  /** Ends every open session of the host; returns the sessions it ended (to revoke their tokens). */
  endAgentSessions(hostUid: string, at: string): Promise<AgentSession[]>;

  // IP address allocations and host bindings (see docs/tenancy.md). UNIQUE constraints
  // make these safe across any number of store instances and server processes.
  /**
   * Gives the claim one address of the pool: `requested` if given, else the lowest free one
   * (ranges in order, reserved addresses skipped). Idempotent: a claim that already holds an
   * address in this pool gets that one back. Throws INGOT_ERR_UNPROCESSABLE "pool X is
   * exhausted" when nothing is free, INGOT_ERR_ALREADY_EXISTS when `requested` is taken, and
   * INGOT_ERR_VALIDATION when `requested` is not a free-able address of the ranges.
   */
  allocateAddress(request: AddressAllocationRequest): Promise<IpAllocation>;
  /** Frees every address the claim holds, in every pool; returns what it freed. */
  releaseAddresses(claimUid: string): Promise<IpAllocation[]>;
  /** The pool's allocations in address order. */
  listAllocations(poolUid: string): Promise<IpAllocation[]>;
  /** The claim's allocations, in pool then address order. */
  listClaimAllocations(claimUid: string): Promise<IpAllocation[]>;
  /**
   * Binds the host to the claim unless the host or the claim is bound already; returns whether
   * this binding now exists (true again for the same host and claim, so retries are safe).
   */
  bindHost(hostUid: string, claimUid: string, project: string): Promise<boolean>;
  /** Removes the claim's binding; returns it, or undefined when the claim was not bound. */
  unbindHost(claimUid: string): Promise<HostBinding | undefined>;
  getClaimBinding(claimUid: string): Promise<HostBinding | undefined>;
  /** All bindings (of one project when given), oldest first. */
  listHostBindings(project?: string): Promise<HostBinding[]>;

  // Two-person-rule approvals (src/server/approvals/)
  createApproval(approval: StoredApproval): Promise<void>;
  getApproval(id: string): Promise<StoredApproval | undefined>;
  /** Newest first; of one state when given. */
  listApprovals(options?: { state?: ApprovalState; limit?: number }): Promise<StoredApproval[]>;
  /**
   * Moves the approval from state `from` to `update.state` (compare-and-set, so two approvers
   * racing cannot both win); returns the approval as stored afterwards, or undefined when it
   * does not exist or was no longer in state `from`.
   */
  transitionApproval(id: string, from: ApprovalState, update: { state: ApprovalState; decidedBy?: string; decidedAt?: string; reason?: string }): Promise<StoredApproval | undefined>;
  /**
   * A sliding-window rate limit shared by every store instance on the database (so by every
   * server process): if fewer than `limit` actions of `kind` were admitted after
   * `now - windowMs`, records one at `now` and returns true; otherwise records nothing and
   * returns false. Exact under concurrency (count and insert are one serialized step).
   * Admitted actions older than the window are deleted on the way, so use one `windowMs` per
   * `kind`. `limit` 0 admits nothing. Times are epoch milliseconds of the caller's clock.
   */
  admitWindowedAction(kind: string, now: number, windowMs: number, limit: number): Promise<boolean>;

  // Settings: small key/value facts about this installation (e.g. bootstrap done).
  getSetting(key: string): Promise<string | undefined>;
  setSetting(key: string, value: string): Promise<void>;

  close(): Promise<void>;
}

export interface OpenStoreOptions {
  /** `postgres://…` for PostgreSQL; otherwise a SQLite file path (`:memory:` for tests). */
  database: string;
  /** Log sink for migrations and slow queries; defaults to silent. */
  log?: (message: string) => void;
}
