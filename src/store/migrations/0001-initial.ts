// The first schema. Column types are chosen to mean the same on SQLite and PostgreSQL; where
// the dialects differ (auto-increment keys, binary data, collation) the dialect is passed in.
import { sql, type Kysely, type Migration } from 'kysely';
import type { Dialect } from '../store.js';

export function initialMigration(dialect: Dialect): Migration {
  const pg = dialect === 'postgres';
  // Names sort byte-wise on both dialects (SQLite's default BINARY collation; "C" on
  // PostgreSQL, whose database default may be a locale), so keyset pagination orders the same.
  const text = pg ? sql`text collate "C"` : sql`text`;
  const serialKey = pg ? 'bigserial' : 'integer';
  return {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema
        .createTable('resources')
        .addColumn('kind', text, (c) => c.notNull())
        .addColumn('project', text, (c) => c.notNull().defaultTo(''))
        .addColumn('name', text, (c) => c.notNull())
        .addColumn('uid', 'text', (c) => c.notNull().unique())
        .addColumn('resource_version', 'integer', (c) => c.notNull())
        .addColumn('labels', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('annotations', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('spec', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('status', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addColumn('deletion_timestamp', 'text')
        .addPrimaryKeyConstraint('resources_pk', ['kind', 'project', 'name'])
        .execute();
      // list() across all projects pages by (name, project) within a kind.
      await db.schema.createIndex('resources_kind_name_project').on('resources').columns(['kind', 'name', 'project']).execute();

      await db.schema
        .createTable('events')
        .addColumn('id', serialKey, (c) => (pg ? c.primaryKey() : c.primaryKey().autoIncrement()))
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('project', 'text', (c) => c.notNull().defaultTo(''))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('uid', 'text', (c) => c.notNull())
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('reason', 'text', (c) => c.notNull())
        .addColumn('message', 'text', (c) => c.notNull())
        .addColumn('from_state', 'text')
        .addColumn('to_state', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('events_uid_id').on('events').columns(['uid', 'id']).execute();
      await db.schema.createIndex('events_key_id').on('events').columns(['kind', 'project', 'name', 'id']).execute();

      // AUTOINCREMENT on SQLite so a sequence number is never reused after pruning.
      await db.schema
        .createTable('changes')
        .addColumn('seq', serialKey, (c) => (pg ? c.primaryKey() : c.primaryKey().autoIncrement()))
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('project', 'text', (c) => c.notNull().defaultTo(''))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('object', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('changes_kind_seq').on('changes').columns(['kind', 'seq']).execute();
      await db.schema.createIndex('changes_created_at').on('changes').column('created_at').execute();

      await db.schema
        .createTable('leases')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('holder', 'text', (c) => c.notNull())
        .addColumn('purpose', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('secret_data')
        .addColumn('uid', 'text', (c) => c.primaryKey())
        .addColumn('version', 'integer', (c) => c.notNull())
        .addColumn('key_id', 'text', (c) => c.notNull())
        .addColumn('ciphertext', pg ? 'bytea' : 'blob', (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('tokens')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('hash', 'text', (c) => c.notNull().unique())
        .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
        .addColumn('roles', 'text', (c) => c.notNull().defaultTo('[]'))
        .addColumn('project', 'text', (c) => c.notNull().defaultTo(''))
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('host_uid', 'text', (c) => c.notNull().defaultTo(''))
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('last_used_at', 'text')
        .addColumn('revoked_at', 'text')
        .execute();

      await db.schema
        .createTable('settings')
        .addColumn('key', 'text', (c) => c.primaryKey())
        .addColumn('value', 'text', (c) => c.notNull())
        .execute();
    },

    async down(db: Kysely<any>): Promise<void> {
      for (const table of ['settings', 'tokens', 'secret_data', 'leases', 'changes', 'events', 'resources']) {
        await db.schema.dropTable(table).execute();
      }
    },
  };
}
