// The OS image verifier against a real SQLite store, real HTTP and HTTPS servers on 127.0.0.1
// (certificates from a test CA made with openssl) and real images made with qemu-img.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { issueServerCert, makeCa } from '../../test/support/test-pki.js';
import type { OSImageSpec, OSImageStatus } from '../model/os-image.js';
import { openStore } from '../store/open-store.js';
import type { Store, StoredResource } from '../store/store.js';
import { createOsImageVerifier, type OsImageVerifier, type OsImageVerifierOptions } from './os-image-verifier.js';

const MIB = 1024 * 1024;
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const sha512 = (b: Buffer) => createHash('sha512').update(b).digest('hex');

let dir: string;
let http: Server;
let https: Server;
let base: string;
let tlsBase: string;
let caPem: string;
let raw: Buffer;
let qcow2: Buffer;
let backed: Buffer;
const files = new Map<string, Buffer>();
const served = new Map<string, number>();
/** Requests for a path in `held` wait until the test opens the gate. */
const held = new Map<string, { arrived: () => void; gate: Promise<void> }>();

function handler(req: IncomingMessage, res: ServerResponse) {
  const path = req.url ?? '';
  served.set(path, (served.get(path) ?? 0) + 1);
  const body = files.get(path);
  if (!body) {
    res.writeHead(404).end();
    return;
  }
  const hold = held.get(path);
  hold?.arrived();
  void (hold?.gate ?? Promise.resolve()).then(() => {
    res.writeHead(200, { 'content-length': body.length });
    res.end(body);
  });
}

/** Holds responses for `path`; resolves `arrived` at the first request, `open()` lets them through. */
function hold(path: string): { arrived: Promise<void>; open: () => void } {
  let arrived!: () => void;
  let open!: () => void;
  const arrivedP = new Promise<void>((r) => (arrived = r));
  const gate = new Promise<void>((r) => (open = r));
  held.set(path, { arrived, gate });
  return { arrived: arrivedP, open };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ingot-osimage-verify-'));
  const q = (...args: string[]) => execFileSync('qemu-img', args, { stdio: 'ignore' });
  q('create', '-f', 'raw', join(dir, 'disk.raw'), '3M');
  q('convert', '-f', 'raw', '-O', 'qcow2', join(dir, 'disk.raw'), join(dir, 'disk.qcow2'));
  q('create', '-f', 'qcow2', '-F', 'raw', '-b', join(dir, 'disk.raw'), join(dir, 'backed.qcow2'));
  // Non-zero content so raw and its digest are not trivially a run of zeros.
  raw = readFileSync(join(dir, 'disk.raw'));
  raw.fill(0x5a, MIB, MIB + 4096);
  qcow2 = readFileSync(join(dir, 'disk.qcow2'));
  backed = readFileSync(join(dir, 'backed.qcow2'));
  files.set('/disk.raw', raw);
  files.set('/disk.qcow2', qcow2);
  files.set('/backed.qcow2', backed);
  files.set('/other.raw', Buffer.alloc(2 * MIB, 0x33));

  const ca = makeCa('osimages');
  caPem = ca.certPem;
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
  if (dir) rmSync(dir, { recursive: true, force: true });
});

let store: Store;
let workDir: string;
const verifiers: OsImageVerifier[] = [];
let n = 0;

beforeEach(async () => {
  n++;
  store = await openStore({ database: join(dir, `ingot-${n}.db`) });
  workDir = join(dir, `work-${n}`);
  served.clear();
  held.clear();
});

afterEach(async () => {
  for (const v of verifiers.splice(0)) await v.stop();
  await store.close();
});

function verifier(opts: Partial<OsImageVerifierOptions> = {}): OsImageVerifier {
  const v = createOsImageVerifier({ store, workDir, ...opts });
  verifiers.push(v);
  return v;
}

/** Creates the row as the API does for spec.verifyOnCreate (routes/os-images.ts verificationFor). */
async function publish(name: string, spec: Omit<OSImageSpec, 'verifyOnCreate'>): Promise<StoredResource> {
  return store.create({
    kind: 'OSImage',
    project: '',
    name,
    spec: { ...spec, checksum: spec.checksum.toLowerCase(), verifyOnCreate: true },
    status: { verification: { state: 'pending', url: spec.url, checksum: spec.checksum.toLowerCase() } },
  });
}

async function verification(name: string): Promise<NonNullable<OSImageStatus['verification']>> {
  const row = await store.get({ kind: 'OSImage', project: '', name });
  return (row!.status as OSImageStatus).verification!;
}

describe('OS image verifier', () => {
  it('verifies a raw image: records digest, size and detected format; deletes its temp file', async () => {
    await publish('ubuntu', { url: `${base}/disk.raw`, checksum: sha256(raw).toUpperCase(), checksumType: 'sha256', format: 'raw' });
    await verifier().verifyOnce();
    const v = await verification('ubuntu');
    expect(v).toMatchObject({ state: 'verified', digest: sha256(raw), sizeBytes: raw.length, detectedFormat: 'raw', url: `${base}/disk.raw`, checksum: sha256(raw) });
    expect(v.message).toBeUndefined();
    expect(Date.parse(v.verifiedAt!)).not.toBeNaN();
    expect(readdirSync(workDir)).toEqual([]);
    const events = await store.listEvents({ kind: 'OSImage', project: '', name: 'ubuntu' });
    expect(events.map((e) => e.reason)).toEqual(['ImageVerified']);
    // Nothing pending any more: a second pass downloads nothing.
    await verifier().verifyOnce();
    expect(served.get('/disk.raw')).toBe(1);
  });

  it('verifies a qcow2 image with sha512 over HTTPS trusted through the configured CA bundle', async () => {
    await publish('fedora', { url: `${tlsBase}/disk.qcow2`, checksum: sha512(qcow2), checksumType: 'sha512', format: 'qcow2' });
    await verifier({ fetchOptions: { caPem } }).verifyOnce();
    expect(await verification('fedora')).toMatchObject({ state: 'verified', digest: sha512(qcow2), sizeBytes: qcow2.length, detectedFormat: 'qcow2' });
  });

  it('fails HTTPS when the CA bundle is not configured, saying the certificate could not be verified', async () => {
    await publish('fedora', { url: `${tlsBase}/disk.qcow2`, checksum: sha512(qcow2), checksumType: 'sha512', format: 'qcow2' });
    await verifier().verifyOnce();
    const v = await verification('fedora');
    expect(v.state).toBe('failed');
    expect(v.message).toMatch(/TLS certificate could not be verified/);
    expect(v.message).toContain('spec.url');
  });

  it('verifies a file:// image read from the local disk', async () => {
    const path = join(dir, 'disk.qcow2');
    await publish('local', { url: pathToFileURL(path).href, checksum: sha256(qcow2), checksumType: 'sha256', format: 'qcow2' });
    await verifier().verifyOnce();
    expect(await verification('local')).toMatchObject({ state: 'verified', digest: sha256(qcow2), sizeBytes: qcow2.length, detectedFormat: 'qcow2' });
  });

  it('fails a wrong checksum, naming both digests', async () => {
    const wrong = sha256(Buffer.from('something else'));
    await publish('ubuntu', { url: `${base}/disk.raw`, checksum: wrong, checksumType: 'sha256', format: 'raw' });
    await verifier().verifyOnce();
    const v = await verification('ubuntu');
    expect(v).toMatchObject({ state: 'failed', digest: sha256(raw), sizeBytes: raw.length, detectedFormat: 'raw' });
    expect(v.message).toBe(`downloaded image has sha256 ${sha256(raw)} but spec.checksum says ${wrong}; fix spec.checksum or the image`);
    expect(readdirSync(workDir)).toEqual([]);
    const events = await store.listEvents({ kind: 'OSImage', project: '', name: 'ubuntu' });
    expect(events.map((e) => [e.type, e.reason])).toEqual([['Warning', 'ImageVerificationFailed']]);
  });

  it('fails a qcow2 image published as raw', async () => {
    await publish('mislabelled', { url: `${base}/disk.qcow2`, checksum: sha256(qcow2), checksumType: 'sha256', format: 'raw' });
    await verifier().verifyOnce();
    const v = await verification('mislabelled');
    expect(v).toMatchObject({ state: 'failed', detectedFormat: 'qcow2' });
    expect(v.message).toMatch(/^spec\.format is "raw" but the image's bytes are qcow2; fix spec\.format to "qcow2"/);
  });

  it('fails a qcow2 image with a backing file as unsafe', async () => {
    await publish('backed', { url: `${base}/backed.qcow2`, checksum: sha256(backed), checksumType: 'sha256', format: 'qcow2' });
    await verifier().verifyOnce();
    const v = await verification('backed');
    expect(v).toMatchObject({ state: 'failed', detectedFormat: 'qcow2' });
    expect(v.message).toMatch(/^backing-file: /);
    expect(v.message).toMatch(/backing file/i);
  });

  it('fails an image larger than the limit, and a download the server refuses', async () => {
    await publish('big', { url: `${base}/disk.raw`, checksum: sha256(raw), checksumType: 'sha256', format: 'raw' });
    await publish('gone', { url: `${base}/missing.raw`, checksum: sha256(raw), checksumType: 'sha256', format: 'raw' });
    await verifier({ maxImageBytes: MIB }).verifyOnce();
    expect((await verification('big')).message).toMatch(/more than the 1048576-byte verification limit/);
    expect(await verification('gone')).toMatchObject({ state: 'failed', message: expect.stringContaining('HTTP 404 for spec.url') });
  });

  it('discards the result when the spec changes during verification, then verifies the new spec', async () => {
    const gate = hold('/disk.raw');
    const row = await publish('ubuntu', { url: `${base}/disk.raw`, checksum: sha256(raw), checksumType: 'sha256', format: 'raw' });
    const v = verifier();
    const pass = v.verifyOnce();
    await gate.arrived;
    const during = await store.get({ kind: 'OSImage', project: '', name: 'ubuntu' });
    expect((during!.status as OSImageStatus).verification!.state).toBe('verifying');
    // What PUT /osimages/ubuntu does for a new url: new spec, a new pending verification.
    const other = files.get('/other.raw')!;
    const url = `${base}/other.raw`;
    await store.replace({ ...during!, spec: { ...during!.spec, url, checksum: sha256(other) }, status: { verification: { state: 'pending', url, checksum: sha256(other) } } });
    gate.open();
    await pass;
    const after = await verification('ubuntu');
    expect(after).toEqual({ state: 'pending', url, checksum: sha256(other) });
    expect(served.get('/disk.raw')).toBe(1);
    expect(await store.getLease(`osimage-verify/${row.uid}`)).toBeUndefined();

    await v.verifyOnce();
    expect(await verification('ubuntu')).toMatchObject({ state: 'verified', url, digest: sha256(other), sizeBytes: other.length });
  });

  it('discards the result when verifyOnCreate is switched off during verification', async () => {
    const gate = hold('/disk.raw');
    await publish('ubuntu', { url: `${base}/disk.raw`, checksum: sha256(raw), checksumType: 'sha256', format: 'raw' });
    const pass = verifier().verifyOnce();
    await gate.arrived;
    const during = await store.get({ kind: 'OSImage', project: '', name: 'ubuntu' });
    await store.replace({ ...during!, spec: { ...during!.spec, verifyOnCreate: false }, status: {} });
    gate.open();
    await pass;
    const row = await store.get({ kind: 'OSImage', project: '', name: 'ubuntu' });
    expect(row!.status).toEqual({});
  });

  it('two verifiers on one store verify an image once', async () => {
    const gate = hold('/disk.qcow2');
    await publish('shared', { url: `${base}/disk.qcow2`, checksum: sha256(qcow2), checksumType: 'sha256', format: 'qcow2' });
    const a = verifier({ holder: 'verifier-a' });
    const b = verifier({ holder: 'verifier-b' });
    const passes = [a.verifyOnce(), b.verifyOnce()];
    await gate.arrived;
    // Both passes may start now; the one without the lease skips the image.
    const more = [a.verifyOnce(), b.verifyOnce()];
    gate.open();
    await Promise.all([...passes, ...more]);
    expect(await verification('shared')).toMatchObject({ state: 'verified', digest: sha256(qcow2) });
    expect(served.get('/disk.qcow2')).toBe(1);
    const events = await store.listEvents({ kind: 'OSImage', project: '', name: 'shared' });
    expect(events.map((e) => e.reason)).toEqual(['ImageVerified']);
  });

  it('takes over a "verifying" image whose holder died, but not one whose holder is alive', async () => {
    const orphan = await publish('orphan', { url: `${base}/disk.raw`, checksum: sha256(raw), checksumType: 'sha256', format: 'raw' });
    const busy = await publish('busy', { url: `${base}/disk.qcow2`, checksum: sha256(qcow2), checksumType: 'sha256', format: 'qcow2' });
    for (const row of [orphan, busy]) {
      const v = (row.status as OSImageStatus).verification!;
      await store.replace({ ...row, status: { verification: { ...v, state: 'verifying' } } });
    }
    // A dead process's lease ran out an hour ago; a live one holds its lease for another minute.
    await store.acquireLease(`osimage-verify/${orphan.uid}`, 'dead-process', 'verify OS image', 60_000, Date.now() - 3_600_000);
    await store.acquireLease(`osimage-verify/${busy.uid}`, 'live-process', 'verify OS image', 60_000, Date.now());
    await verifier().verifyOnce();
    expect(await verification('orphan')).toMatchObject({ state: 'verified', digest: sha256(raw) });
    expect(await verification('busy')).toMatchObject({ state: 'verifying' });
    expect(served.get('/disk.qcow2')).toBeUndefined();
  });

  it('stop() aborts a verification in progress: the image stays "verifying", its lease is released, no temp file is left', async () => {
    const gate = hold('/disk.raw');
    const row = await publish('ubuntu', { url: `${base}/disk.raw`, checksum: sha256(raw), checksumType: 'sha256', format: 'raw' });
    const v = verifier({ pollMs: 60_000 });
    v.start();
    await gate.arrived;
    await v.stop();
    gate.open();
    expect(await verification('ubuntu')).toMatchObject({ state: 'verifying' });
    expect(await store.getLease(`osimage-verify/${row.uid}`)).toBeUndefined();
    expect(readdirSync(workDir)).toEqual([]);
    // Another verifier (another process, or this one restarted) finishes it.
    await verifier().verifyOnce();
    expect(await verification('ubuntu')).toMatchObject({ state: 'verified' });
  });

  it('start() verifies images published while it runs; stop() ends the loop', async () => {
    const v = verifier({ pollMs: 20 });
    v.start();
    await publish('later', { url: `${base}/disk.raw`, checksum: sha256(raw), checksumType: 'sha256', format: 'raw' });
    for (let i = 0; i < 500 && (await verification('later')).state !== 'verified'; i++) await new Promise((r) => setTimeout(r, 10));
    expect(await verification('later')).toMatchObject({ state: 'verified' });
    await v.stop();
  });
});
