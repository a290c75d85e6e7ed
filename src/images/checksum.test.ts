import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { IngotError } from '../model/errors.js';
import { createDigester, digestFromChecksumFile, isChecksumUrl, parseChecksumSpec, verifyDigest } from './checksum.js';
import { ImageRefused } from './image-refused.js';

const data = Buffer.from('the image bytes');
const sha256 = createHash('sha256').update(data).digest('hex');
const sha512 = createHash('sha512').update(data).digest('hex');
const md5 = createHash('md5').update(data).digest('hex');

function reasonOf(fn: () => unknown): string {
  try {
    fn();
    return 'ok';
  } catch (err) {
    if (err instanceof ImageRefused) return err.reason;
    if (err instanceof IngotError) return err.code;
    throw err;
  }
}

describe('createDigester', () => {
  it.each([
    ['sha256', sha256],
    ['sha512', sha512],
  ] as const)('streams %s over chunks', (type, expected) => {
    const d = createDigester(type);
    d.update(data.subarray(0, 3));
    d.update(data.subarray(3));
    expect(d.digestHex()).toBe(expected);
  });

  it('refuses md5 unless policy allows it, saying what to do', () => {
    expect(() => createDigester('md5')).toThrow(/sha256 or sha512/);
    expect(reasonOf(() => createDigester('md5'))).toBe('checksum-type-not-allowed');
    const d = createDigester('md5', { allowMd5: true });
    d.update(data);
    expect(d.digestHex()).toBe(md5);
  });

  it('refuses an unknown type', () => {
    expect(reasonOf(() => createDigester('sha1' as never))).toBe('checksum-type-not-allowed');
  });
});

describe('verifyDigest', () => {
  it('matches regardless of case, and rejects anything else', () => {
    expect(verifyDigest(sha256.toUpperCase(), sha256)).toBe(true);
    expect(verifyDigest(sha256, sha256.slice(0, -1) + (sha256.endsWith('0') ? '1' : '0'))).toBe(false);
    expect(verifyDigest(sha256, sha512)).toBe(false);
    expect(verifyDigest('', '')).toBe(false);
    expect(verifyDigest('zz', 'zz')).toBe(false);
    expect(verifyDigest(sha256 + '0', sha256 + '0')).toBe(false); // odd length
  });
});

describe('parseChecksumSpec', () => {
  it.each([
    [sha256, 'sha256', {}, { kind: 'digest', type: 'sha256', hex: sha256 }],
    [sha512.toUpperCase(), 'sha512', {}, { kind: 'digest', type: 'sha512', hex: sha512 }],
    [sha256, undefined, {}, { kind: 'digest', type: 'sha256', hex: sha256 }],
    [sha512, undefined, {}, { kind: 'digest', type: 'sha512', hex: sha512 }],
    [md5, 'md5', { allowMd5: true }, { kind: 'digest', type: 'md5', hex: md5 }],
    [md5, undefined, { allowMd5: true }, { kind: 'digest', type: 'md5', hex: md5 }],
    ['https://images.internal/SHA256SUMS', 'sha256', { allowChecksumUrl: true }, { kind: 'url', type: 'sha256', url: 'https://images.internal/SHA256SUMS' }],
  ] as const)('accepts %s (%s)', (checksum, type, policy, expected) => {
    expect(parseChecksumSpec(checksum, type, policy)).toEqual(expected);
  });

  it.each([
    ['', 'sha256', {}, 'INGOT_ERR_VALIDATION'],
    [sha256, 'sha512', {}, 'INGOT_ERR_VALIDATION'],
    [sha512, 'sha256', {}, 'INGOT_ERR_VALIDATION'],
    [md5, 'sha256', {}, 'INGOT_ERR_VALIDATION'],
    [sha256.slice(0, 40), undefined, {}, 'INGOT_ERR_VALIDATION'],
    ['g'.repeat(64), 'sha256', {}, 'INGOT_ERR_VALIDATION'],
    [sha256, 'sha1', {}, 'INGOT_ERR_VALIDATION'],
    [md5, 'md5', {}, 'checksum-type-not-allowed'],
    [md5, undefined, {}, 'checksum-type-not-allowed'],
    ['https://images.internal/SHA256SUMS', 'sha256', {}, 'checksum-url-not-allowed'],
    ['HTTP://images.internal/SHA256SUMS', undefined, {}, 'checksum-url-not-allowed'],
    ['https://images.internal/MD5SUMS', 'md5', { allowChecksumUrl: true }, 'checksum-type-not-allowed'],
    ['https://', 'sha256', { allowChecksumUrl: true }, 'INGOT_ERR_VALIDATION'],
  ] as const)('refuses %j (%s)', (checksum, type, policy, expected) => {
    expect(reasonOf(() => parseChecksumSpec(checksum, type as never, policy))).toBe(expected);
  });

  it('names the field and the fix', () => {
    try {
      parseChecksumSpec(sha256, 'sha512');
      expect.unreachable();
    } catch (err) {
      expect((err as IngotError).details).toEqual([{ field: 'spec.image.checksum', message: expect.stringContaining('128 hex digits') }]);
    }
  });
});

describe('checksum URLs', () => {
  it('tells URLs from digests', () => {
    expect(isChecksumUrl('https://x/y')).toBe(true);
    expect(isChecksumUrl(' http://x/y')).toBe(true);
    expect(isChecksumUrl('file:///etc/passwd')).toBe(false);
    expect(isChecksumUrl(sha256)).toBe(false);
  });

  it('finds the digest for the image in GNU, BSD and single-digest checksum files', () => {
    const gnu = `# comment\n${sha512}  other.img\n${sha256}  ubuntu.qcow2\n`;
    expect(digestFromChecksumFile(gnu, 'ubuntu.qcow2', 'sha256')).toBe(sha256);
    expect(digestFromChecksumFile(`${sha256.toUpperCase()} *dir/ubuntu.qcow2\r\n`, 'ubuntu.qcow2', 'sha256')).toBe(sha256);
    expect(digestFromChecksumFile(`SHA256 (ubuntu.qcow2) = ${sha256}\n`, 'ubuntu.qcow2', 'sha256')).toBe(sha256);
    expect(digestFromChecksumFile(`${sha256}\n`, 'ubuntu.qcow2', 'sha256')).toBe(sha256);
    expect(reasonOf(() => digestFromChecksumFile(`${sha256}  other.img\n${sha256}  more.img\n`, 'ubuntu.qcow2', 'sha256'))).toBe('checksum-mismatch');
    expect(reasonOf(() => digestFromChecksumFile(`${sha512}  ubuntu.qcow2\n`, 'ubuntu.qcow2', 'sha256'))).toBe('checksum-mismatch');
  });
});
