// Kysely's SQLite driver prepares every query's SQL again on each execution; with better-sqlite3
// that is a full SQLite compile per call, and profiles of the claim and API benchmarks put it
// near the top. Queries are built from a small set of shapes, so the compiled statements are
// kept (least recently used first out, bounded) and reused. better-sqlite3 statements are
// reusable and re-prepare themselves after a schema change; the store never streams (iterate),
// so one statement is never busy in two queries at once.
import type { Database, Statement } from 'better-sqlite3';
import type { SqliteDatabase } from 'kysely';

export const DEFAULT_STATEMENT_CACHE_SIZE = 512;

export function withStatementCache(connection: Database, size = DEFAULT_STATEMENT_CACHE_SIZE): SqliteDatabase {
  const cache = new Map<string, Statement>();
  return {
    prepare(sql: string) {
      let statement = cache.get(sql);
      if (statement !== undefined) {
        // Map keeps insertion order: re-inserting marks it most recently used.
        cache.delete(sql);
      } else {
        statement = connection.prepare(sql);
        if (cache.size >= size) cache.delete(cache.keys().next().value as string);
      }
      cache.set(sql, statement);
      return statement as unknown as ReturnType<SqliteDatabase['prepare']>;
    },
    close() {
      cache.clear();
      connection.close();
    },
  };
}
