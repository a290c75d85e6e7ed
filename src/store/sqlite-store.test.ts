import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openStore } from './open-store.js';
import { runStoreContract } from './store-contract.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'ingot-store-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  while (dirs.length > 0) rmSync(dirs.pop() as string, { recursive: true, force: true });
});

// Files rather than :memory:, so two Store instances can share one database (lease races).
runStoreContract('sqlite', async () => {
  const file = join(tempDir(), 'ingot.db');
  return { open: () => openStore({ database: file }) };
});

describe('SQLite store specifics', () => {
  it('creates the database file readable by its owner only, in WAL mode', async () => {
    const file = join(tempDir(), 'nested', 'dir', 'ingot.db');
    const store = await openStore({ database: file });
    await store.create({ kind: 'Host', name: 'a', spec: {}, status: {} });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(`${file}-wal`).mode & 0o777).toBe(0o600);
    expect(statSync(join(tempDir(), '..')).isDirectory()).toBe(true);
    await store.close();
  });

  it('tightens an existing database file that others could read, and says so', async () => {
    const file = join(tempDir(), 'loose.db');
    writeFileSync(file, '', { mode: 0o644 });
    const logs: string[] = [];
    const store = await openStore({ database: file, log: (m) => logs.push(m) });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(logs.some((m) => m.includes('tightened permissions'))).toBe(true);
    expect(logs.some((m) => m.includes('0001-initial applied'))).toBe(true);
    await store.close();
  });

  it('migrates once: reopening keeps the data', async () => {
    const file = join(tempDir(), 'reopen.db');
    const first = await openStore({ database: file });
    await first.create({ kind: 'Host', name: 'a', spec: { x: 1 }, status: {} });
    await first.close();
    const logs: string[] = [];
    const second = await openStore({ database: file, log: (m) => logs.push(m) });
    expect((await second.get({ kind: 'Host', name: 'a' }))?.spec).toEqual({ x: 1 });
    expect(logs.filter((m) => m.includes('applied'))).toEqual([]);
    await second.close();
  });

  it('works in memory', async () => {
    const store = await openStore({ database: ':memory:' });
    await store.create({ kind: 'Host', name: 'a', spec: {}, status: {} });
    expect(await store.count('Host')).toBe(1);
    await store.close();
  });

  it('turns a root-store call inside its own transaction into an error instead of a hang', async () => {
    const store = await openStore({ database: ':memory:' });
    await expect(
      store.transaction(async () => {
        await store.get({ kind: 'Host', name: 'a' });
      }),
    ).rejects.toThrow(/use the `tx` store/);
    // The store still works afterwards.
    await store.create({ kind: 'Host', name: 'a', spec: {}, status: {} });
    await store.close();
  });

  it('prunes the change feed beyond its retention, keeping the newest change', async () => {
    const store = await openStore({ database: ':memory:', changeRetention: { maxRows: 3, maxAgeMs: 60 * 60 * 1000 } });
    for (let i = 0; i < 6; i++) await store.create({ kind: 'Host', name: `h${i}`, spec: {}, status: {} });
    const latest = await store.latestChangeSeq();
    expect(await store.pruneChanges()).toBe(3);
    expect((await store.changesSince(0, { kind: 'Host' })).map((c) => c.object.name)).toEqual(['h3', 'h4', 'h5']);
    expect(await store.oldestChangeSeq()).toBe(latest - 2);
    // Age: everything older than the window goes, except the newest row.
    expect(await store.pruneChanges(Date.now() + 2 * 60 * 60 * 1000)).toBe(2);
    expect(await store.latestChangeSeq()).toBe(latest);
    // Sequence numbers are never reused after pruning.
    await store.create({ kind: 'Host', name: 'h6', spec: {}, status: {} });
    expect(await store.latestChangeSeq()).toBe(latest + 1);
    await store.close();
  });

  it('refuses an empty database path with a clear message', async () => {
    await expect(openStore({ database: '' })).rejects.toThrow(/SQLite file path/);
  });
});
