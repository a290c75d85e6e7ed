import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { IngotError } from '../model/errors.js';
import { openStore } from './open-store.js';
import { loadOrCreateKeyFile, SecretBox } from './secret-box.js';
import { readSecretValues } from './secret-reader.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'ingot-secret-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  while (dirs.length > 0) rmSync(dirs.pop() as string, { recursive: true, force: true });
});

const values = { username: 'admin', password: 'pa$$w0rd-ünï', empty: '' };

describe('SecretBox', () => {
  it('round-trips values, with a fresh nonce every seal', () => {
    const box = new SecretBox(randomBytes(32));
    const a = box.seal(values, 'uid-1');
    const b = box.seal(values, 'uid-1');
    expect(a.equals(b)).toBe(false);
    expect(a[0]).toBe(1);
    expect(box.open(a, 'uid-1')).toEqual(values);
    expect(box.open(b, 'uid-1')).toEqual(values);
    expect(a.includes(Buffer.from('pa$$w0rd'))).toBe(false);
    expect(box.open(box.seal({}, 'u'), 'u')).toEqual({});
  });

  it('derives the key id from the key', () => {
    const key = Buffer.alloc(32, 7);
    expect(new SecretBox(key).keyId).toBe(new SecretBox(Buffer.from(key)).keyId);
    expect(new SecretBox(key).keyId).toMatch(/^[0-9a-f]{16}$/);
    expect(new SecretBox(Buffer.alloc(32, 8)).keyId).not.toBe(new SecretBox(key).keyId);
    expect(() => new SecretBox(Buffer.alloc(16))).toThrow(/32 bytes/);
  });

  it('detects tampering with any byte', () => {
    const box = new SecretBox(randomBytes(32));
    const sealed = box.seal(values, 'uid-1');
    for (const index of [0, 1, 9, 20, 21, 36, 37, sealed.length - 1]) {
      const tampered = Buffer.from(sealed);
      tampered[index] = (tampered[index] as number) ^ 0x01;
      expect(() => box.open(tampered, 'uid-1'), `byte ${index}`).toThrow(IngotError);
    }
    expect(() => box.open(sealed.subarray(0, 20), 'uid-1')).toThrow(/too short/);
    expect(() => box.open(Buffer.concat([sealed, Buffer.from([0])]), 'uid-1')).toThrow(/failed authentication/);
  });

  it('refuses a ciphertext moved to another secret (wrong AAD)', () => {
    const box = new SecretBox(randomBytes(32));
    const sealed = box.seal(values, 'uid-1');
    expect(() => box.open(sealed, 'uid-2')).toThrow(/failed authentication: it was altered, or belongs to another secret/);
  });

  it('names the key when opened with the wrong one, never the values', () => {
    const sealer = new SecretBox(randomBytes(32));
    const other = new SecretBox(randomBytes(32));
    const sealed = sealer.seal(values, 'uid-1');
    let message = '';
    try {
      other.open(sealed, 'uid-1');
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain(`sealed with key ${sealer.keyId}`);
    expect(message).toContain(other.keyId);
    expect(message).not.toContain('admin');
  });
});

describe('loadOrCreateKeyFile', () => {
  it('creates a 0600 key file once and reads the same key afterwards', async () => {
    const file = join(tempDir(), 'keys', 'secret.key');
    const key = await loadOrCreateKeyFile(file);
    expect(key).toHaveLength(32);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(Buffer.from(readFileSync(file, 'utf8').trim(), 'base64').equals(key)).toBe(true);
    expect((await loadOrCreateKeyFile(file)).equals(key)).toBe(true);
    expect(readdirSync(join(file, '..'))).toEqual(['secret.key']);
    const box = await SecretBox.fromKeyFile(file);
    expect(box.keyId).toBe(new SecretBox(key).keyId);
  });

  it('gives every concurrent caller the same key', async () => {
    const file = join(tempDir(), 'secret.key');
    const keys = await Promise.all(Array.from({ length: 8 }, () => loadOrCreateKeyFile(file)));
    for (const k of keys) expect(k.equals(keys[0] as Buffer)).toBe(true);
  });

  it('refuses a key file readable by group or others, saying how to fix it', async () => {
    const file = join(tempDir(), 'secret.key');
    await loadOrCreateKeyFile(file);
    chmodSync(file, 0o640);
    await expect(loadOrCreateKeyFile(file)).rejects.toThrow(`chmod 600 ${file}`);
    chmodSync(file, 0o604);
    await expect(loadOrCreateKeyFile(file)).rejects.toThrow(/group or others/);
    chmodSync(file, 0o600);
    await expect(loadOrCreateKeyFile(file)).resolves.toHaveLength(32);
  });

  it('refuses a key file that does not hold a 32-byte key', async () => {
    const file = join(tempDir(), 'secret.key');
    writeFileSync(file, 'c2hvcnQ=\n', { mode: 0o600 });
    await expect(loadOrCreateKeyFile(file)).rejects.toThrow(/base64 32-byte key/);
    writeFileSync(file, 'not base64 at all!!\n', { mode: 0o600 });
    await expect(loadOrCreateKeyFile(file)).rejects.toThrow(/base64 32-byte key/);
  });
});

describe('readSecretValues', () => {
  it('decrypts a Secret in its own scope only', async () => {
    const store = await openStore({ database: ':memory:' });
    const box = new SecretBox(randomBytes(32));
    try {
      const secret = await store.create({ kind: 'Secret', name: 'bmc', spec: { type: 'Opaque' }, status: { keys: ['password', 'username'], version: 3 } });
      await store.putSecretCiphertext({ uid: secret.uid, version: 3, keyId: box.keyId, ciphertext: box.seal(values, secret.uid) });
      expect(await readSecretValues(store, box, { name: 'bmc' })).toEqual({ values, version: 3, uid: secret.uid });
      expect(await readSecretValues(store, box, { project: '', name: 'bmc' })).toBeDefined();
      expect(await readSecretValues(store, box, { project: 'team-a', name: 'bmc' })).toBeUndefined();
      expect(await readSecretValues(store, box, { name: 'missing' })).toBeUndefined();

      // A Secret without stored values resolves to nothing.
      await store.create({ kind: 'Secret', name: 'empty', spec: {}, status: {} });
      expect(await readSecretValues(store, box, { name: 'empty' })).toBeUndefined();

      // Ciphertext copied onto another Secret's row does not open.
      const other = await store.create({ kind: 'Secret', name: 'other', spec: {}, status: {} });
      await store.putSecretCiphertext({ uid: other.uid, version: 1, keyId: box.keyId, ciphertext: box.seal(values, secret.uid) });
      await expect(readSecretValues(store, box, { name: 'other' })).rejects.toThrow(/belongs to another secret/);
    } finally {
      await store.close();
    }
  });
});
