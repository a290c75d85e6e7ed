import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { createTestDatabase, postgresForTests, type TestDatabase } from '../../test/support/postgres.js';
import { openStore } from './open-store.js';
import { runStoreContract } from './store-contract.js';

const server = await postgresForTests();

if ('skipReason' in server) {
  console.warn(`[ingot tests] skipping PostgreSQL store tests: ${server.skipReason}`);
  describe.skip(`PostgreSQL store (skipped: ${server.skipReason})`, () => {
    it('needs PostgreSQL', () => {});
  });
} else {
  // One database for the contract suite, emptied before each test: CREATE DATABASE costs
  // ~250 ms, TRUNCATE a few. (Every store the previous test opened is closed by then.)
  let contractDatabase: TestDatabase | undefined;
  afterAll(async () => {
    await contractDatabase?.drop();
  });
  runStoreContract('postgres', async () => {
    if (contractDatabase === undefined) {
      contractDatabase = await createTestDatabase(server.url);
    } else {
      const client = new pg.Client({ connectionString: contractDatabase.url });
      await client.connect();
      try {
        await client.query('TRUNCATE resources, events, changes, leases, secret_data, tokens, settings, audit_events, agent_commands, agent_sessions, ip_allocations, host_bindings, approvals, action_window RESTART IDENTITY');
        await client.query(`UPDATE audit_head SET seq = 0, hash = '${'0'.repeat(64)}'`);
      } finally {
        await client.end();
      }
    }
    const url = contractDatabase.url;
    return { open: () => openStore({ database: url, poolSize: 4 }) };
  });

  describe('PostgreSQL store specifics', () => {
    it('migrates once when several servers open the same database at the same moment', async () => {
      const database = await createTestDatabase(server.url);
      try {
        const stores = await Promise.all([1, 2, 3].map(() => openStore({ database: database.url, poolSize: 2 })));
        await stores[0]?.create({ kind: 'Host', name: 'a', spec: {}, status: {} });
        expect(await stores[2]?.count('Host')).toBe(1);
        for (const store of stores) await store.close();
      } finally {
        await database.drop();
      }
    });

    it('orders change sequence numbers by commit across concurrent writers', async () => {
      const database = await createTestDatabase(server.url);
      const a = await openStore({ database: database.url, poolSize: 4 });
      const b = await openStore({ database: database.url, poolSize: 4 });
      try {
        // A watcher polling while two stores write must never see seq N+1 before seq N.
        const seen: number[] = [];
        let cursor = 0;
        let writing = true;
        const watcher = (async () => {
          while (writing) {
            const batch = await a.changesSince(cursor, { kind: 'Host', limit: 1000 });
            for (const c of batch) seen.push(c.seq);
            cursor = batch.at(-1)?.seq ?? cursor;
          }
        })();
        await Promise.all(
          [a, b].map(async (store, w) => {
            for (let i = 0; i < 40; i++) await store.create({ kind: 'Host', name: `w${w}-${i}`, spec: {}, status: {} });
          }),
        );
        writing = false;
        await watcher;
        for (const c of await a.changesSince(cursor, { kind: 'Host', limit: 1000 })) seen.push(c.seq);
        expect(seen).toHaveLength(80);
        expect(new Set(seen).size).toBe(80);
      } finally {
        await a.close();
        await b.close();
        await database.drop();
      }
    });

    it('says where it failed to connect, without the password', async () => {
      const error = (await openStore({ database: 'postgres://ingot:s3cret-pw@127.0.0.1:1/nothing' }).then(
        () => new Error('opened unexpectedly'),
        (e: unknown) => e as Error,
      ));
      expect(error).toBeInstanceOf(Error);
      expect(error.message).toContain('cannot connect to PostgreSQL at 127.0.0.1:1/nothing');
      expect(error.message).not.toContain('s3cret-pw');
    });
  });
}
