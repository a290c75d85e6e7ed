// Encryption of secret values at rest: AES-256-GCM under a key kept in a file, never in the
// database, so a copy of the database alone reveals nothing.
//
// Sealed format (version 1):
//   byte 0       format version (1)
//   bytes 1-8    key id (first 8 bytes of SHA-256 of the key), so a wrong key is named, not guessed
//   bytes 9-20   nonce, 12 random bytes per seal (NIST SP 800-38D section 8.2.2: random IVs are
//                safe well below 2^32 seals per key)
//   bytes 21-36  GCM authentication tag (16 bytes)
//   bytes 37-    ciphertext of the UTF-8 JSON object of values
// The additional authenticated data is the 9-byte header followed by the caller's `aad` (the
// Secret's uid): a ciphertext copied onto another Secret's row fails to open.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { chmodSync, closeSync, fsyncSync, linkSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { IngotError } from '../model/errors.js';

const FORMAT_VERSION = 1;
const KEY_BYTES = 32;
const KEY_ID_BYTES = 8;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const HEADER_BYTES = 1 + KEY_ID_BYTES;
const MIN_SEALED_BYTES = HEADER_BYTES + NONCE_BYTES + TAG_BYTES;
const AAD_CONTEXT = Buffer.from('ingot.dev/secret/v1\0', 'utf8');

function keyIdOf(key: Buffer): Buffer {
  return createHash('sha256').update(key).digest().subarray(0, KEY_ID_BYTES);
}

function secretError(message: string): IngotError {
  return new IngotError('INGOT_ERR_INTERNAL', message);
}

/**
 * The key ring on disk (DATA_DIR/secrets.key by default):
 *   <keyFile>               the CURRENT key: every seal uses it (base64, 0600)
 *   <keyFile>.d/<keyId>.key  previous keys (0600, directory 0700), kept so rows sealed under
 *                            them still open until `ingot secrets rekey` has re-sealed them
 * open() picks the key by the key id in the ciphertext's header.
 */
export function previousKeysDir(keyFile: string): string {
  return `${resolve(keyFile)}.d`;
}

export class SecretBox {
  #currentId: string;
  readonly #keys = new Map<string, { key: Buffer; idBytes: Buffer }>();
  /** Set for a box loaded from a key file: it notices another process's rotation. */
  #file?: { path: string; stamp: string };

  /** `previous`: older keys that open() still accepts (seal never uses them). */
  constructor(key: Buffer, previous: readonly Buffer[] = []) {
    this.#currentId = this.#add(key);
    for (const old of previous) this.#add(old);
  }

  #add(key: Buffer): string {
    if (!Buffer.isBuffer(key) || key.length !== KEY_BYTES) {
      throw new Error(`a secret key must be ${KEY_BYTES} bytes, not ${Buffer.isBuffer(key) ? key.length : typeof key}`);
    }
    const copy = Buffer.from(key);
    const idBytes = keyIdOf(copy);
    const id = idBytes.toString('hex');
    this.#keys.set(id, { key: copy, idBytes });
    return id;
  }

  /** Hex of the first 8 bytes of SHA-256 of the current key; stored beside each ciphertext. */
  get keyId(): string {
    this.#followFile();
    return this.#currentId;
  }

  /** Whether rotate() can work: the box was loaded from a key file. */
  get rotatable(): boolean {
    return this.#file !== undefined;
  }

  /** Every key id this box can open, current first. */
  keyIds(): string[] {
    this.#followFile();
    return [this.#currentId, ...[...this.#keys.keys()].filter((id) => id !== this.#currentId)];
  }

  /** Loads the key file at `path` (creating it, mode 0600, on first use) and the previous keys beside it. */
  static async fromKeyFile(path: string): Promise<SecretBox> {
    const current = await loadOrCreateKeyFile(path);
    const box = new SecretBox(current, readPreviousKeys(path));
    box.#file = { path: resolve(path), stamp: fileStamp(resolve(path)) };
    return box;
  }

  /**
   * Makes a new random key current (file-backed boxes only): the current key is first saved
   * among the previous keys, then the new one replaces the key file by an atomic rename, so at
   * every instant both keys are on disk and a crash loses neither. Returns both ids.
   */
  rotate(): { oldKeyId: string; newKeyId: string } {
    const file = this.#file;
    if (!file) throw new Error('only a SecretBox loaded from a key file can be rotated');
    this.#followFile();
    const oldKeyId = this.#currentId;
    const dir = previousKeysDir(file.path);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
    writeKeyFileAtomically(join(dir, `${oldKeyId}.key`), this.#keys.get(oldKeyId)!.key);
    const key = randomBytes(KEY_BYTES);
    writeKeyFileAtomically(file.path, key);
    this.#currentId = this.#add(key);
    file.stamp = fileStamp(file.path);
    return { oldKeyId, newKeyId: this.#currentId };
  }

  /**
   * Deletes previous keys (files and memory). The caller has checked that nothing sealed under
   * them is left: after this, such ciphertext can never be opened again.
   */
  retire(keyIds: readonly string[]): string[] {
    this.#followFile();
    const retired: string[] = [];
    for (const id of keyIds) {
      if (id === this.#currentId || !/^[0-9a-f]{16}$/.test(id)) continue;
      if (this.#file) {
        try {
          unlinkSync(join(previousKeysDir(this.#file.path), `${id}.key`));
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
        }
      }
      if (this.#keys.delete(id)) retired.push(id);
    }
    if (this.#file) syncDirectory(previousKeysDir(this.#file.path));
    return retired;
  }

  /** Another process (or `ingot secrets rekey` on another server) replaced the key file: load the ring again. */
  #followFile(): void {
    const file = this.#file;
    if (!file) return;
    let stamp: string;
    try {
      stamp = fileStamp(file.path);
    } catch {
      return; // keep what we have; the next call looks again
    }
    if (stamp === file.stamp) return;
    const current = readKeyFileIfPresent(file.path);
    if (current === undefined) return;
    for (const old of readPreviousKeys(file.path)) this.#add(old);
    this.#currentId = this.#add(current);
    file.stamp = stamp;
  }

  seal(values: Record<string, string>, aad: string): Buffer {
    this.#followFile();
    const current = this.#keys.get(this.#currentId)!;
    const header = Buffer.alloc(HEADER_BYTES);
    header[0] = FORMAT_VERSION;
    current.idBytes.copy(header, 1);
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', current.key, nonce, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.concat([AAD_CONTEXT, header, Buffer.from(aad, 'utf8')]));
    const body = Buffer.concat([cipher.update(JSON.stringify(values), 'utf8'), cipher.final()]);
    return Buffer.concat([header, nonce, cipher.getAuthTag(), body]);
  }

  /** The key id in a sealed value's header (undefined when it is not sealed data). */
  static keyIdOf(sealed: Buffer): string | undefined {
    if (!Buffer.isBuffer(sealed) || sealed.length < MIN_SEALED_BYTES || sealed[0] !== FORMAT_VERSION) return undefined;
    return sealed.subarray(1, HEADER_BYTES).toString('hex');
  }

  /**
   * Opens what seal() produced with the same `aad`, under whichever key of the ring sealed it.
   * Throws IngotError INGOT_ERR_INTERNAL when that key is not in the ring, or the bytes or the
   * aad were changed. The messages never include any part of the plaintext.
   */
  open(sealed: Buffer, aad: string): Record<string, string> {
    if (!Buffer.isBuffer(sealed) || sealed.length < MIN_SEALED_BYTES) {
      throw secretError(`secret ciphertext is too short (${Buffer.isBuffer(sealed) ? sealed.length : 0} bytes) to be sealed data; it is damaged`);
    }
    if (sealed[0] !== FORMAT_VERSION) {
      throw secretError(`secret ciphertext has format version ${sealed[0]}, this server reads version ${FORMAT_VERSION}; upgrade the server, or the data is damaged`);
    }
    const header = sealed.subarray(0, HEADER_BYTES);
    const sealedKeyId = header.subarray(1).toString('hex');
    if (!this.#keys.has(sealedKeyId)) this.#followFile();
    const entry = this.#keys.get(sealedKeyId);
    if (!entry) {
      throw secretError(
        `secret was sealed with key ${sealedKeyId}, but this server's secret key is ${this.#currentId} (and no previous key matches); start the server with the key file it was written with, or restore ${sealedKeyId}.key into the previous-keys directory`,
      );
    }
    const nonce = sealed.subarray(HEADER_BYTES, HEADER_BYTES + NONCE_BYTES);
    const tag = sealed.subarray(HEADER_BYTES + NONCE_BYTES, MIN_SEALED_BYTES);
    const body = sealed.subarray(MIN_SEALED_BYTES);
    const decipher = createDecipheriv('aes-256-gcm', entry.key, nonce, { authTagLength: TAG_BYTES });
    decipher.setAAD(Buffer.concat([AAD_CONTEXT, header, Buffer.from(aad, 'utf8')]));
    decipher.setAuthTag(tag);
    let plaintext: Buffer;
    try {
      plaintext = Buffer.concat([decipher.update(body), decipher.final()]);
    } catch (error) {
      throw new IngotError(
        'INGOT_ERR_INTERNAL',
        'secret ciphertext failed authentication: it was altered, or belongs to another secret; set the secret again',
        { cause: error },
      );
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(plaintext.toString('utf8'));
    } catch {
      parsed = undefined;
    }
    if (parsed === undefined || parsed === null || typeof parsed !== 'object' || Array.isArray(parsed) || Object.values(parsed).some((v) => typeof v !== 'string')) {
      throw secretError('secret plaintext is not an object of strings; the data is damaged');
    }
    return parsed as Record<string, string>;
  }
}

function fileStamp(path: string): string {
  const st = statSync(path);
  return `${st.ino}:${st.mtimeMs}:${st.size}`;
}

/** The previous keys beside `keyFile`; each file must be private and named by its key id. */
function readPreviousKeys(keyFile: string): Buffer[] {
  const dir = previousKeysDir(keyFile);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const keys: Buffer[] = [];
  for (const name of names.sort()) {
    const match = /^([0-9a-f]{16})\.key$/.exec(name);
    if (!match) continue; // temporary files of an interrupted write
    const key = readKeyFileIfPresent(join(dir, name));
    if (key === undefined) continue;
    if (keyIdOf(key).toString('hex') !== match[1]) {
      throw new Error(`previous secret key file ${join(dir, name)} holds key ${keyIdOf(key).toString('hex')}, not ${match[1]}; restore it from backup`);
    }
    keys.push(key);
  }
  return keys;
}

/** Writes a key file 0600 through a synced temporary file and a rename, so it is never half-written. */
function writeKeyFileAtomically(path: string, key: Buffer): void {
  const temp = `${path}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  const fd = openSync(temp, 'wx', 0o600);
  try {
    writeSync(fd, `${key.toString('base64')}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    renameSync(temp, path);
  } catch (error) {
    try {
      unlinkSync(temp);
    } catch {
      // nothing to clean
    }
    throw error;
  }
  syncDirectory(dirname(path));
}

/**
 * Returns the 32-byte key stored base64 in `path`, creating the file on first use.
 * - Created with mode 0600 atomically: written to a temporary file opened with `wx`, synced,
 *   then hard-linked into place, so a crash never leaves a half-written key and two servers
 *   starting together cannot both create one (the loser reads the winner's key; a rename
 *   would silently replace it, and secrets sealed under the lost key would be unreadable).
 * - An existing file readable by group or others is refused: the key must stay private.
 */
export async function loadOrCreateKeyFile(path: string): Promise<Buffer> {
  const file = resolve(path);
  const existing = readKeyFileIfPresent(file);
  if (existing !== undefined) return existing;

  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const key = randomBytes(KEY_BYTES);
  const temp = `${file}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  const fd = openSync(temp, 'wx', 0o600);
  try {
    writeSync(fd, `${key.toString('base64')}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    try {
      linkSync(temp, file);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') {
        // Another process created the key first: use theirs.
        const theirs = readKeyFileIfPresent(file);
        if (theirs === undefined) throw new Error(`secret key file ${file} vanished while it was being created; start again`);
        return theirs;
      }
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EXDEV') throw error;
      // File systems without hard links: fall back to rename, checked just before.
      const raced = readKeyFileIfPresent(file);
      if (raced !== undefined) return raced;
      renameSync(temp, file);
    }
  } finally {
    try {
      unlinkSync(temp);
    } catch {
      // Already renamed, or never linked.
    }
  }
  syncDirectory(dirname(file));
  return key;
}

function readKeyFileIfPresent(file: string): Buffer | undefined {
  let stat;
  try {
    stat = statSync(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  if (!stat.isFile()) throw new Error(`secret key file ${file} is not a regular file`);
  if ((stat.mode & 0o077) !== 0) {
    throw new Error(
      `secret key file ${file} is readable or writable by group or others (mode ${(stat.mode & 0o777).toString(8).padStart(4, '0')}); run \`chmod 600 ${file}\` and start again`,
    );
  }
  const text = readFileSync(file, 'utf8').trim();
  const key = Buffer.from(text, 'base64');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text) || key.length !== KEY_BYTES) {
    throw new Error(`secret key file ${file} does not hold a base64 ${KEY_BYTES}-byte key; restore it from backup (secrets sealed under it cannot be read without it)`);
  }
  return key;
}

function syncDirectory(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // Best effort: not every platform can fsync a directory.
  }
}
