// Opens the database named by `--database`: a postgres:// URL for PostgreSQL (any number of
// servers may share it), anything else a SQLite file (the embedded default). Migrations run
// on open, so a store handed out is always at the latest schema.
import { closeSync, chmodSync, mkdirSync, openSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect } from 'kysely';
import { withStatementCache } from './sqlite-statement-cache.js';
import pg from 'pg';
import { KyselyStore, type ChangeRetention } from './kysely-store.js';
import { migrateToLatest } from './migrations/index.js';
import type { Database } from './schema.js';
import type { OpenStoreOptions } from './store.js';

const POSTGRES_URL = /^postgres(ql)?:\/\//i;

/** Extra knobs for tests and benchmarks; production code passes OpenStoreOptions only. */
export interface OpenStoreTuning {
  changeRetention?: ChangeRetention;
  /** PostgreSQL pool size (default 10). */
  poolSize?: number;
}

export async function openStore(opts: OpenStoreOptions & OpenStoreTuning): Promise<KyselyStore> {
  const log = opts.log ?? (() => {});
  if (typeof opts.database !== 'string' || opts.database.trim() === '') {
    throw new Error('no database given: pass a SQLite file path, ":memory:", or a postgres:// URL');
  }
  return POSTGRES_URL.test(opts.database) ? openPostgres(opts, log) : openSqlite(opts, log);
}

async function openPostgres(opts: OpenStoreOptions & OpenStoreTuning, log: (message: string) => void): Promise<KyselyStore> {
  const where = describePostgresUrl(opts.database);
  const pool = new pg.Pool({ connectionString: opts.database, max: opts.poolSize ?? 10, application_name: 'ingot' });
  // An idle client losing its connection emits 'error' on the pool; unhandled, it would
  // crash the process. The next query gets a fresh connection.
  pool.on('error', (error) => log(`PostgreSQL connection error (${where}): ${error.message}`));
  try {
    const client = await pool.connect();
    client.release();
  } catch (error) {
    await pool.end().catch(() => {});
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`cannot connect to PostgreSQL at ${where}: ${reason}; check the --database URL and that the server is running`, { cause: error });
  }
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  return finishOpening(db, 'postgres', opts, log);
}

async function openSqlite(opts: OpenStoreOptions & OpenStoreTuning, log: (message: string) => void): Promise<KyselyStore> {
  const file = opts.database;
  const inMemory = file === ':memory:';
  if (!inMemory) prepareSqliteFile(file, log);
  let connection: BetterSqlite3.Database;
  try {
    connection = new BetterSqlite3(file);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`cannot open SQLite database ${file}: ${reason}`, { cause: error });
  }
  try {
    // WAL lets readers proceed while one writer commits; NORMAL sync is durable across
    // application crashes in WAL mode (https://www.sqlite.org/pragma.html#pragma_synchronous).
    if (!inMemory) connection.pragma('journal_mode = WAL');
    connection.pragma('foreign_keys = ON');
    connection.pragma('busy_timeout = 5000');
    connection.pragma('synchronous = NORMAL');
  } catch (error) {
    connection.close();
    throw error;
  }
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: withStatementCache(connection) }) });
  return finishOpening(db, 'sqlite', opts, log);
}

async function finishOpening(
  db: Kysely<Database>,
  dialect: 'sqlite' | 'postgres',
  opts: OpenStoreOptions & OpenStoreTuning,
  log: (message: string) => void,
): Promise<KyselyStore> {
  try {
    await migrateToLatest(db, dialect, log);
  } catch (error) {
    await db.destroy().catch(() => {});
    throw error;
  }
  const store = new KyselyStore(db, { dialect, log, ...(opts.changeRetention ? { changeRetention: opts.changeRetention } : {}) });
  try {
    await store.pruneChanges();
  } catch (error) {
    log(`pruning the change feed failed: ${error instanceof Error ? error.message : String(error)}`);
  }
  return store;
}

/**
 * The database holds token hashes, secret ciphertext and the audit trail: only its owner may
 * read it. The file is created 0600 before SQLite opens it (SQLite would use the umask), and
 * SQLite gives its -wal and -shm files the database file's permissions.
 */
function prepareSqliteFile(file: string, log: (message: string) => void): void {
  const path = resolve(file);
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  try {
    closeSync(openSync(path, 'wx', 0o600));
    return;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new Error(`cannot create SQLite database ${path}: ${(error as Error).message}`, { cause: error });
    }
  }
  for (const candidate of [path, `${path}-wal`, `${path}-shm`]) {
    let mode: number;
    try {
      mode = statSync(candidate).mode;
    } catch {
      continue;
    }
    if ((mode & 0o077) !== 0) {
      chmodSync(candidate, 0o600);
      log(`tightened permissions of ${candidate} to 0600 (it was readable by group or others)`);
    }
  }
}

/** host:port/database of a PostgreSQL URL, without user or password, for messages and logs. */
export function describePostgresUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.hostname || 'localhost'}:${parsed.port || '5432'}${parsed.pathname}`;
  } catch {
    return 'the given postgres:// URL (it could not be parsed)';
  }
}
