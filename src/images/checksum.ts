// Image checksums: the digest is what ties the bytes a host writes to the image an admin
// published (Ironic security guide, "Image Checksums": for security, not only integrity).
// sha256/sha512 by default; md5 only where policy allows it (collisions are cheap); a
// checksum given as a URL only where configuration allows it, since whoever controls that
// URL can change the checksum along with the image (Ironic's
// conductor.disable_support_for_checksum_files).
import { createHash, timingSafeEqual, type Hash } from 'node:crypto';
import { validationError } from '../model/errors.js';
import { ImageRefused } from './image-refused.js';

export type ChecksumType = 'sha256' | 'sha512' | 'md5';

const HEX_LENGTH: Record<ChecksumType, number> = { sha256: 64, sha512: 128, md5: 32 };

export interface Digester {
  readonly type: ChecksumType;
  update(chunk: Uint8Array): void;
  /** Lower-case hex; call once, after the last update. */
  digestHex(): string;
}

export interface ChecksumPolicy {
  /** Accept md5 checksums (off by default). */
  allowMd5?: boolean;
  /** Accept a checksum given as an http(s) URL to a checksum file (off by default). */
  allowChecksumUrl?: boolean;
}

function refuseMd5(): never {
  throw new ImageRefused(
    'checksum-type-not-allowed',
    'spec.image.checksumType is md5, which policy does not allow (md5 collisions are cheap to make): publish a sha256 or sha512 checksum, or ask the platform admin to allow md5',
  );
}

export function createDigester(type: ChecksumType, policy: Pick<ChecksumPolicy, 'allowMd5'> = {}): Digester {
  if (type === 'md5' && !policy.allowMd5) refuseMd5();
  if (!(type in HEX_LENGTH)) {
    throw new ImageRefused('checksum-type-not-allowed', `spec.image.checksumType "${String(type)}" is not one of sha256, sha512, md5`);
  }
  const hash: Hash = createHash(type);
  let done = false;
  return {
    type,
    update(chunk) {
      if (done) throw new Error('digester already finished');
      hash.update(chunk);
    },
    digestHex() {
      done = true;
      return hash.digest('hex');
    },
  };
}

/** Compares two hex digests without leaking, through timing, how much of them matched. */
export function verifyDigest(expectedHex: string, actualHex: string): boolean {
  const hexRe = /^[0-9a-fA-F]*$/;
  if (!hexRe.test(expectedHex) || !hexRe.test(actualHex) || expectedHex.length % 2 !== 0) return false;
  const a = Buffer.from(expectedHex, 'hex');
  const b = Buffer.from(actualHex, 'hex');
  if (a.length !== b.length || a.length === 0) return false;
  return timingSafeEqual(a, b);
}

export type ChecksumSpec =
  | { kind: 'digest'; type: ChecksumType; hex: string }
  | { kind: 'url'; type: ChecksumType; url: string };

/** True for a checksum value that is an http(s) URL rather than a digest. */
export function isChecksumUrl(value: string): boolean {
  return /^https?:\/\//i.test(value.trim());
}

const MAX_CHECKSUM_URL_LENGTH = 4096;

/**
 * Validates `spec.image.checksum` (+ `checksumType`). An absent type is inferred from the
 * digest's length (as Ironic does): 64 hex → sha256, 128 → sha512, 32 → md5 (subject to policy).
 */
export function parseChecksumSpec(checksum: string, checksumType: ChecksumType | undefined, policy: ChecksumPolicy = {}): ChecksumSpec {
  if (typeof checksum !== 'string' || checksum.trim() === '') {
    throw validationError([{ field: 'spec.image.checksum', message: 'a checksum is required: give the sha256 or sha512 hex digest of the image' }]);
  }
  const value = checksum.trim();
  if (checksumType !== undefined && !(checksumType in HEX_LENGTH)) {
    throw validationError([{ field: 'spec.image.checksumType', message: `"${String(checksumType)}" is not one of sha256, sha512, md5` }]);
  }
  if (isChecksumUrl(value)) {
    if (!policy.allowChecksumUrl) {
      throw new ImageRefused(
        'checksum-url-not-allowed',
        'spec.image.checksum is a URL, which configuration does not allow (whoever controls that URL can change the checksum together with the image): give the hex digest itself',
      );
    }
    if (value.length > MAX_CHECKSUM_URL_LENGTH) {
      throw validationError([{ field: 'spec.image.checksum', message: `the checksum URL is longer than ${MAX_CHECKSUM_URL_LENGTH} characters` }]);
    }
    try {
      new URL(value);
    } catch {
      throw validationError([{ field: 'spec.image.checksum', message: 'the checksum URL is not a valid URL' }]);
    }
    const type = checksumType ?? 'sha256';
    if (type === 'md5' && !policy.allowMd5) refuseMd5();
    return { kind: 'url', type, url: value };
  }
  if (!/^[0-9a-fA-F]+$/.test(value)) {
    throw validationError([{ field: 'spec.image.checksum', message: 'must be a hex digest (0-9, a-f)' }]);
  }
  const type = checksumType ?? inferType(value.length);
  if (type === undefined) {
    throw validationError([
      { field: 'spec.image.checksum', message: `a ${value.length}-digit hex value is no known digest: sha256 has 64 digits, sha512 128; set spec.image.checksumType` },
    ]);
  }
  if (value.length !== HEX_LENGTH[type]) {
    throw validationError([
      { field: 'spec.image.checksum', message: `a ${type} digest has ${HEX_LENGTH[type]} hex digits, this one has ${value.length}: check spec.image.checksumType` },
    ]);
  }
  if (type === 'md5' && !policy.allowMd5) refuseMd5();
  return { kind: 'digest', type, hex: value.toLowerCase() };
}

function inferType(length: number): ChecksumType | undefined {
  return length === 64 ? 'sha256' : length === 128 ? 'sha512' : length === 32 ? 'md5' : undefined;
}

/** Largest checksum file we parse; real ones list a handful of images. */
export const MAX_CHECKSUM_FILE_BYTES = 1024 * 1024;

/**
 * Finds the digest for `imageFileName` in a checksum file (`sha256sum` output: "HEX  name" or
 * "HEX *name", or the BSD "SHA256 (name) = HEX" form). A file holding one bare digest is
 * accepted too. Returns the lower-case hex.
 */
export function digestFromChecksumFile(text: string, imageFileName: string, type: ChecksumType): string {
  if (text.length > MAX_CHECKSUM_FILE_BYTES) {
    throw new ImageRefused('checksum-mismatch', `the checksum file is larger than ${MAX_CHECKSUM_FILE_BYTES} bytes; point spec.image.checksum at a real checksum file`);
  }
  const want = HEX_LENGTH[type];
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  const gnu = new RegExp(`^([0-9a-fA-F]{${want}})\\s+\\*?(.+)$`);
  const bsd = new RegExp(`^${type}\\s*\\((.+)\\)\\s*=\\s*([0-9a-fA-F]{${want}})$`, 'i');
  for (const line of lines) {
    const g = gnu.exec(line);
    if (g && (g[2] === imageFileName || g[2]!.endsWith(`/${imageFileName}`))) return g[1]!.toLowerCase();
    const b = bsd.exec(line);
    if (b && (b[1] === imageFileName || b[1]!.endsWith(`/${imageFileName}`))) return b[2]!.toLowerCase();
  }
  if (lines.length === 1 && new RegExp(`^[0-9a-fA-F]{${want}}$`).test(lines[0]!)) return lines[0]!.toLowerCase();
  throw new ImageRefused('checksum-mismatch', `the checksum file has no ${type} digest for "${imageFileName}"; check spec.image.checksum and spec.image.checksumType`);
}
