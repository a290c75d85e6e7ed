// Admitted rate-limited actions (the two-person rule's destructive-change window):
// one row per action let through, so every server process on one database counts the same
// window (Store.admitWindowedAction). `kind` names the window (e.g. 'destructive-host-change');
// `at` is epoch milliseconds. Rows older than their window are deleted as new ones arrive, so
// the table holds about one window's worth of rows per kind.
import { type Kysely, type Migration } from 'kysely';
import type { Dialect } from '../store.js';

export function actionWindowMigration(_dialect: Dialect): Migration {
  return {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema
        .createTable('action_window')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('at', 'bigint', (c) => c.notNull())
        .execute();
      // Both the count (kind = ? and at > ?) and the pruning (kind = ? and at <= ?) are range
      // scans of this index.
      await db.schema.createIndex('action_window_kind_at').on('action_window').columns(['kind', 'at']).execute();
    },

    async down(db: Kysely<any>): Promise<void> {
      await db.schema.dropTable('action_window').execute();
    },
  };
}
