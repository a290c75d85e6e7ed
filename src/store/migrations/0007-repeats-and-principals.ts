// Two columns for hardening:
// - audit_events.repeat_count: identical refusals (same actor, address, action, target and
//   reason) repeated within a short window are recorded as one event with a count rather than
//   one row each, so a flood of refused requests cannot flood the trail. 1 for every other event.
// - tokens.principal: the person (or automation) a token acts for, kept across the tokens it
//   mints, so rules that need "another person" (the two-person rule) compare principals, not
//   token ids. '' for tokens made before this column (their own id is their principal).
import { sql, type Kysely, type Migration } from 'kysely';
import type { Dialect } from '../store.js';

export function repeatsAndPrincipalsMigration(_dialect: Dialect): Migration {
  return {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema.alterTable('audit_events').addColumn('repeat_count', 'integer', (c) => c.notNull().defaultTo(1)).execute();
      await db.schema.alterTable('tokens').addColumn('principal', 'text', (c) => c.notNull().defaultTo(sql`''`)).execute();
    },

    async down(db: Kysely<any>): Promise<void> {
      await db.schema.alterTable('tokens').dropColumn('principal').execute();
      await db.schema.alterTable('audit_events').dropColumn('repeat_count').execute();
    },
  };
}
