// The one Store implementation, for SQLite (embedded default) and PostgreSQL (scale-out).
// See store.ts for the contract; this file adds how it is kept:
// - Every resource write and its change-feed row go through one transaction.
// - Change rows are appended under a PostgreSQL transaction-level advisory lock, so their
//   sequence numbers become visible in commit order: without it a watcher could read seq 12,
//   move its cursor past 11 (assigned earlier, committed later) and never see 11. SQLite has
//   one writer at a time, which gives the same order for free.
// - Windowed admissions (the two-person rule's rate window) count and insert in one
//   statement; on PostgreSQL under the same advisory lock, so every process counts one window.
// - Listings page by keyset on (name, project) with byte-wise collation on both dialects;
//   label selectors are evaluated in SQL so every page except the last is full.
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import { sql, type Kysely, type Insertable, type RawBuilder, type Selectable, type SqlBool } from 'kysely';
import { alreadyExists, conflict, IngotError, notFound, validationError } from '../model/errors.js';
import { AUDIT_GENESIS_HASH, AUDIT_OUTCOMES, auditEventHash, canonicalJson } from '../model/audit-event.js';
import { compareIp, formatIp, parseIp, type IpAddress, type IpFamily } from '../model/ip-address.js';
import type { AgentCommandsTable, AgentSessionsTable, ApprovalsTable, AuditEventsTable, Database, HostBindingsTable, IpAllocationsTable, ResourcesTable, SecretDataTable, TokensTable } from './schema.js';
import type {
  AddressAllocationRequest,
  HostBinding,
  IpAllocation,
  AgentCommand,
  AgentCommandUpdate,
  AgentSession,
  NewAgentCommand,
  AuditChange,
  AuditHead,
  AuditListOptions,
  NewAuditEvent,
  StoredAuditEvent,
  Change,
  ChangeType,
  Dialect,
  LabelRequirement,
  Lease,
  ListOptions,
  ListPage,
  NewEvent,
  NewResource,
  ResourceKey,
  SecretCiphertext,
  Store,
  StoredEvent,
  StoredResource,
  StoredToken,
  ApprovalState,
  StoredApproval,
} from './store.js';

export const DEFAULT_LIST_LIMIT = 500;
export const MAX_LIST_LIMIT = 1000;

/**
 * How much of the change feed is kept. A row goes when it is older than `maxAgeMs` or is not
 * among the latest `maxRows` (the newest row always stays, so latestChangeSeq survives quiet
 * periods). Each row carries a full object snapshot (a host with its inventory is a few KB),
 * so 20,000 rows keep the table near 100 MB at worst; an hour covers any watcher that
 * reconnects after a restart. A watcher that falls further behind must list again, as with
 * Kubernetes' "410 Gone" (use oldestChangeSeq() to tell).
 */
export interface ChangeRetention {
  maxRows: number;
  maxAgeMs: number;
}
export const DEFAULT_CHANGE_RETENTION: ChangeRetention = { maxRows: 20_000, maxAgeMs: 60 * 60 * 1000 };
/** Pruning runs after this many appended changes (per process), and once at open. */
const PRUNE_EVERY_CHANGES = 1000;

/** Arbitrary constant key for pg_advisory_xact_lock around change appends (see the file comment). */
const CHANGE_FEED_LOCK_KEY = 0x1a907c4a;

const MAX_EVENT_MESSAGE = 4096;
const MAX_EVENT_REASON = 128;
const MAX_CURSOR_LENGTH = 2048;
const MAX_WINDOW_KIND = 128;

export interface KyselyStoreOptions {
  dialect: Dialect;
  log?: (message: string) => void;
  changeRetention?: ChangeRetention;
  /** Called by close() after the Kysely instance is destroyed (e.g. to end a pg Pool). */
  onClose?: () => Promise<void>;
}

interface SharedState {
  readonly dialect: Dialect;
  readonly root: Kysely<Database>;
  readonly listeners: Set<() => void>;
  readonly log: (message: string) => void;
  readonly retention: ChangeRetention;
  readonly onClose: (() => Promise<void>) | undefined;
  changesSincePrune: number;
  pruning: Promise<void> | undefined;
  closed: boolean;
}

interface TransactionState {
  readonly shared: SharedState;
  open: boolean;
  appendedChanges: number;
  holdsChangeLock: boolean;
}

/**
 * The transaction in progress in this async context. On SQLite, Kysely has one connection: a
 * call on the root store from inside transaction(fn) would wait for that connection forever.
 * Knowing the active transaction turns that hang into an error that says what to do.
 */
const activeTransaction = new AsyncLocalStorage<TransactionState>();

export class KyselyStore implements Store {
  readonly dialect: Dialect;
  readonly #db: Kysely<Database>;
  readonly #shared: SharedState;
  readonly #tx: TransactionState | undefined;

  /**
   * `internal` is only for the store itself (transaction-bound stores); callers pass db and
   * options. Migrations must already have run (openStore does that).
   */
  constructor(db: Kysely<Database>, options: KyselyStoreOptions, internal?: { shared: SharedState; tx: TransactionState }) {
    this.dialect = options.dialect;
    this.#db = db;
    this.#shared = internal?.shared ?? {
      dialect: options.dialect,
      root: db,
      listeners: new Set(),
      log: options.log ?? (() => {}),
      retention: options.changeRetention ?? DEFAULT_CHANGE_RETENTION,
      onClose: options.onClose,
      changesSincePrune: 0,
      pruning: undefined,
      closed: false,
    };
    this.#tx = internal?.tx;
  }

  // ---------------------------------------------------------------- transactions

  async transaction<T>(fn: (tx: Store) => Promise<T>): Promise<T> {
    this.#checkUsable();
    // Nested calls join the outer transaction (no savepoints): if fn throws, the outermost
    // transaction rolls back, as the contract in store.ts says.
    if (this.#tx !== undefined) return fn(this);
    const state: TransactionState = { shared: this.#shared, open: true, appendedChanges: 0, holdsChangeLock: false };
    let result: T;
    try {
      result = await this.#db
        .transaction()
        .execute((trx) =>
          activeTransaction.run(state, () => fn(new KyselyStore(trx, { dialect: this.dialect }, { shared: this.#shared, tx: state }))),
        );
    } finally {
      state.open = false;
    }
    if (state.appendedChanges > 0) this.#afterCommit(state.appendedChanges);
    return result;
  }

  onCommittedChange(listener: () => void): () => void {
    this.#shared.listeners.add(listener);
    return () => {
      this.#shared.listeners.delete(listener);
    };
  }

  #afterCommit(appended: number): void {
    for (const listener of [...this.#shared.listeners]) {
      try {
        listener();
      } catch (error) {
        this.#shared.log(`change listener failed: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    this.#shared.changesSincePrune += appended;
    if (this.#shared.changesSincePrune >= PRUNE_EVERY_CHANGES && this.#shared.pruning === undefined && !this.#shared.closed) {
      this.#shared.changesSincePrune = 0;
      this.#shared.pruning = this.pruneChanges()
        .then(() => undefined)
        .catch((error: unknown) => this.#shared.log(`pruning the change feed failed: ${error instanceof Error ? error.message : String(error)}`))
        .finally(() => {
          this.#shared.pruning = undefined;
        });
    }
  }

  #checkUsable(): void {
    if (this.#shared.closed) throw new Error('the store is closed');
    if (this.#tx !== undefined) {
      if (!this.#tx.open) throw new Error('a transaction store was used after its transaction ended; use the store it came from');
      return;
    }
    const active = activeTransaction.getStore();
    if (this.dialect === 'sqlite' && active !== undefined && active.open && active.shared === this.#shared) {
      throw new Error(
        'the store was used directly inside its own transaction(fn); use the `tx` store passed to fn (on SQLite this call would wait for the transaction forever)',
      );
    }
  }

  /** Runs fn in the current transaction, or in a new one: a write and its change row commit together. */
  #write<T>(fn: (tx: KyselyStore) => Promise<T>): Promise<T> {
    this.#checkUsable();
    if (this.#tx !== undefined) return fn(this);
    return this.transaction((tx) => fn(tx as KyselyStore));
  }

  async #appendChange(type: ChangeType, object: StoredResource): Promise<void> {
    const tx = this.#tx;
    if (tx === undefined) throw new Error('internal: change appended outside a transaction');
    await this.#takeWriteOrderLock(tx);
    await this.#db
      .insertInto('changes')
      .values({
        kind: object.kind,
        project: object.project,
        name: object.name,
        type,
        object: JSON.stringify(object),
        created_at: nowIso(),
      })
      .execute();
    tx.appendedChanges += 1;
  }

  /**
   * The PostgreSQL advisory lock that orders change-feed and audit appends (held until the
   * transaction ends). One lock for both, not one each: a transaction that writes a resource
   * and audits it, beside one that audits first and writes second, would otherwise take two
   * locks in opposite orders and deadlock.
   */
  async #takeWriteOrderLock(tx: TransactionState): Promise<void> {
    if (this.dialect === 'postgres' && !tx.holdsChangeLock) {
      await sql`select pg_advisory_xact_lock(${sql.lit(CHANGE_FEED_LOCK_KEY)})`.execute(this.#db);
      tx.holdsChangeLock = true;
    }
  }

  // ---------------------------------------------------------------- resources

  async get(key: ResourceKey): Promise<StoredResource | undefined> {
    this.#checkUsable();
    const row = await this.#db
      .selectFrom('resources')
      .selectAll()
      .where('kind', '=', key.kind)
      .where('project', '=', key.project ?? '')
      .where('name', '=', key.name)
      .executeTakeFirst();
    return row === undefined ? undefined : rowToResource(row);
  }

  async getByUid(uid: string): Promise<StoredResource | undefined> {
    this.#checkUsable();
    const row = await this.#db.selectFrom('resources').selectAll().where('uid', '=', uid).executeTakeFirst();
    return row === undefined ? undefined : rowToResource(row);
  }

  async list(options: ListOptions): Promise<ListPage> {
    this.#checkUsable();
    const limit = checkLimit(options.limit, 'limit');
    let query = this.#db.selectFrom('resources').selectAll().where('kind', '=', options.kind);
    if (options.project !== undefined) query = query.where('project', '=', options.project);
    if (options.continue !== undefined && options.continue !== '') {
      const after = decodeCursor(options.continue);
      query = query.where((eb) =>
        eb.or([eb('name', '>', after.name), eb.and([eb('name', '=', after.name), eb('project', '>', after.project)])]),
      );
    }
    for (const requirement of options.labelSelector ?? []) {
      query = query.where(this.#labelCondition(requirement));
    }
    const rows = await query
      .orderBy('name')
      .orderBy('project')
      .limit(limit + 1)
      .execute();
    const more = rows.length > limit;
    const pageRows = more ? rows.slice(0, limit) : rows;
    const page: ListPage = { items: pageRows.map(rowToResource) };
    const last = pageRows[pageRows.length - 1];
    if (more && last !== undefined) page.continue = encodeCursor({ project: last.project, name: last.name });
    return page;
  }

  /** SQL for one label requirement; keys and values travel as parameters, never as SQL text. */
  #labelCondition(requirement: LabelRequirement): RawBuilder<SqlBool> {
    if (typeof requirement.key !== 'string' || requirement.key === '') {
      throw validationError([{ field: 'labelSelector', message: 'a requirement has an empty key' }]);
    }
    const value =
      this.dialect === 'postgres'
        ? sql<string | null>`(${sql.ref('resources.labels')}::jsonb ->> cast(${requirement.key} as text))`
        : sql<string | null>`(select je.value from json_each(${sql.ref('resources.labels')}) as je where je.key = ${requirement.key})`;
    switch (requirement.op) {
      case '=':
        return sql<SqlBool>`${value} = ${requirement.value}`;
      case '!=':
        // Kubernetes semantics: `key!=value` also matches objects without the label.
        return sql<SqlBool>`(${value} is null or ${value} <> ${requirement.value})`;
      case 'exists':
        return sql<SqlBool>`${value} is not null`;
      case '!exists':
        return sql<SqlBool>`${value} is null`;
      default:
        throw validationError([{ field: 'labelSelector', message: `unknown operator in requirement on "${String((requirement as { key: unknown }).key)}"` }]);
    }
  }

  async count(kind: string, project?: string): Promise<number> {
    this.#checkUsable();
    let query = this.#db
      .selectFrom('resources')
      .select((eb) => eb.fn.countAll<number | string>().as('n'))
      .where('kind', '=', kind);
    if (project !== undefined) query = query.where('project', '=', project);
    const row = await query.executeTakeFirstOrThrow();
    return Number(row.n);
  }

  async create(resource: NewResource): Promise<StoredResource> {
    checkKey(resource);
    return this.#write(async (tx) => {
      const now = nowIso();
      const stored: StoredResource = {
        kind: resource.kind,
        project: resource.project ?? '',
        name: resource.name,
        uid: randomUUID(),
        resourceVersion: 1,
        labels: resource.labels ?? {},
        annotations: resource.annotations ?? {},
        spec: resource.spec,
        status: resource.status,
        createdAt: now,
        updatedAt: now,
      };
      // ON CONFLICT DO NOTHING rather than catching a unique violation: on PostgreSQL a failed
      // statement would poison the caller's surrounding transaction.
      const inserted = await tx.#db
        .insertInto('resources')
        .values(resourceToRow(stored))
        .onConflict((oc) => oc.columns(['kind', 'project', 'name']).doNothing())
        .returning('uid')
        .executeTakeFirst();
      if (inserted === undefined) throw alreadyExists(stored.kind, stored.name);
      await tx.#appendChange('ADDED', stored);
      return stored;
    });
  }

  async replace(next: StoredResource): Promise<StoredResource> {
    checkKey(next);
    checkVersion(next.resourceVersion);
    return this.#write(async (tx) => {
      const project = next.project ?? '';
      const updated = await tx.#db
        .updateTable('resources')
        .set({
          labels: JSON.stringify(next.labels ?? {}),
          annotations: JSON.stringify(next.annotations ?? {}),
          spec: JSON.stringify(next.spec ?? {}),
          status: JSON.stringify(next.status ?? {}),
          deletion_timestamp: next.deletionTimestamp ?? null,
          resource_version: next.resourceVersion + 1,
          updated_at: nowIso(),
        })
        .where('kind', '=', next.kind)
        .where('project', '=', project)
        .where('name', '=', next.name)
        .where('uid', '=', next.uid)
        .where('resource_version', '=', next.resourceVersion)
        .returningAll()
        .executeTakeFirst();
      if (updated === undefined) {
        const current = await tx.get({ kind: next.kind, project, name: next.name });
        if (current === undefined) throw notFound(next.kind, next.name, project || undefined);
        if (current.uid !== next.uid) throw recreated(next.kind, next.name);
        throw conflict(next.kind, next.name, String(next.resourceVersion), String(current.resourceVersion));
      }
      const stored = rowToResource(updated);
      await tx.#appendChange('MODIFIED', stored);
      return stored;
    });
  }

  async remove(key: ResourceKey, resourceVersion?: number): Promise<void> {
    checkKey(key);
    if (resourceVersion !== undefined) checkVersion(resourceVersion);
    await this.#write(async (tx) => {
      const project = key.project ?? '';
      let query = tx.#db.deleteFrom('resources').where('kind', '=', key.kind).where('project', '=', project).where('name', '=', key.name);
      if (resourceVersion !== undefined) query = query.where('resource_version', '=', resourceVersion);
      const deleted = await query.returningAll().executeTakeFirst();
      if (deleted === undefined) {
        const current = await tx.get({ kind: key.kind, project, name: key.name });
        if (current === undefined) throw notFound(key.kind, key.name, project || undefined);
        throw conflict(key.kind, key.name, String(resourceVersion), String(current.resourceVersion));
      }
      await tx.#appendChange('DELETED', rowToResource(deleted));
    });
  }

  // ---------------------------------------------------------------- events

  async appendEvent(event: NewEvent): Promise<StoredEvent> {
    this.#checkUsable();
    const createdAt = nowIso();
    const row = {
      kind: event.kind,
      project: event.project ?? '',
      name: event.name,
      uid: event.uid,
      type: event.type,
      reason: truncate(event.reason, MAX_EVENT_REASON),
      message: truncate(event.message, MAX_EVENT_MESSAGE),
      from_state: event.fromState ?? null,
      to_state: event.toState ?? null,
      created_at: createdAt,
    };
    const inserted = await this.#db.insertInto('events').values(row).returning('id').executeTakeFirstOrThrow();
    return eventRowToEvent({ ...row, id: inserted.id });
  }

  async listEvents(key: ResourceKey, options: { afterId?: number; limit?: number } = {}): Promise<StoredEvent[]> {
    this.#checkUsable();
    const limit = checkLimit(options.limit, 'limit');
    let query = this.#db
      .selectFrom('events')
      .selectAll()
      .where('kind', '=', key.kind)
      .where('project', '=', key.project ?? '')
      .where('name', '=', key.name);
    if (options.afterId !== undefined) query = query.where('id', '>', options.afterId);
    const rows = await query.orderBy('id').limit(limit).execute();
    return rows.map(eventRowToEvent);
  }

  // ---------------------------------------------------------------- change feed

  async changesSince(seq: number, options: { kind: string; project?: string; limit?: number }): Promise<Change[]> {
    this.#checkUsable();
    const limit = checkLimit(options.limit, 'limit');
    let query = this.#db.selectFrom('changes').select(['seq', 'type', 'object']).where('seq', '>', seq).where('kind', '=', options.kind);
    if (options.project !== undefined) query = query.where('project', '=', options.project);
    const rows = await query.orderBy('seq').limit(limit).execute();
    return rows.map((row) => ({ seq: Number(row.seq), type: row.type as ChangeType, object: JSON.parse(row.object) as StoredResource }));
  }

  async latestChangeSeq(): Promise<number> {
    this.#checkUsable();
    const row = await this.#db
      .selectFrom('changes')
      .select((eb) => eb.fn.max('seq').as('seq'))
      .executeTakeFirst();
    return Number(row?.seq ?? 0);
  }

  /**
   * The oldest sequence number still in the feed (0 when empty). A watcher resuming from a
   * seq below `oldestChangeSeq() - 1` has missed pruned changes and must list again.
   * Not part of the Store contract (yet).
   */
  async oldestChangeSeq(): Promise<number> {
    this.#checkUsable();
    const row = await this.#db
      .selectFrom('changes')
      .select((eb) => eb.fn.min('seq').as('seq'))
      .executeTakeFirst();
    return Number(row?.seq ?? 0);
  }

  /** Deletes change rows beyond the retention (see ChangeRetention). Runs outside any transaction. */
  async pruneChanges(now: number = Date.now()): Promise<number> {
    if (this.#tx !== undefined) throw new Error('pruneChanges runs on the root store, not in a transaction');
    const db = this.#shared.root;
    const latest = await db
      .selectFrom('changes')
      .select((eb) => eb.fn.max('seq').as('seq'))
      .executeTakeFirst();
    const latestSeq = Number(latest?.seq ?? 0);
    if (latestSeq === 0) return 0;
    const cutoff = new Date(now - this.#shared.retention.maxAgeMs).toISOString();
    const result = await db
      .deleteFrom('changes')
      .where('seq', '<', latestSeq)
      .where((eb) => eb.or([eb('seq', '<=', latestSeq - this.#shared.retention.maxRows), eb('created_at', '<', cutoff)]))
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  // ---------------------------------------------------------------- audit trail

  async appendAuditEvent(event: NewAuditEvent): Promise<StoredAuditEvent> {
    const prepared = prepareAuditEvent(event);
    return this.#write(async (tx) => {
      const state = tx.#tx;
      if (state === undefined) throw new Error('internal: audit event appended outside a transaction');
      await tx.#takeWriteOrderLock(state);
      // A write first: on SQLite it takes the database's write lock before anything is read,
      // so a second process appending at the same time waits (busy_timeout) instead of
      // computing its prevHash from a stale snapshot.
      const bumped = await tx.#db
        .updateTable('audit_head')
        .set((eb) => ({ seq: eb('seq', '+', 1) }))
        .where('id', '=', 1)
        .returning('seq')
        .executeTakeFirst();
      if (bumped === undefined) throw new Error('the audit_head row is missing: the audit trail was tampered with; run `ingot audit verify`');
      const last = await tx.#db.selectFrom('audit_events').select(['seq', 'hash']).orderBy('seq', 'desc').limit(1).executeTakeFirst();
      // Never reuse a seq, even if the head row was edited backwards (verify reports that).
      const seq = Math.max(Number(bumped.seq), last === undefined ? 1 : Number(last.seq) + 1);
      const unhashed: Omit<StoredAuditEvent, 'hash'> = { ...prepared, seq, prevHash: last?.hash ?? AUDIT_GENESIS_HASH };
      const stored: StoredAuditEvent = { ...unhashed, hash: auditEventHash(unhashed) };
      await tx.#db.insertInto('audit_events').values(auditEventToRow(stored)).execute();
      await tx.#db.updateTable('audit_head').set({ seq, hash: stored.hash }).where('id', '=', 1).execute();
      return stored;
    });
  }

  async listAuditEvents(options: AuditListOptions = {}): Promise<StoredAuditEvent[]> {
    this.#checkUsable();
    const limit = checkLimit(options.limit, 'limit');
    let query = this.#db.selectFrom('audit_events').selectAll();
    if (options.afterSeq !== undefined) query = query.where('seq', '>', checkSeq(options.afterSeq, 'afterSeq'));
    if (options.beforeSeq !== undefined) query = query.where('seq', '<', checkSeq(options.beforeSeq, 'beforeSeq'));
    if (options.actor !== undefined) query = query.where('actor', '=', options.actor);
    if (options.action !== undefined) query = query.where('action', '=', options.action);
    if (options.outcome !== undefined) query = query.where('outcome', '=', options.outcome);
    if (options.targetKind !== undefined) query = query.where('target_kind', '=', options.targetKind);
    if (options.targetProject !== undefined) query = query.where('target_project', '=', options.targetProject);
    if (options.targetName !== undefined) query = query.where('target_name', '=', options.targetName);
    if (options.project !== undefined) query = query.where('project', '=', options.project);
    if (options.since !== undefined) query = query.where('time', '>=', checkTime(options.since, 'since'));
    if (options.until !== undefined) query = query.where('time', '<', checkTime(options.until, 'until'));
    const order = options.order ?? 'asc';
    if (order !== 'asc' && order !== 'desc') throw validationError([{ field: 'order', message: `must be "asc" or "desc", not ${JSON.stringify(order)}` }]);
    const rows = await query.orderBy('seq', order).limit(limit).execute();
    return rows.map(rowToAuditEvent);
  }

  async getAuditHead(): Promise<AuditHead> {
    this.#checkUsable();
    const row = await this.#db.selectFrom('audit_head').select(['seq', 'hash']).where('id', '=', 1).executeTakeFirst();
    // A missing row is itself tampering; report an impossible head so verify fails loudly.
    return row === undefined ? { seq: -1, hash: '' } : { seq: Number(row.seq), hash: row.hash };
  }

  // ---------------------------------------------------------------- leases

  async acquireLease(name: string, holder: string, purpose: string, ttlMs: number, now: number): Promise<boolean> {
    this.#checkUsable();
    if (name === '' || holder === '') throw new Error('acquireLease needs a lease name and a holder');
    if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0) throw new Error(`acquireLease: ttlMs must be a positive integer, not ${ttlMs}`);
    if (!Number.isSafeInteger(now)) throw new Error(`acquireLease: now must be an integer of milliseconds, not ${now}`);
    const expiresAt = now + ttlMs;
    // One statement, so the database decides atomically: insert if free; otherwise take over
    // only if the lease expired or is already ours. Under concurrency PostgreSQL serializes
    // conflicting upserts on the primary key and re-evaluates the WHERE on the latest row.
    const row = await this.#db
      .insertInto('leases')
      .values({ name, holder, purpose, expires_at: expiresAt })
      .onConflict((oc) =>
        oc
          .column('name')
          .doUpdateSet({ holder, purpose, expires_at: expiresAt })
          .where((eb) => eb.or([eb('leases.expires_at', '<=', now), eb('leases.holder', '=', holder)])),
      )
      .returning('holder')
      .executeTakeFirst();
    return row !== undefined && row.holder === holder;
  }

  async releaseLease(name: string, holder: string): Promise<void> {
    this.#checkUsable();
    await this.#db.deleteFrom('leases').where('name', '=', name).where('holder', '=', holder).execute();
  }

  async getLease(name: string): Promise<Lease | undefined> {
    this.#checkUsable();
    const row = await this.#db.selectFrom('leases').selectAll().where('name', '=', name).executeTakeFirst();
    return row === undefined ? undefined : { name: row.name, holder: row.holder, purpose: row.purpose, expiresAt: Number(row.expires_at) };
  }

  // ---------------------------------------------------------------- secret ciphertext

  async putSecretCiphertext(row: SecretCiphertext): Promise<void> {
    this.#checkUsable();
    if (!Buffer.isBuffer(row.ciphertext)) throw new Error('putSecretCiphertext: ciphertext must be a Buffer');
    checkVersion(row.version, 'version');
    await this.#db
      .insertInto('secret_data')
      .values({ uid: row.uid, version: row.version, key_id: row.keyId, ciphertext: row.ciphertext })
      .onConflict((oc) => oc.column('uid').doUpdateSet({ version: row.version, key_id: row.keyId, ciphertext: row.ciphertext }))
      .execute();
  }

  async getSecretCiphertext(uid: string): Promise<SecretCiphertext | undefined> {
    this.#checkUsable();
    const row = await this.#db.selectFrom('secret_data').selectAll().where('uid', '=', uid).executeTakeFirst();
    return row === undefined ? undefined : secretRowToCiphertext(row);
  }

  async listSecretCiphertexts(): Promise<SecretCiphertext[]> {
    this.#checkUsable();
    const rows = await this.#db.selectFrom('secret_data').selectAll().orderBy('uid').execute();
    return rows.map(secretRowToCiphertext);
  }

  async replaceSecretCiphertextIf(row: SecretCiphertext, expected: { version: number; keyId: string }): Promise<boolean> {
    this.#checkUsable();
    if (!Buffer.isBuffer(row.ciphertext)) throw new Error('replaceSecretCiphertextIf: ciphertext must be a Buffer');
    checkVersion(row.version, 'version');
    const result = await this.#db
      .updateTable('secret_data')
      .set({ version: row.version, key_id: row.keyId, ciphertext: row.ciphertext })
      .where('uid', '=', row.uid)
      .where('version', '=', expected.version)
      .where('key_id', '=', expected.keyId)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  async deleteSecretCiphertext(uid: string): Promise<void> {
    this.#checkUsable();
    await this.#db.deleteFrom('secret_data').where('uid', '=', uid).execute();
  }

  // ---------------------------------------------------------------- tokens

  async createToken(token: StoredToken): Promise<void> {
    this.#checkUsable();
    if (!/^[0-9a-f]{64}$/.test(token.hash)) throw new Error('createToken: hash must be a SHA-256 digest in lower-case hex');
    const inserted = await this.#db
      .insertInto('tokens')
      .values({
        id: token.id,
        hash: token.hash,
        description: token.description,
        roles: JSON.stringify(token.roles),
        project: token.project,
        type: token.type,
        host_uid: token.hostUid,
        expires_at: token.expiresAt,
        created_at: token.createdAt,
        last_used_at: token.lastUsedAt ?? null,
        revoked_at: token.revokedAt ?? null,
        principal: token.principal ?? '',
      })
      .onConflict((oc) => oc.doNothing())
      .returning('id')
      .executeTakeFirst();
    if (inserted === undefined) throw alreadyExists('Token', token.id);
  }

  async findTokenByHash(hash: string): Promise<StoredToken | undefined> {
    this.#checkUsable();
    const row = await this.#db.selectFrom('tokens').selectAll().where('hash', '=', hash).executeTakeFirst();
    return row === undefined ? undefined : tokenRowToToken(row);
  }

  async listTokens(): Promise<StoredToken[]> {
    this.#checkUsable();
    const rows = await this.#db.selectFrom('tokens').selectAll().orderBy('created_at').orderBy('id').execute();
    return rows.map(tokenRowToToken);
  }

  async touchToken(id: string, at: string): Promise<void> {
    this.#checkUsable();
    await this.#db.updateTable('tokens').set({ last_used_at: at }).where('id', '=', id).execute();
  }

  async revokeToken(id: string, at: string): Promise<void> {
    this.#checkUsable();
    // The first revocation time is the one that counts; revoking twice changes nothing.
    const result = await this.#db
      .updateTable('tokens')
      .set((eb) => ({ revoked_at: eb.fn.coalesce('revoked_at', eb.val(at)) }))
      .where('id', '=', id)
      .executeTakeFirst();
    if (Number(result.numUpdatedRows) === 0) throw notFound('Token', id);
  }

  // ---------------------------------------------------------------- approvals

  async createApproval(approval: StoredApproval): Promise<void> {
    this.#checkUsable();
    const inserted = await this.#db
      .insertInto('approvals')
      .values({
        id: approval.id,
        action: approval.action,
        target_kind: approval.targetKind,
        target_name: approval.targetName,
        request: JSON.stringify(approval.request),
        cause: approval.cause,
        requested_by: approval.requestedBy,
        requested_at: approval.requestedAt,
        expires_at: approval.expiresAt,
        state: approval.state,
        decided_by: approval.decidedBy ?? null,
        decided_at: approval.decidedAt ?? null,
        reason: approval.reason ?? null,
      })
      .onConflict((oc) => oc.doNothing())
      .returning('id')
      .executeTakeFirst();
    if (inserted === undefined) throw alreadyExists('Approval', approval.id);
  }

  async getApproval(id: string): Promise<StoredApproval | undefined> {
    this.#checkUsable();
    const row = await this.#db.selectFrom('approvals').selectAll().where('id', '=', id).executeTakeFirst();
    return row === undefined ? undefined : approvalRow(row);
  }

  async listApprovals(options: { state?: ApprovalState; limit?: number } = {}): Promise<StoredApproval[]> {
    this.#checkUsable();
    let query = this.#db.selectFrom('approvals').selectAll();
    if (options.state !== undefined) query = query.where('state', '=', options.state);
    const rows = await query.orderBy('requested_at', 'desc').orderBy('id', 'desc').limit(Math.min(Math.max(options.limit ?? 1000, 1), 1000)).execute();
    return rows.map(approvalRow);
  }

  async transitionApproval(
    id: string,
    from: ApprovalState,
    update: { state: ApprovalState; decidedBy?: string; decidedAt?: string; reason?: string },
  ): Promise<StoredApproval | undefined> {
    this.#checkUsable();
    const result = await this.#db
      .updateTable('approvals')
      .set({
        state: update.state,
        ...(update.decidedBy !== undefined ? { decided_by: update.decidedBy } : {}),
        ...(update.decidedAt !== undefined ? { decided_at: update.decidedAt } : {}),
        ...(update.reason !== undefined ? { reason: update.reason } : {}),
      })
      .where('id', '=', id)
      .where('state', '=', from)
      .executeTakeFirst();
    if (Number(result.numUpdatedRows) === 0) return undefined;
    return this.getApproval(id);
  }

  // ---------------------------------------------------------------- windowed admissions

  async admitWindowedAction(kind: string, now: number, windowMs: number, limit: number): Promise<boolean> {
    this.#checkUsable();
    if (typeof kind !== 'string' || kind === '' || kind.length > MAX_WINDOW_KIND) throw new Error(`admitWindowedAction: kind must be 1-${MAX_WINDOW_KIND} characters`);
    if (!Number.isSafeInteger(now)) throw new Error(`admitWindowedAction: now must be an integer of milliseconds, not ${now}`);
    if (!Number.isSafeInteger(windowMs) || windowMs <= 0) throw new Error(`admitWindowedAction: windowMs must be a positive integer, not ${windowMs}`);
    if (!Number.isSafeInteger(limit) || limit < 0) throw new Error(`admitWindowedAction: limit must be a non-negative integer, not ${limit}`);
    if (this.dialect === 'sqlite') return this.#admitWindowed(kind, now, windowMs, limit);
    // PostgreSQL (read committed) would let two transactions both count limit-1 and both
    // insert. The write-order lock serializes them; each statement after it sees every
    // admission committed before. It is the store's one advisory lock rather than a per-kind
    // one, so a caller's transaction that also writes resources or audit events cannot take
    // two locks in opposite orders (see #takeWriteOrderLock); admissions are rare and short.
    return this.#write(async (tx) => {
      const state = tx.#tx;
      if (state === undefined) throw new Error('internal: windowed admission outside a transaction');
      await tx.#takeWriteOrderLock(state);
      return tx.#admitWindowed(kind, now, windowMs, limit);
    });
  }

  /**
   * Count and insert are one statement. On SQLite that alone is exact: a writing statement
   * takes the database's write lock before it reads (other connections wait, busy_timeout),
   * and no transaction stays open across awaits, so two connections in one process cannot
   * block each other (see the audit concurrency test). On PostgreSQL the caller holds the lock.
   */
  async #admitWindowed(kind: string, now: number, windowMs: number, limit: number): Promise<boolean> {
    const since = now - windowMs;
    const inserted = await sql<{ id: string }>`
      insert into action_window (id, kind, at)
      select cast(${randomUUID()} as text), cast(${kind} as text), cast(${now} as bigint)
      where (select count(*) from action_window where kind = ${kind} and at > ${since}) < ${limit}
      returning id`.execute(this.#db);
    // Pruning after the decision, which never depends on it (the count ignores old rows).
    await this.#db.deleteFrom('action_window').where('kind', '=', kind).where('at', '<=', since).execute();
    return inserted.rows.length === 1;
  }

  // ---------------------------------------------------------------- agent commands and sessions

  async createAgentCommand(command: NewAgentCommand): Promise<{ created: boolean; command: AgentCommand }> {
    this.#checkUsable();
    const inserted = await this.#db
      .insertInto('agent_commands')
      .values({
        id: command.id,
        host_uid: command.hostUid,
        operation_id: command.operationId,
        kind: command.kind,
        request: JSON.stringify(command.request),
        state: 'queued',
        percent: 0,
        message: '',
        result: null,
        created_at: command.createdAt,
        updated_at: command.createdAt,
      })
      .onConflict((oc) => oc.doNothing())
      .returning('id')
      .executeTakeFirst();
    const stored = await this.findAgentCommand(command.hostUid, command.operationId);
    if (stored === undefined) throw alreadyExists('AgentCommand', command.id);
    return { created: inserted !== undefined, command: stored };
  }

  async getAgentCommand(id: string): Promise<AgentCommand | undefined> {
    this.#checkUsable();
    const row = await this.#db.selectFrom('agent_commands').selectAll().where('id', '=', id).executeTakeFirst();
    return row === undefined ? undefined : agentCommandRow(row);
  }

  async findAgentCommand(hostUid: string, operationId: string): Promise<AgentCommand | undefined> {
    this.#checkUsable();
    const row = await this.#db
      .selectFrom('agent_commands')
      .selectAll()
      .where('host_uid', '=', hostUid)
      .where('operation_id', '=', operationId)
      .executeTakeFirst();
    return row === undefined ? undefined : agentCommandRow(row);
  }

  async claimNextAgentCommand(hostUid: string, at: string): Promise<AgentCommand | undefined> {
    this.#checkUsable();
    return this.transaction(async (tx) => (tx as KyselyStore).#claimNext(hostUid, at));
  }

  async #claimNext(hostUid: string, at: string): Promise<AgentCommand | undefined> {
    const row = await this.#db
      .selectFrom('agent_commands')
      .selectAll()
      .where('host_uid', '=', hostUid)
      .where('state', 'in', ['queued', 'sent'])
      .orderBy('created_at')
      .orderBy('id')
      .limit(1)
      .executeTakeFirst();
    if (row === undefined) return undefined;
    await this.#db.updateTable('agent_commands').set({ state: 'sent', updated_at: at }).where('id', '=', row.id).where('state', 'in', ['queued', 'sent']).execute();
    return agentCommandRow({ ...row, state: 'sent', updated_at: at });
  }

  async updateAgentCommand(id: string, update: AgentCommandUpdate, at: string): Promise<AgentCommand | undefined> {
    this.#checkUsable();
    const percent = update.percent === undefined ? undefined : Math.max(0, Math.min(100, Math.round(update.percent)));
    await this.#db
      .updateTable('agent_commands')
      .set({
        state: update.state,
        updated_at: at,
        ...(percent !== undefined ? { percent } : update.state === 'done' ? { percent: 100 } : {}),
        ...(update.message !== undefined ? { message: truncate(update.message, MAX_EVENT_MESSAGE) } : {}),
        ...(update.result !== undefined ? { result: JSON.stringify(update.result) } : {}),
      })
      .where('id', '=', id)
      .where('state', 'not in', ['done', 'failed'])
      .execute();
    return this.getAgentCommand(id);
  }

  async createAgentSession(session: AgentSession): Promise<void> {
    this.#checkUsable();
    await this.#db
      .insertInto('agent_sessions')
      .values({
        id: session.id,
        host_uid: session.hostUid,
        boot_id: session.bootId,
        token_id: session.tokenId,
        media_hash: session.mediaHash,
        boot_config: JSON.stringify(session.bootConfig),
        sealed_token: session.sealedToken,
        created_at: session.createdAt,
        expires_at: session.expiresAt,
        looked_up_at: session.lookedUpAt ?? null,
        last_seen_at: session.lastSeenAt ?? null,
        ended_at: session.endedAt ?? null,
      })
      .execute();
  }

  async getAgentSessionByMediaHash(mediaHash: string): Promise<AgentSession | undefined> {
    this.#checkUsable();
    const row = await this.#db.selectFrom('agent_sessions').selectAll().where('media_hash', '=', mediaHash).executeTakeFirst();
    return row === undefined ? undefined : agentSessionRow(row);
  }

  async getAgentSessionByTokenId(tokenId: string): Promise<AgentSession | undefined> {
    this.#checkUsable();
    const row = await this.#db.selectFrom('agent_sessions').selectAll().where('token_id', '=', tokenId).executeTakeFirst();
    return row === undefined ? undefined : agentSessionRow(row);
  }

  async getActiveAgentSession(hostUid: string): Promise<AgentSession | undefined> {
    this.#checkUsable();
    const row = await this.#db
      .selectFrom('agent_sessions')
      .selectAll()
      .where('host_uid', '=', hostUid)
      .where('ended_at', 'is', null)
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(1)
      .executeTakeFirst();
    return row === undefined ? undefined : agentSessionRow(row);
  }

  async touchAgentSession(id: string, seen: { lookedUpAt?: string; lastSeenAt?: string }): Promise<void> {
    this.#checkUsable();
    if (seen.lastSeenAt !== undefined) await this.#db.updateTable('agent_sessions').set({ last_seen_at: seen.lastSeenAt }).where('id', '=', id).execute();
    if (seen.lookedUpAt !== undefined) {
      await this.#db.updateTable('agent_sessions').set({ looked_up_at: seen.lookedUpAt }).where('id', '=', id).where('looked_up_at', 'is', null).execute();
    }
  }

  async endAgentSessions(hostUid: string, at: string): Promise<AgentSession[]> {
    this.#checkUsable();
    return this.transaction(async (tx) => (tx as KyselyStore).#endSessions(hostUid, at));
  }

  async #endSessions(hostUid: string, at: string): Promise<AgentSession[]> {
    const rows = await this.#db.selectFrom('agent_sessions').selectAll().where('host_uid', '=', hostUid).where('ended_at', 'is', null).execute();
    if (rows.length === 0) return [];
    await this.#db.updateTable('agent_sessions').set({ ended_at: at }).where('host_uid', '=', hostUid).where('ended_at', 'is', null).execute();
    return rows.map((row) => agentSessionRow({ ...row, ended_at: at }));
  }

  // ---------------------------------------------------------------- IP allocations and host bindings

  async allocateAddress(request: AddressAllocationRequest): Promise<IpAllocation> {
    this.#checkUsable();
    const plan = allocationPlan(request);
    const { poolUid, claimUid } = request;
    // No surrounding transaction on purpose: each INSERT is atomic on its own and the UNIQUE
    // constraints decide every race. (A read-then-write transaction would, on SQLite with
    // several connections, fail with SQLITE_BUSY_SNAPSHOT instead of waiting.)
    const held = await this.#claimAllocation(poolUid, claimUid);
    if (held !== undefined) return checkHeld(held, request, plan);

    const tryInsert = async (address: IpAddress): Promise<IpAllocation | undefined> => {
      const row = { pool_uid: poolUid, address: formatIp(address), family: address.family, claim_uid: claimUid, created_at: nowIso() };
      const inserted = await this.#db.insertInto('ip_allocations').values(row).onConflict((oc) => oc.doNothing()).returning('address').executeTakeFirst();
      return inserted === undefined ? undefined : ipAllocationRow(row);
    };

    if (plan.requested !== undefined) {
      const mine = await tryInsert(plan.requested);
      if (mine !== undefined) return mine;
      const raced = await this.#claimAllocation(poolUid, claimUid);
      if (raced !== undefined) return checkHeld(raced, request, plan);
      throw new IngotError(
        'INGOT_ERR_ALREADY_EXISTS',
        `address ${formatIp(plan.requested)} of IP pool "${request.poolName}" is already allocated to another claim; ask for another address, or leave it out to get the lowest free one`,
        { details: [{ field: 'requested', message: 'already allocated' }] },
      );
    }

    // The allocated set is read once; each conflict (another process took the candidate
    // meanwhile) adds to it and the walk goes on, so at most |allocated| + |reserved| + 1
    // candidates are looked at, however large the ranges are.
    const rows = await this.#db.selectFrom('ip_allocations').select('address').where('pool_uid', '=', poolUid).execute();
    const skip = new Set<bigint>(plan.reserved);
    for (const row of rows) {
      const parsed = parseIp(row.address);
      if (parsed !== undefined && parsed.family === plan.family) skip.add(parsed.value);
    }
    for (const range of plan.ranges) {
      for (let value = range.start; value <= range.end; value++) {
        if (skip.has(value)) continue;
        const mine = await tryInsert({ family: plan.family, value });
        if (mine !== undefined) return mine;
        const raced = await this.#claimAllocation(poolUid, claimUid);
        if (raced !== undefined) return raced;
        skip.add(value);
      }
    }
    throw new IngotError(
      'INGOT_ERR_UNPROCESSABLE',
      `IP pool "${request.poolName}" is exhausted: every assignable address of its ranges is allocated; add a range to its spec.ranges or release a claim that holds one`,
    );
  }

  async #claimAllocation(poolUid: string, claimUid: string): Promise<IpAllocation | undefined> {
    const row = await this.#db.selectFrom('ip_allocations').selectAll().where('pool_uid', '=', poolUid).where('claim_uid', '=', claimUid).executeTakeFirst();
    return row === undefined ? undefined : ipAllocationRow(row);
  }

  async releaseAddresses(claimUid: string): Promise<IpAllocation[]> {
    this.#checkUsable();
    const rows = await this.#db.deleteFrom('ip_allocations').where('claim_uid', '=', claimUid).returningAll().execute();
    return sortAllocations(rows.map(ipAllocationRow));
  }

  async listAllocations(poolUid: string): Promise<IpAllocation[]> {
    this.#checkUsable();
    const rows = await this.#db.selectFrom('ip_allocations').selectAll().where('pool_uid', '=', poolUid).execute();
    return sortAllocations(rows.map(ipAllocationRow));
  }

  async listClaimAllocations(claimUid: string): Promise<IpAllocation[]> {
    this.#checkUsable();
    const rows = await this.#db.selectFrom('ip_allocations').selectAll().where('claim_uid', '=', claimUid).execute();
    return sortAllocations(rows.map(ipAllocationRow));
  }

  async bindHost(hostUid: string, claimUid: string, project: string): Promise<boolean> {
    this.#checkUsable();
    if (hostUid === '' || claimUid === '') throw new Error('bindHost needs a host uid and a claim uid');
    const inserted = await this.#db
      .insertInto('host_bindings')
      .values({ host_uid: hostUid, claim_uid: claimUid, project, created_at: nowIso() })
      .onConflict((oc) => oc.doNothing())
      .returning('host_uid')
      .executeTakeFirst();
    if (inserted !== undefined) return true;
    const existing = await this.#db.selectFrom('host_bindings').select('claim_uid').where('host_uid', '=', hostUid).executeTakeFirst();
    return existing?.claim_uid === claimUid;
  }

  async unbindHost(claimUid: string): Promise<HostBinding | undefined> {
    this.#checkUsable();
    const row = await this.#db.deleteFrom('host_bindings').where('claim_uid', '=', claimUid).returningAll().executeTakeFirst();
    return row === undefined ? undefined : hostBindingRow(row);
  }

  async getClaimBinding(claimUid: string): Promise<HostBinding | undefined> {
    this.#checkUsable();
    const row = await this.#db.selectFrom('host_bindings').selectAll().where('claim_uid', '=', claimUid).executeTakeFirst();
    return row === undefined ? undefined : hostBindingRow(row);
  }

  async listHostBindings(project?: string): Promise<HostBinding[]> {
    this.#checkUsable();
    let query = this.#db.selectFrom('host_bindings').selectAll();
    if (project !== undefined) query = query.where('project', '=', project);
    const rows = await query.orderBy('created_at').orderBy('host_uid').execute();
    return rows.map(hostBindingRow);
  }

  // ---------------------------------------------------------------- settings

  async getSetting(key: string): Promise<string | undefined> {
    this.#checkUsable();
    const row = await this.#db.selectFrom('settings').select('value').where('key', '=', key).executeTakeFirst();
    return row?.value;
  }

  async setSetting(key: string, value: string): Promise<void> {
    this.#checkUsable();
    await this.#db
      .insertInto('settings')
      .values({ key, value })
      .onConflict((oc) => oc.column('key').doUpdateSet({ value }))
      .execute();
  }

  // ---------------------------------------------------------------- lifecycle

  async close(): Promise<void> {
    if (this.#tx !== undefined) throw new Error('close() was called on a transaction store; close the store it came from');
    if (this.#shared.closed) return;
    this.#shared.closed = true;
    if (this.#shared.pruning !== undefined) await this.#shared.pruning;
    this.#shared.listeners.clear();
    await this.#db.destroy();
    if (this.#shared.onClose !== undefined) await this.#shared.onClose();
  }
}

// ------------------------------------------------------------------ helpers

// ------------------------------------------------------------------ IP allocation helpers

const MAX_ALLOCATION_RANGES = 64;

interface AllocationPlan {
  family: IpFamily;
  ranges: Array<{ start: bigint; end: bigint }>;
  reserved: bigint[];
  requested?: IpAddress;
}

/** Parses and checks an allocation request; the pool spec was validated, but the store trusts nothing it is handed. */
function allocationPlan(request: AddressAllocationRequest): AllocationPlan {
  if (request.poolUid === '' || request.claimUid === '') throw new Error('allocateAddress needs a pool uid and a claim uid');
  if (request.ranges.length === 0 || request.ranges.length > MAX_ALLOCATION_RANGES) {
    throw validationError([{ field: 'ranges', message: `needs 1 to ${MAX_ALLOCATION_RANGES} ranges, not ${request.ranges.length}` }]);
  }
  let family: IpFamily | undefined;
  const ranges: Array<{ start: bigint; end: bigint }> = [];
  request.ranges.forEach((range, index) => {
    const start = parseIp(range.start);
    const end = parseIp(range.end);
    if (start === undefined || end === undefined || start.family !== end.family || start.value > end.value || (family !== undefined && family !== start.family)) {
      throw validationError([{ field: `ranges[${index}]`, message: `${range.start}-${range.end} is not a range of one address family with start <= end` }]);
    }
    family = start.family;
    ranges.push({ start: start.value, end: end.value });
  });
  ranges.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const poolFamily = family as IpFamily;
  const reserved: bigint[] = [];
  for (const text of request.reserved ?? []) {
    const parsed = parseIp(text);
    if (parsed !== undefined && parsed.family === poolFamily) reserved.push(parsed.value);
  }
  const plan: AllocationPlan = { family: poolFamily, ranges, reserved };
  if (request.requested !== undefined) {
    const requested = parseIp(request.requested);
    const where = `IP pool "${request.poolName}"`;
    if (requested === undefined) throw validationError([{ field: 'requested', message: `"${request.requested}" is not an IPv4 or IPv6 address` }]);
    if (requested.family !== poolFamily) throw validationError([{ field: 'requested', message: `${request.requested} is IPv${requested.family} but ${where} is IPv${poolFamily}` }]);
    if (!ranges.some((r) => r.start <= requested.value && requested.value <= r.end)) {
      throw validationError([{ field: 'requested', message: `${request.requested} is outside the ranges of ${where}; ask for an address inside them` }]);
    }
    if (reserved.includes(requested.value)) {
      throw validationError([{ field: 'requested', message: `${request.requested} is reserved in ${where} (gateway, network or broadcast address); ask for another` }]);
    }
    plan.requested = requested;
  }
  return plan;
}

/** A claim asking again: same answer, unless it now asks for a different specific address. */
function checkHeld(held: IpAllocation, request: AddressAllocationRequest, plan: AllocationPlan): IpAllocation {
  if (plan.requested !== undefined && held.address !== formatIp(plan.requested)) {
    throw new IngotError(
      'INGOT_ERR_ALREADY_EXISTS',
      `the claim already holds ${held.address} in IP pool "${request.poolName}" (one address per claim per pool); release it before asking for ${formatIp(plan.requested)}`,
      { details: [{ field: 'requested', message: 'the claim already holds another address in this pool' }] },
    );
  }
  return held;
}

function ipAllocationRow(row: Selectable<IpAllocationsTable>): IpAllocation {
  return { poolUid: row.pool_uid, address: row.address, family: Number(row.family) === 6 ? 6 : 4, claimUid: row.claim_uid, createdAt: row.created_at };
}

function sortAllocations(allocations: IpAllocation[]): IpAllocation[] {
  const key = (a: IpAllocation): IpAddress => parseIp(a.address) ?? { family: a.family, value: 0n };
  return allocations.sort((a, b) => (a.poolUid < b.poolUid ? -1 : a.poolUid > b.poolUid ? 1 : compareIp(key(a), key(b))));
}

function hostBindingRow(row: Selectable<HostBindingsTable>): HostBinding {
  return { hostUid: row.host_uid, claimUid: row.claim_uid, project: row.project, createdAt: row.created_at };
}

function nowIso(): string {
  return new Date().toISOString();
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

function checkKey(key: { kind: string; name: string }): void {
  const problems = [];
  if (typeof key.kind !== 'string' || key.kind === '') problems.push({ field: 'kind', message: 'must be a non-empty string' });
  if (typeof key.name !== 'string' || key.name === '') problems.push({ field: 'metadata.name', message: 'must be a non-empty string' });
  if (problems.length > 0) throw validationError(problems);
}

function checkVersion(version: number, field = 'metadata.resourceVersion'): void {
  if (!Number.isSafeInteger(version) || version < 0) {
    throw validationError([{ field, message: `must be a non-negative integer, not ${String(version)}` }]);
  }
}

function checkLimit(limit: number | undefined, field: string): number {
  if (limit === undefined) return DEFAULT_LIST_LIMIT;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIST_LIMIT) {
    throw validationError([{ field, message: `must be an integer from 1 to ${MAX_LIST_LIMIT}, not ${String(limit)}; page with \`continue\` for more` }]);
  }
  return limit;
}

function recreated(kind: string, name: string): IngotError {
  return new IngotError(
    'INGOT_ERR_CONFLICT',
    `${kind} "${name}" was deleted and created again since you read it; read it again and reapply your change`,
  );
}

interface Cursor {
  project: string;
  name: string;
}

function encodeCursor(cursor: Cursor): string {
  return Buffer.from(JSON.stringify([cursor.project, cursor.name]), 'utf8').toString('base64url');
}

function decodeCursor(text: string): Cursor {
  const invalid = () =>
    validationError([{ field: 'continue', message: 'is not a cursor this server handed out; pass the `continue` value of the previous page unchanged, or omit it to start over' }]);
  if (text.length > MAX_CURSOR_LENGTH || !/^[A-Za-z0-9_-]+$/.test(text)) throw invalid();
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    throw invalid();
  }
  if (!Array.isArray(parsed) || parsed.length !== 2 || typeof parsed[0] !== 'string' || typeof parsed[1] !== 'string') throw invalid();
  return { project: parsed[0], name: parsed[1] };
}

function resourceToRow(resource: StoredResource): ResourcesTable {
  return {
    kind: resource.kind,
    project: resource.project,
    name: resource.name,
    uid: resource.uid,
    resource_version: resource.resourceVersion,
    labels: JSON.stringify(resource.labels),
    annotations: JSON.stringify(resource.annotations),
    spec: JSON.stringify(resource.spec),
    status: JSON.stringify(resource.status),
    created_at: resource.createdAt,
    updated_at: resource.updatedAt,
    deletion_timestamp: resource.deletionTimestamp ?? null,
  };
}

function rowToResource(row: Selectable<ResourcesTable>): StoredResource {
  const resource: StoredResource = {
    kind: row.kind,
    project: row.project,
    name: row.name,
    uid: row.uid,
    resourceVersion: Number(row.resource_version),
    labels: JSON.parse(row.labels) as StoredResource['labels'],
    annotations: JSON.parse(row.annotations) as StoredResource['annotations'],
    spec: JSON.parse(row.spec) as StoredResource['spec'],
    status: JSON.parse(row.status) as StoredResource['status'],
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
  if (row.deletion_timestamp !== null) resource.deletionTimestamp = row.deletion_timestamp;
  return resource;
}

function eventRowToEvent(row: {
  id: number | string;
  kind: string;
  project: string;
  name: string;
  uid: string;
  type: string;
  reason: string;
  message: string;
  from_state: string | null;
  to_state: string | null;
  created_at: string;
}): StoredEvent {
  const event: StoredEvent = {
    id: Number(row.id),
    kind: row.kind,
    project: row.project,
    name: row.name,
    uid: row.uid,
    type: row.type as StoredEvent['type'],
    reason: row.reason,
    message: row.message,
    createdAt: row.created_at,
  };
  if (row.from_state !== null) event.fromState = row.from_state;
  if (row.to_state !== null) event.toState = row.to_state;
  return event;
}

function secretRowToCiphertext(row: Selectable<SecretDataTable>): SecretCiphertext {
  return { uid: row.uid, version: Number(row.version), keyId: row.key_id, ciphertext: Buffer.from(row.ciphertext) };
}

function tokenRowToToken(row: Selectable<TokensTable>): StoredToken {
  const token: StoredToken = {
    id: row.id,
    hash: row.hash,
    description: row.description,
    roles: JSON.parse(row.roles) as string[],
    project: row.project,
    type: row.type as StoredToken['type'],
    hostUid: row.host_uid,
    expiresAt: Number(row.expires_at),
    createdAt: row.created_at,
  };
  if (row.last_used_at !== null) token.lastUsedAt = row.last_used_at;
  if (row.revoked_at !== null) token.revokedAt = row.revoked_at;
  if (row.principal) token.principal = row.principal;
  return token;
}

function approvalRow(row: Selectable<ApprovalsTable>): StoredApproval {
  const approval: StoredApproval = {
    id: row.id,
    action: row.action,
    targetKind: row.target_kind,
    targetName: row.target_name,
    request: JSON.parse(row.request) as StoredApproval['request'],
    cause: row.cause,
    requestedBy: row.requested_by,
    requestedAt: row.requested_at,
    expiresAt: row.expires_at,
    state: row.state as ApprovalState,
  };
  if (row.decided_by !== null) approval.decidedBy = row.decided_by;
  if (row.decided_at !== null) approval.decidedAt = row.decided_at;
  if (row.reason !== null) approval.reason = row.reason;
  return approval;
}

function agentCommandRow(row: Selectable<AgentCommandsTable>): AgentCommand {
  const command: AgentCommand = {
    id: row.id,
    hostUid: row.host_uid,
    operationId: row.operation_id,
    kind: row.kind,
    request: JSON.parse(row.request) as Record<string, unknown>,
    state: row.state as AgentCommand['state'],
    percent: Number(row.percent),
    message: row.message,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
  if (row.result !== null) command.result = JSON.parse(row.result) as Record<string, unknown>;
  return command;
}

function agentSessionRow(row: Selectable<AgentSessionsTable>): AgentSession {
  const session: AgentSession = {
    id: row.id,
    hostUid: row.host_uid,
    bootId: row.boot_id,
    tokenId: row.token_id,
    mediaHash: row.media_hash,
    bootConfig: JSON.parse(row.boot_config) as Record<string, unknown>,
    sealedToken: Buffer.from(row.sealed_token),
    createdAt: row.created_at,
    expiresAt: Number(row.expires_at),
  };
  if (row.looked_up_at !== null) session.lookedUpAt = row.looked_up_at;
  if (row.last_seen_at !== null) session.lastSeenAt = row.last_seen_at;
  if (row.ended_at !== null) session.endedAt = row.ended_at;
  return session;
}

// ------------------------------------------------------------------ audit helpers

/** Field bounds for audit events: enough for any real value, small enough to keep rows small. */
export const AUDIT_LIMITS = {
  actor: 256,
  role: 128,
  roles: 64,
  project: 253,
  sourceAddress: 128,
  requestId: 128,
  action: 128,
  targetField: 253,
  reason: 1024,
  /** Serialized size of `changes`; a larger list is replaced by one summary entry. */
  changesBytes: 64 * 1024,
} as const;

const AUDIT_ID = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;

function checkSeq(value: number, field: string): number {
  if (!Number.isSafeInteger(value) || value < 0) throw validationError([{ field, message: `must be a non-negative integer, not ${String(value)}` }]);
  return value;
}

function checkTime(value: string, field: string): string {
  if (typeof value !== 'string' || value.length > 64 || Number.isNaN(Date.parse(value))) {
    throw validationError([{ field, message: 'must be an ISO 8601 date-time such as 2026-01-31T12:00:00Z' }]);
  }
  return new Date(value).toISOString();
}

/** Validates and bounds a new event (truncating rather than refusing: an audit event must not be lost). */
function prepareAuditEvent(event: NewAuditEvent): Omit<StoredAuditEvent, 'seq' | 'prevHash' | 'hash'> {
  const problems = [];
  if (typeof event.actor !== 'string' || event.actor === '') problems.push({ field: 'actor', message: 'must be a non-empty string' });
  if (typeof event.action !== 'string' || event.action === '') problems.push({ field: 'action', message: 'must be a non-empty string' });
  if (!(AUDIT_OUTCOMES as readonly string[]).includes(event.outcome)) {
    problems.push({ field: 'outcome', message: `must be one of ${AUDIT_OUTCOMES.join(', ')}` });
  }
  if (!Array.isArray(event.roles) || event.roles.some((r) => typeof r !== 'string')) problems.push({ field: 'roles', message: 'must be a list of strings' });
  if (event.id !== undefined && !AUDIT_ID.test(event.id)) problems.push({ field: 'id', message: 'must be 1-64 letters, digits, and . _ : -' });
  if (event.time !== undefined && (typeof event.time !== 'string' || Number.isNaN(Date.parse(event.time)))) {
    problems.push({ field: 'time', message: 'must be an ISO 8601 date-time' });
  }
  if (problems.length > 0) throw validationError(problems);
  const bound = (value: string | undefined, max: number) => truncate(typeof value === 'string' ? value : '', max);
  return {
    id: event.id ?? randomUUID(),
    time: event.time === undefined ? nowIso() : new Date(event.time).toISOString(),
    actor: bound(event.actor, AUDIT_LIMITS.actor),
    roles: event.roles.slice(0, AUDIT_LIMITS.roles).map((r) => truncate(r, AUDIT_LIMITS.role)),
    project: bound(event.project, AUDIT_LIMITS.project),
    sourceAddress: bound(event.sourceAddress, AUDIT_LIMITS.sourceAddress),
    requestId: bound(event.requestId, AUDIT_LIMITS.requestId),
    action: bound(event.action, AUDIT_LIMITS.action),
    target: {
      kind: bound(event.target?.kind, AUDIT_LIMITS.targetField),
      project: bound(event.target?.project, AUDIT_LIMITS.targetField),
      name: bound(event.target?.name, AUDIT_LIMITS.targetField),
    },
    outcome: event.outcome,
    reason: bound(event.reason, AUDIT_LIMITS.reason),
    changes: boundChanges(event.changes ?? []),
    ...(event.repeatCount !== undefined && Number.isInteger(event.repeatCount) && event.repeatCount > 1 ? { repeatCount: event.repeatCount } : {}),
  };
}

/**
 * Changes go through JSON once here, so what is hashed is exactly what a reader gets back
 * from the database (no undefined members, no Dates, no -0).
 */
function boundChanges(changes: readonly AuditChange[]): AuditChange[] {
  const normalized = JSON.parse(canonicalJson(changes)) as AuditChange[];
  const bytes = Buffer.byteLength(JSON.stringify(normalized), 'utf8');
  if (bytes <= AUDIT_LIMITS.changesBytes) return normalized;
  return [{ path: '(changes)', after: `[${normalized.length} changes, ${bytes} bytes: too large to keep in the audit trail]` }];
}

function auditEventToRow(event: StoredAuditEvent): Insertable<AuditEventsTable> {
  return {
    seq: event.seq,
    id: event.id,
    time: event.time,
    actor: event.actor,
    roles: JSON.stringify(event.roles),
    project: event.project,
    source_address: event.sourceAddress,
    request_id: event.requestId,
    action: event.action,
    target_kind: event.target.kind,
    target_project: event.target.project,
    target_name: event.target.name,
    outcome: event.outcome,
    reason: event.reason,
    changes: JSON.stringify(event.changes),
    prev_hash: event.prevHash,
    hash: event.hash,
    repeat_count: event.repeatCount ?? 1,
  };
}

function rowToAuditEvent(row: Selectable<AuditEventsTable>): StoredAuditEvent {
  return {
    seq: Number(row.seq),
    id: row.id,
    time: row.time,
    actor: row.actor,
    roles: parseTamperable(row.roles) as string[],
    project: row.project,
    sourceAddress: row.source_address,
    requestId: row.request_id,
    action: row.action,
    target: { kind: row.target_kind, project: row.target_project, name: row.target_name },
    outcome: row.outcome as StoredAuditEvent['outcome'],
    reason: row.reason,
    changes: parseTamperable(row.changes) as AuditChange[],
    prevHash: row.prev_hash,
    hash: row.hash,
    ...(Number(row.repeat_count) > 1 ? { repeatCount: Number(row.repeat_count) } : {}),
  };
}

/**
 * JSON columns of the audit trail are only ever written by this file, so unparseable text
 * means someone edited the row: return a marker (whose hash cannot match) instead of
 * throwing, so `ingot audit verify` names the row rather than crashing.
 */
function parseTamperable(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return ['[unparseable JSON in the database]'];
  }
}
