// The audit trail: an append-only, hash-chained table plus a one-row head that
// records the last appended seq and hash.
// - seq is assigned by the store from the head (under the write-order lock), not by a
//   PostgreSQL sequence: sequences are not transactional, so a rolled-back append would leave
//   a gap that `ingot audit verify` could not tell from a deleted row. On SQLite the column is
//   still INTEGER PRIMARY KEY AUTOINCREMENT (never reused), on PostgreSQL a plain bigint key.
// - The head row lets verify notice a deleted tail, which a hash chain alone cannot.
import { sql, type Kysely, type Migration } from 'kysely';
import { AUDIT_GENESIS_HASH } from '../../model/audit-event.js';
import type { Dialect } from '../store.js';

export function auditMigration(dialect: Dialect): Migration {
  const pg = dialect === 'postgres';
  return {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema
        .createTable('audit_events')
        .addColumn('seq', pg ? 'bigint' : 'integer', (c) => (pg ? c.primaryKey() : c.primaryKey().autoIncrement()))
        .addColumn('id', 'text', (c) => c.notNull().unique())
        .addColumn('time', 'text', (c) => c.notNull())
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('roles', 'text', (c) => c.notNull().defaultTo('[]'))
        .addColumn('project', 'text', (c) => c.notNull().defaultTo(''))
        .addColumn('source_address', 'text', (c) => c.notNull().defaultTo(''))
        .addColumn('request_id', 'text', (c) => c.notNull().defaultTo(''))
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('target_kind', 'text', (c) => c.notNull().defaultTo(''))
        .addColumn('target_project', 'text', (c) => c.notNull().defaultTo(''))
        .addColumn('target_name', 'text', (c) => c.notNull().defaultTo(''))
        .addColumn('outcome', 'text', (c) => c.notNull().check(sql`outcome in ('allowed', 'denied', 'failed', 'succeeded')`))
        .addColumn('reason', 'text', (c) => c.notNull().defaultTo(''))
        .addColumn('changes', 'text', (c) => c.notNull().defaultTo('[]'))
        .addColumn('prev_hash', 'text', (c) => c.notNull())
        .addColumn('hash', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('audit_events_time').on('audit_events').column('time').execute();
      await db.schema.createIndex('audit_events_actor_seq').on('audit_events').columns(['actor', 'seq']).execute();
      await db.schema.createIndex('audit_events_target_seq').on('audit_events').columns(['target_kind', 'target_project', 'target_name', 'seq']).execute();

      await db.schema
        .createTable('audit_head')
        .addColumn('id', 'integer', (c) => c.primaryKey().check(sql`id = 1`))
        .addColumn('seq', 'bigint', (c) => c.notNull())
        .addColumn('hash', 'text', (c) => c.notNull())
        .execute();
      await db.insertInto('audit_head').values({ id: 1, seq: 0, hash: AUDIT_GENESIS_HASH }).execute();
    },

    async down(db: Kysely<any>): Promise<void> {
      await db.schema.dropTable('audit_head').execute();
      await db.schema.dropTable('audit_events').execute();
    },
  };
}
