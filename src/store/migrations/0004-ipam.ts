// IP address allocations and host bindings. The UNIQUE constraints are the whole
// concurrency story: however many server processes allocate or schedule at once, the database
// refuses a second row for the same (pool, address) or the same host or claim, so an address
// is never handed out twice and a host never serves two claims. Callers insert with
// ON CONFLICT DO NOTHING and move on to the next candidate (see docs/tenancy.md).
// - ip_allocations: `address` is the canonical text (src/model/ip-address.ts), so two
//   spellings of one IPv6 address cannot both be inserted. (pool_uid, claim_uid) is unique
//   too: a claim holds at most one address per pool, and a retried allocation finds it.
// - host_bindings: one row per bound host; host_uid and claim_uid are each unique.
import { type Kysely, type Migration } from 'kysely';
import type { Dialect } from '../store.js';

export function ipamMigration(_dialect: Dialect): Migration {
  return {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema
        .createTable('ip_allocations')
        .addColumn('pool_uid', 'text', (c) => c.notNull())
        .addColumn('address', 'text', (c) => c.notNull())
        .addColumn('family', 'integer', (c) => c.notNull())
        .addColumn('claim_uid', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('ip_allocations_pool_address', ['pool_uid', 'address'])
        .addUniqueConstraint('ip_allocations_pool_claim', ['pool_uid', 'claim_uid'])
        .execute();
      await db.schema.createIndex('ip_allocations_claim').on('ip_allocations').column('claim_uid').execute();

      await db.schema
        .createTable('host_bindings')
        .addColumn('host_uid', 'text', (c) => c.primaryKey())
        .addColumn('claim_uid', 'text', (c) => c.notNull().unique())
        .addColumn('project', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('host_bindings_project').on('host_bindings').column('project').execute();
    },

    async down(db: Kysely<any>): Promise<void> {
      await db.schema.dropTable('host_bindings').execute();
      await db.schema.dropTable('ip_allocations').execute();
    },
  };
}
