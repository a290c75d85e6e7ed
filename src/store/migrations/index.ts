// Migrations ship inside the compiled code (no files read at run time): a static provider
// hands Kysely's Migrator an ordered map of named migrations. Names sort in the order they
// run; never rename or edit one that has been released, add a new one instead.
import { Migrator, type Kysely, type Migration, type MigrationProvider } from 'kysely';
import type { Dialect } from '../store.js';
import { initialMigration } from './0001-initial.js';
import { auditMigration } from './0002-audit.js';
import { agentMigration } from './0003-agent.js';
import { ipamMigration } from './0004-ipam.js';
import { approvalsMigration } from './0005-approvals.js';
import { actionWindowMigration } from './0006-action-window.js';
import { repeatsAndPrincipalsMigration } from './0007-repeats-and-principals.js';

export function migrationsFor(dialect: Dialect): Record<string, Migration> {
  return {
    '0001-initial': initialMigration(dialect),
    '0002-audit': auditMigration(dialect),
    '0003-agent': agentMigration(dialect),
    '0004-ipam': ipamMigration(dialect),
    '0005-approvals': approvalsMigration(dialect),
    '0006-action-window': actionWindowMigration(dialect),
    '0007-repeats-and-principals': repeatsAndPrincipalsMigration(dialect),
  };
}

export class StaticMigrationProvider implements MigrationProvider {
  readonly #migrations: Record<string, Migration>;
  constructor(migrations: Record<string, Migration>) {
    this.#migrations = migrations;
  }
  async getMigrations(): Promise<Record<string, Migration>> {
    return this.#migrations;
  }
}

/**
 * Brings the schema up to date. On PostgreSQL, Kysely holds an advisory lock while it
 * migrates, so several servers starting at once migrate exactly once.
 */
export async function migrateToLatest(db: Kysely<any>, dialect: Dialect, log: (message: string) => void): Promise<void> {
  const migrator = new Migrator({ db, provider: new StaticMigrationProvider(migrationsFor(dialect)) });
  const { error, results } = await migrator.migrateToLatest();
  for (const result of results ?? []) {
    if (result.status === 'Success') log(`database migration ${result.migrationName} applied`);
    else if (result.status === 'Error') log(`database migration ${result.migrationName} failed`);
  }
  if (error !== undefined) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`database migration failed: ${reason}`, { cause: error });
  }
}
