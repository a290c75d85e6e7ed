import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createTestDatabase, postgresForTests, type TestDatabase } from '../../../test/support/postgres.js';
import { openStore } from '../../store/open-store.js';
import type { NewAuditEvent, Store, StoredAuditEvent } from '../../store/store.js';
import { AUDIT_GENESIS_HASH, auditEventHash, canonicalJson, storedAuditEvents, verifyAuditChain, verifyStoredAuditChain } from './audit-hash.js';

function event(n: number): NewAuditEvent {
  return {
    actor: n % 2 ? 'token-admin' : 'token-ctl',
    roles: n % 2 ? ['platform-admin'] : ['controller'],
    sourceAddress: '127.0.0.1',
    requestId: `req-${n}`,
    action: 'host:update',
    target: { kind: 'Host', name: `h${n}` },
    outcome: 'succeeded',
    changes: [{ path: 'spec.online', before: false, after: n % 2 === 0 }],
  };
}

describe('canonicalJson', () => {
  it('sorts keys (integer-like ones too), drops undefined members, has no whitespace', () => {
    expect(canonicalJson({ b: 1, '10': 2, '2': 3, a: { d: undefined, c: [1, undefined, 'x'] } })).toBe('{"10":2,"2":3,"a":{"c":[1,null,"x"]},"b":1}');
    expect(canonicalJson({ x: Number.NaN, y: 'é\n' })).toBe('{"x":null,"y":"é\\n"}');
    expect(canonicalJson({ a: 1, b: 2 })).toBe(canonicalJson({ b: 2, a: 1 }));
  });
});

describe('verifyAuditChain on in-memory events', () => {
  function chain(n: number): StoredAuditEvent[] {
    const out: StoredAuditEvent[] = [];
    let prevHash = AUDIT_GENESIS_HASH;
    for (let seq = 1; seq <= n; seq++) {
      const content = {
        seq, id: `id-${seq}`, time: '2026-01-01T00:00:00.000Z', actor: 'a', roles: ['r'], project: '', sourceAddress: '', requestId: '',
        action: 'host:update', target: { kind: 'Host', project: '', name: `h${seq}` }, outcome: 'succeeded' as const, reason: '', changes: [], prevHash,
      };
      const hash = auditEventHash(content);
      out.push({ ...content, hash });
      prevHash = hash;
    }
    return out;
  }

  it('accepts an intact chain and an empty one', async () => {
    const events = chain(4);
    expect(await verifyAuditChain(events)).toEqual({ ok: true, count: 4, head: { seq: 4, hash: events[3]?.hash } });
    expect(await verifyAuditChain([])).toEqual({ ok: true, count: 0, head: { seq: 0, hash: AUDIT_GENESIS_HASH } });
  });

  it('refuses a first event whose prevHash is not the genesis value', async () => {
    const events = chain(3).slice(1).map((e) => ({ ...e, seq: e.seq - 1 }));
    const verdict = await verifyAuditChain(events);
    expect(verdict).toMatchObject({ ok: false, seq: 1, problem: 'prev-hash-mismatch' });
  });

  it('verifies a slice from a known position, and checks an expected head', async () => {
    const events = chain(5);
    const start = { seq: 2, hash: events[1]?.hash as string };
    expect(await verifyAuditChain(events.slice(2), { startAfter: start })).toMatchObject({ ok: true, count: 3 });
    const verdict = await verifyAuditChain(events.slice(0, 4), { expectedHead: { seq: 5, hash: events[4]?.hash as string } });
    expect(verdict).toMatchObject({ ok: false, seq: 5, problem: 'head-mismatch' });
    if (!verdict.ok) expect(verdict.message).toContain('events after seq 4 were deleted');
  });

  it('names a duplicated event as out of order', async () => {
    const events = chain(3);
    expect(await verifyAuditChain([events[0], events[1], events[1], events[2]] as StoredAuditEvent[])).toMatchObject({ ok: false, seq: 2, problem: 'seq-order', count: 2 });
  });
});

/** A database the test can tamper with directly in SQL, as an attacker with database access would. */
interface TamperableDatabase {
  store: Store;
  sql(statement: string, params?: unknown[]): Promise<void>;
  close(): Promise<void>;
}

const postgres = await postgresForTests();
const backends: Array<[string, () => Promise<TamperableDatabase>]> = [
  [
    'sqlite',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'ingot-audit-'));
      const file = join(dir, 'ingot.db');
      const store = await openStore({ database: file });
      const raw = new BetterSqlite3(file);
      return {
        store,
        async sql(statement, params = []) {
          raw.prepare(statement).run(...params);
        },
        async close() {
          raw.close();
          await store.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  ],
];
let pgDatabase: TestDatabase | undefined;
if ('url' in postgres) {
  backends.push([
    'postgres',
    async () => {
      pgDatabase ??= await createTestDatabase(postgres.url);
      const url = pgDatabase.url;
      const store = await openStore({ database: url, poolSize: 2 });
      const raw = new pg.Client({ connectionString: url });
      await raw.connect();
      await raw.query(`TRUNCATE audit_events; UPDATE audit_head SET seq = 0, hash = '${AUDIT_GENESIS_HASH}'`);
      return {
        store,
        async sql(statement, params = []) {
          let i = 0;
          await raw.query(statement.replace(/\?/g, () => `$${++i}`), params);
        },
        async close() {
          await raw.end();
          await store.close();
        },
      };
    },
  ]);
} else {
  console.warn(`[ingot tests] audit tampering tests run on SQLite only: ${postgres.skipReason}`);
}
afterAll(async () => {
  await pgDatabase?.drop();
});

describe.each(backends)('verifyStoredAuditChain against tampering in SQL (%s)', (_name, open) => {
  let db: TamperableDatabase;
  let appended: StoredAuditEvent[];

  beforeEach(async () => {
    db = await open();
    appended = [];
    for (let n = 1; n <= 6; n++) appended.push(await db.store.appendAuditEvent(event(n)));
  });
  afterEach(async () => {
    await db.close();
  });

  it('an untouched chain verifies, and keeps verifying as it grows', async () => {
    expect(await verifyStoredAuditChain(db.store)).toEqual({ ok: true, count: 6, head: { seq: 6, hash: appended[5]?.hash } });
    await db.store.appendAuditEvent(event(7));
    expect(await verifyStoredAuditChain(db.store, { pageSize: 2 })).toMatchObject({ ok: true, count: 7 });
  });

  it('an edited row is named as edited', async () => {
    await db.sql(`UPDATE audit_events SET actor = 'mallory' WHERE seq = 3`);
    const verdict = await verifyStoredAuditChain(db.store, { pageSize: 2 });
    expect(verdict).toMatchObject({ ok: false, seq: 3, id: appended[2]?.id, problem: 'hash-mismatch', count: 2 });
    if (!verdict.ok) expect(verdict.message).toContain('was edited');
  });

  it('a row whose JSON was mangled is named, not a crash', async () => {
    await db.sql(`UPDATE audit_events SET changes = '[{"path":' WHERE seq = 2`);
    expect(await verifyStoredAuditChain(db.store)).toMatchObject({ ok: false, seq: 2, problem: 'hash-mismatch' });
  });

  it('an edited and re-hashed row breaks the link to the next one', async () => {
    const edited = { ...(appended[2] as StoredAuditEvent), outcome: 'denied' as const };
    const { hash: _old, ...content } = edited;
    await db.sql(`UPDATE audit_events SET outcome = 'denied', hash = ? WHERE seq = 3`, [auditEventHash(content)]);
    expect(await verifyStoredAuditChain(db.store)).toMatchObject({ ok: false, seq: 4, id: appended[3]?.id, problem: 'prev-hash-mismatch' });
  });

  it('a deleted row is named by the gap it leaves, even after more events are appended', async () => {
    await db.sql(`DELETE FROM audit_events WHERE seq = 3`);
    const verdict = await verifyStoredAuditChain(db.store);
    expect(verdict).toMatchObject({ ok: false, seq: 4, problem: 'seq-gap' });
    if (!verdict.ok) expect(verdict.message).toContain('seq 3 is missing');
    await db.store.appendAuditEvent(event(7));
    expect(await verifyStoredAuditChain(db.store)).toMatchObject({ ok: false, seq: 4, problem: 'seq-gap' });
  });

  it('reordered rows (seq values swapped) are named at the first moved row', async () => {
    await db.sql(`UPDATE audit_events SET seq = 1000 WHERE seq = 3`);
    await db.sql(`UPDATE audit_events SET seq = 3 WHERE seq = 4`);
    await db.sql(`UPDATE audit_events SET seq = 4 WHERE seq = 1000`);
    expect(await verifyStoredAuditChain(db.store)).toMatchObject({ ok: false, seq: 3, id: appended[3]?.id, problem: 'prev-hash-mismatch' });
  });

  it('a deleted tail is caught by the recorded head; appending afterwards leaves a gap', async () => {
    await db.sql(`DELETE FROM audit_events WHERE seq >= 5`);
    const verdict = await verifyStoredAuditChain(db.store);
    expect(verdict).toMatchObject({ ok: false, seq: 5, problem: 'head-mismatch', count: 4 });
    await db.store.appendAuditEvent(event(7));
    expect(await verifyStoredAuditChain(db.store)).toMatchObject({ ok: false, seq: 7, problem: 'seq-gap' });
  });

  it('a forged row appended without moving the head is caught', async () => {
    const last = appended[5] as StoredAuditEvent;
    const forged = { ...last, seq: 7, id: 'forged', prevHash: last.hash };
    const { hash: _h, ...content } = forged;
    await db.sql(
      `INSERT INTO audit_events (seq, id, time, actor, roles, project, source_address, request_id, action, target_kind, target_project, target_name, outcome, reason, changes, prev_hash, hash)
       SELECT 7, 'forged', time, actor, roles, project, source_address, request_id, action, target_kind, target_project, target_name, outcome, reason, changes, prev_hash, ? FROM audit_events WHERE seq = 6`,
      [auditEventHash(content)],
    );
    await db.sql(`UPDATE audit_events SET prev_hash = ? WHERE seq = 7`, [last.hash]);
    const events = [];
    for await (const e of storedAuditEvents(db.store)) events.push(e);
    expect(events.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(await verifyAuditChain(events)).toMatchObject({ ok: true, count: 7 });
    expect(await verifyStoredAuditChain(db.store)).toMatchObject({ ok: false, problem: 'head-mismatch' });
  });
});
