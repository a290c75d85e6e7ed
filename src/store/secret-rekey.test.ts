// Rekeying secrets while they are being read: real SQLite, real key files in a temp dir, and a
// second SecretBox on the same key file standing for another server process.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openStore } from './open-store.js';
import { previousKeysDir, SecretBox } from './secret-box.js';
import { readSecretValues } from './secret-reader.js';
import { rekeySecrets } from './secret-rekey.js';
import type { Store } from './store.js';

const dirs: string[] = [];
const stores: Store[] = [];
afterEach(async () => {
  while (stores.length > 0) await stores.pop()!.close();
  while (dirs.length > 0) rmSync(dirs.pop()!, { recursive: true, force: true });
});

async function setup(n: number) {
  const dir = mkdtempSync(join(tmpdir(), 'ingot-rekey-'));
  dirs.push(dir);
  const store = await openStore({ database: join(dir, 'ingot.db') });
  stores.push(store);
  const keyFile = join(dir, 'secrets.key');
  const box = await SecretBox.fromKeyFile(keyFile);
  const expected = new Map<string, Record<string, string>>();
  for (let i = 0; i < n; i++) {
    const name = `s-${i}`;
    const values = { username: `user-${i}`, password: `pw-${i}-${'x'.repeat(i % 7)}` };
    const created = await store.create({ kind: 'Secret', name, spec: { type: 'Opaque' }, status: { keys: ['password', 'username'], version: 1 } });
    await store.putSecretCiphertext({ uid: created.uid, version: 1, keyId: box.keyId, ciphertext: box.seal(values, created.uid) });
    expected.set(name, values);
  }
  return { dir, store, keyFile, box, expected };
}

describe('rekeySecrets', () => {
  it('re-seals every row under a new key while reads continue; values unchanged; old key retired only after', async () => {
    const N = 60;
    const { store, keyFile, box, expected } = await setup(N);
    const oldKeyId = box.keyId;
    const otherProcess = await SecretBox.fromKeyFile(keyFile);

    // 1. Readers (this process and "another" one) read continuously during the rekey.
    let reading = true;
    let reads = 0;
    const failures: string[] = [];
    const reader = async (readerBox: SecretBox) => {
      let i = 0;
      while (reading) {
        const name = `s-${i++ % N}`;
        try {
          const got = await readSecretValues(store, readerBox, { name });
          if (JSON.stringify(got?.values) !== JSON.stringify(expected.get(name))) failures.push(`${name}: wrong values`);
          reads += 1;
        } catch (error) {
          failures.push(`${name}: ${(error as Error).message}`);
        }
        await new Promise((r) => setImmediate(r));
      }
    };
    const readers = [reader(box), reader(otherProcess)];

    // 2. One secret is changed during the rekey by the other process (sealed with whatever key it now has).
    const changed = (async () => {
      await new Promise((r) => setTimeout(r, 1));
      const row = (await store.get({ kind: 'Secret', name: 's-5' }))!;
      const values = { username: 'user-5', password: 'rotated-password' };
      await store.putSecretCiphertext({ uid: row.uid, version: 2, keyId: otherProcess.keyId, ciphertext: otherProcess.seal(values, row.uid) });
      expected.set('s-5', values);
    })();

    const report = await rekeySecrets(store, box, { batchSize: 7 });
    await changed;
    // A rekey pass for the odd row the other process may have sealed before it saw the new key.
    const again = await rekeySecrets(store, box, { retireOnly: true });
    reading = false;
    await Promise.all(readers);

    expect(failures).toEqual([]);
    expect(reads).toBeGreaterThan(0);
    expect(report.previousKeyId).toBe(oldKeyId);
    expect(report.keyId).not.toBe(oldKeyId);
    expect(report.rows).toBe(N);
    expect(report.moved).toBeGreaterThanOrEqual(N - 1);
    expect(report.remaining).toBe(0);
    expect(report.retiredKeyIds).toEqual([]);
    // 3. Every row carries the new key id, in its column and in its header, and opens to the same values.
    const rows = await store.listSecretCiphertexts();
    expect(rows).toHaveLength(N);
    for (const row of rows) {
      expect(row.keyId).toBe(report.keyId);
      expect(SecretBox.keyIdOf(row.ciphertext)).toBe(report.keyId);
    }
    for (const [name, values] of expected) expect((await readSecretValues(store, box, { name }))?.values).toEqual(values);
    // 4. The key files: the new key is current, 0600; the old one was kept until retired.
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(statSync(previousKeysDir(keyFile)).mode & 0o777).toBe(0o700);
    expect(again.retiredKeyIds).toEqual([oldKeyId]);
    expect(readdirSync(previousKeysDir(keyFile))).toEqual([]);
    expect(box.keyIds()).toEqual([report.keyId]);

    // 5. A restart (a fresh box from the key file) opens everything; the old key is gone for good.
    const restarted = await SecretBox.fromKeyFile(keyFile);
    expect(restarted.keyIds()).toEqual([report.keyId]);
    for (const [name, values] of expected) expect((await readSecretValues(store, restarted, { name }))?.values).toEqual(values);
    // 6. The other process now seals under the new key.
    expect(otherProcess.keyId).toBe(report.keyId);
    expect(SecretBox.keyIdOf(otherProcess.seal({ a: 'b' }, 'x'))).toBe(report.keyId);
  });

  it('keeps an old key while any row still references it, and a restart before retiring opens old and new rows', async () => {
    const { store, keyFile, box, expected } = await setup(3);
    const oldKeyId = box.keyId;
    const report = await rekeySecrets(store, box);
    expect(report).toMatchObject({ moved: 3, remaining: 0, previousKeyIds: [oldKeyId], retiredKeyIds: [] });
    // 1. A row sealed under the old key appears (a process that had not seen the rotation).
    const oldKey = Buffer.from(readFileSync(join(previousKeysDir(keyFile), `${oldKeyId}.key`), 'utf8').trim(), 'base64');
    const stale = new SecretBox(oldKey);
    const row = (await store.get({ kind: 'Secret', name: 's-1' }))!;
    await store.putSecretCiphertext({ uid: row.uid, version: 2, keyId: oldKeyId, ciphertext: stale.seal({ username: 'late', password: 'late-pw' }, row.uid) });
    expected.set('s-1', { username: 'late', password: 'late-pw' });
    // 2. Retiring now would orphan it: refused while it is there.
    const early = await rekeySecrets(store, box, { retireOnly: true });
    expect(early).toMatchObject({ remaining: 1, retiredKeyIds: [] });
    expect(early.message).toContain('still under an older key');
    expect(existsSync(join(previousKeysDir(keyFile), `${oldKeyId}.key`))).toBe(true);
    // 3. A restart now opens both kinds of rows.
    const restarted = await SecretBox.fromKeyFile(keyFile);
    for (const [name, values] of expected) expect((await readSecretValues(store, restarted, { name }))?.values).toEqual(values);
    // 4. The next rekey with retireOld moves it and retires both previous keys.
    const next = await rekeySecrets(store, restarted, { retireOld: true });
    expect(next).toMatchObject({ moved: 3, remaining: 0, previousKeyIds: [] });
    expect(next.retiredKeyIds.sort()).toEqual([oldKeyId, report.keyId].sort());
    const fresh = await SecretBox.fromKeyFile(keyFile);
    for (const [name, values] of expected) expect((await readSecretValues(store, fresh, { name }))?.values).toEqual(values);
  });

  it('refuses a second rekey while one holds the lock', async () => {
    const { store, box } = await setup(1);
    expect(await store.acquireLease('secrets/rekey', 'someone-else', 'secret rekey', 60_000, Date.now())).toBe(true);
    await expect(rekeySecrets(store, box)).rejects.toThrow(/already running/);
  });
});
