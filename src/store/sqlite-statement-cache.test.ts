import BetterSqlite3 from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { withStatementCache } from './sqlite-statement-cache.js';

describe('SQLite statement cache', () => {
  it('compiles each SQL text once and reuses the statement', () => {
    const connection = new BetterSqlite3(':memory:');
    let compiled = 0;
    const prepare = connection.prepare.bind(connection);
    connection.prepare = ((sql: string) => (compiled++, prepare(sql))) as typeof connection.prepare;
    const db = withStatementCache(connection);
    db.prepare('create table t (a integer)').run([]);
    const insert = db.prepare('insert into t (a) values (?)');
    for (let i = 0; i < 5; i++) expect(db.prepare('insert into t (a) values (?)')).toBe(insert);
    for (let i = 0; i < 5; i++) db.prepare('insert into t (a) values (?)').run([i]);
    expect(db.prepare('select count(*) as n from t').all([])).toEqual([{ n: 5 }]);
    expect(compiled).toBe(3);
    db.close();
  });

  it('keeps at most `size` statements, dropping the least recently used', () => {
    const connection = new BetterSqlite3(':memory:');
    const compiled: string[] = [];
    const prepare = connection.prepare.bind(connection);
    connection.prepare = ((sql: string) => (compiled.push(sql), prepare(sql))) as typeof connection.prepare;
    const db = withStatementCache(connection, 2);
    db.prepare('select 1');
    db.prepare('select 2');
    db.prepare('select 1'); // hit: now the most recently used
    db.prepare('select 3'); // miss: evicts "select 2", the least recently used
    db.prepare('select 1'); // still cached
    db.prepare('select 2'); // compiled again
    expect(compiled).toEqual(['select 1', 'select 2', 'select 3', 'select 2']);
    expect(db.prepare('select 2').all([])).toEqual([{ 2: 2 }]);
    db.close();
  });
});
