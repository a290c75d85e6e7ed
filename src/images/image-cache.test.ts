// The caching proxy against real HTTP and HTTPS servers on 127.0.0.1 (certificates from a test
// CA made with openssl), real files in a temp dir, and real qcow2 images from qemu-img.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueServerCert, makeCa } from '../../test/support/test-pki.js';
import { ImageCache, type CacheStatus } from './image-cache.js';

const MIB = 1024 * 1024;
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let dir: string;
let http: Server;
let https: Server;
let base: string;
let tlsBase: string;
const served = new Map<string, number>();
const routes = new Map<string, (req: IncomingMessage, res: ServerResponse) => void>();
let gate: Promise<void> = Promise.resolve();
let caPem: string;
let otherCaPem: string;
let raw: Buffer;
let raw2: Buffer;
let raw3: Buffer;
let backed: Buffer;

function serve(path: string, body: Buffer) {
  routes.set(path, (_req, res) => {
    void gate.then(() => {
      res.writeHead(200, { 'content-length': body.length });
      res.end(body);
    });
  });
}

function handler(req: IncomingMessage, res: ServerResponse) {
  served.set(req.url ?? '', (served.get(req.url ?? '') ?? 0) + 1);
  const route = routes.get(req.url ?? '');
  if (route) route(req, res);
  else res.writeHead(404).end();
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ingot-image-cache-'));
  raw = Buffer.alloc(2 * MIB, 0x11);
  raw2 = Buffer.alloc(2 * MIB, 0x22);
  raw3 = Buffer.alloc(2 * MIB, 0x33);
  execFileSync('qemu-img', ['create', '-f', 'raw', join(dir, 'base.raw'), '1M'], { stdio: 'ignore' });
  execFileSync('qemu-img', ['create', '-f', 'qcow2', '-F', 'raw', '-b', join(dir, 'base.raw'), join(dir, 'backed.qcow2')], { stdio: 'ignore' });
  backed = readFileSync(join(dir, 'backed.qcow2'));
  serve('/a.raw', raw);
  serve('/b.raw', raw2);
  serve('/c.raw', raw3);
  serve('/backed.qcow2', backed);
  const ca = makeCa('images');
  caPem = ca.certPem;
  otherCaPem = makeCa('other').certPem;
  const cert = issueServerCert(ca, 'images');
  http = createServer(handler);
  https = createHttpsServer({ key: cert.key, cert: cert.cert }, handler);
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  await new Promise<void>((r) => https.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(http.address() as { port: number }).port}`;
  tlsBase = `https://127.0.0.1:${(https.address() as { port: number }).port}`;
});

afterAll(async () => {
  await new Promise((r) => http?.close(r));
  await new Promise((r) => https?.close(r));
  rmSync(dir, { recursive: true, force: true });
});

let n = 0;
function newCache(opts: Partial<ConstructorParameters<typeof ImageCache>[0]> = {}): ImageCache {
  return new ImageCache({ dir: join(dir, `cache-${++n}`), maxTotalBytes: 64 * MIB, ...opts });
}

describe('ImageCache', () => {
  it('downloads once for many concurrent requests and stores the verified image by digest', async () => {
    const cache = newCache();
    let release!: () => void;
    gate = new Promise((r) => (release = r));
    const image = { url: `${base}/a.raw`, checksum: sha256(raw) };
    const first = await Promise.all(Array.from({ length: 8 }, () => cache.ensure(image)));
    expect(first.every((s) => s.state === 'downloading')).toBe(true);
    release();
    const done = await Promise.all(Array.from({ length: 8 }, () => cache.fetch(image)));
    gate = Promise.resolve();
    expect(served.get('/a.raw')).toBe(1);
    for (const s of done) expect(s).toMatchObject({ state: 'ready', key: `sha256-${sha256(raw)}`, bytes: raw.length });
    const ready = done[0] as Extract<CacheStatus, { state: 'ready' }>;
    expect(readFileSync(ready.path).equals(raw)).toBe(true);
    // A later request is answered from the cache without another download.
    expect((await cache.ensure(image)).state).toBe('ready');
    expect(served.get('/a.raw')).toBe(1);
    expect(readdirSync(cache.dir).filter((f) => f.startsWith('.tmp-'))).toEqual([]);
    await cache.close();
  });

  it('never keeps an image whose digest does not match, and says why', async () => {
    const cache = newCache();
    const wrong = sha256(Buffer.from('something else'));
    const status = await cache.fetch({ url: `${base}/b.raw`, checksum: wrong });
    expect(status).toMatchObject({ state: 'failed', reason: 'checksum-mismatch' });
    expect(readdirSync(cache.dir)).toEqual([]);
    // The failure is remembered: no second download while it is fresh.
    const before = served.get('/b.raw');
    expect(await cache.ensure({ url: `${base}/b.raw`, checksum: wrong })).toMatchObject({ state: 'failed', reason: 'checksum-mismatch' });
    expect(served.get('/b.raw')).toBe(before);
    expect(cache.pathOf(`sha256-${wrong}`)).toBeDefined();
    expect(existsSync(cache.pathOf(`sha256-${wrong}`)!)).toBe(false);
    await cache.close();
  });

  it('refuses a hostile qcow2 (backing file) even with the right checksum', async () => {
    const cache = newCache();
    const status = await cache.fetch({ url: `${base}/backed.qcow2`, checksum: sha256(backed), format: 'qcow2' });
    expect(status).toMatchObject({ state: 'failed', reason: 'backing-file' });
    expect(readdirSync(cache.dir)).toEqual([]);
    // Declared raw, the same bytes are refused as a format mismatch (CVE-2024-44082).
    const asRaw = await newCache().fetch({ url: `${base}/backed.qcow2`, checksum: sha256(backed) });
    expect(asRaw.state).toBe('failed');
    await cache.close();
  });

  it('refuses images larger than the cache before keeping any of them', async () => {
    const cache = newCache({ maxTotalBytes: 1 * MIB });
    expect(await cache.fetch({ url: `${base}/a.raw`, checksum: sha256(raw) })).toMatchObject({ state: 'failed', reason: 'too-large' });
    expect(readdirSync(cache.dir)).toEqual([]);
  });

  it('evicts the least recently used image when the total passes the bound', async () => {
    let clock = 1_000_000;
    const cache = newCache({ maxTotalBytes: 5 * MIB, now: () => (clock += 1000) });
    const a = { url: `${base}/a.raw`, checksum: sha256(raw) };
    const b = { url: `${base}/b.raw`, checksum: sha256(raw2) };
    const c = { url: `${base}/c.raw`, checksum: sha256(raw3) };
    expect((await cache.fetch(a)).state).toBe('ready');
    expect((await cache.fetch(b)).state).toBe('ready');
    // a is used again, so b is now the least recently used.
    expect((await cache.ensure(a)).state).toBe('ready');
    expect((await cache.fetch(c)).state).toBe('ready');
    expect(readdirSync(cache.dir).sort()).toEqual([`sha256-${sha256(raw)}`, `sha256-${sha256(raw3)}`].sort());
    await cache.close();
  });

  it('verifies https image servers against the configured CA', async () => {
    const trusted = newCache({ caPem });
    expect(await trusted.fetch({ url: `${tlsBase}/c.raw`, checksum: sha256(raw3) })).toMatchObject({ state: 'ready' });
    await trusted.close();
    const wrong = newCache({ caPem: otherCaPem });
    const status = await wrong.fetch({ url: `${tlsBase}/c.raw`, checksum: sha256(raw3) });
    expect(status.state).toBe('failed');
    expect((status as { message: string }).message).toMatch(/certificate could not be verified/);
    expect(readdirSync(wrong.dir)).toEqual([]);
    await wrong.close();
  });

  it('close() aborts a download in progress and keeps nothing of it', async () => {
    const cache = newCache();
    let release!: () => void;
    gate = new Promise((r) => (release = r));
    expect((await cache.ensure({ url: `${base}/c.raw`, checksum: sha256(raw3) })).state).toBe('downloading');
    await cache.close();
    release();
    gate = Promise.resolve();
    expect(readdirSync(cache.dir)).toEqual([]);
  });

  it('refuses plain http image URLs when HTTPS is required, and md5 keys', async () => {
    const cache = newCache({ requireHttps: true, allowMd5: true });
    await expect(cache.ensure({ url: `${base}/a.raw`, checksum: sha256(raw) })).rejects.toThrow(/demands HTTPS/);
    await expect(cache.ensure({ url: `${tlsBase}/a.raw`, checksum: 'a'.repeat(32), checksumType: 'md5' })).rejects.toThrow(/sha256 or sha512/);
  });
});
