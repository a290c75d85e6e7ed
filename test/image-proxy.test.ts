// The caching proxy (images.downloadSource: local) and image download security end to end:
// a real server (agent listener serving DATA_DIR/images, SQLite), the real AgentQueue, the
// real agent on a file machine, the conductor-side ImageCache on the same data directory, and
// image servers on 127.0.0.1 (plain HTTP, and HTTPS with a certificate from a test CA).
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runAgent } from '../src/agent/agent.js';
import { deployImage } from '../src/agent/deploy.js';
import { createFileMachine } from '../src/agent/file-machine.js';
import { AgentUnavailable, type AgentPoll, type AgentStartRequest } from '../src/conductor/agent-port.js';
import { createAgentQueue, type AgentQueue } from '../src/conductor/agent-queue.js';
import type { ImageProxy } from '../src/conductor/handlers/types.js';
import { readBootConfigFromIso } from '../src/images/boot-config-iso.js';
import { ImageCache } from '../src/images/image-cache.js';
import type { BootConfig } from '../src/model/agent-protocol.js';
import type { Host, ImageSpec } from '../src/model/host.js';
import { IMAGE_COMMAND_HEADER } from '../src/server/agent-server.js';
import { imageProxyOf, runServer, type RunningServer } from '../src/server/run-server.js';
import { SecretBox } from '../src/store/secret-box.js';
import { FIRST_USABLE_LBA, writeGpt } from './support/gpt.js';
import { issueServerCert, makeCa } from './support/test-pki.js';

const MIB = 1024 * 1024;
const DISK_BYTES = 16 * MIB;
const IMAGE_BYTES = 4 * MIB;
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let dir: string;
let server: RunningServer;
let queue: AgentQueue;
let cache: ImageCache;
let proxy: ImageProxy;
let http: Server;
let https: Server;
let httpUrl: string;
let httpsUrl: string;
let raw: Buffer;
let caPem: string;
let otherCaPem: string;
let hostA: Host;
let hostB: Host;
let counter = 0;
const served = new Map<string, number>();

function handler(req: IncomingMessage, res: ServerResponse) {
  served.set(req.url ?? '', (served.get(req.url ?? '') ?? 0) + 1);
  if (req.url === '/image.raw') {
    res.writeHead(200, { 'content-length': raw.length });
    res.end(raw);
  } else res.writeHead(404).end();
}

async function makeHost(name: string, mac: string): Promise<Host> {
  const row = await server.store.create({ kind: 'Host', name, spec: { bootMACAddress: mac }, status: {} });
  return { apiVersion: 'ingot.dev/v1', kind: 'Host', metadata: { name: row.name, uid: row.uid }, spec: row.spec, status: {} } as unknown as Host;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ingot-image-proxy-'));
  const dataDir = join(dir, 'data');
  server = await runServer({ dataDir, listen: '127.0.0.1:0', agentListen: '127.0.0.1:0', role: 'api', fake: false, redfish: false, log: 'silent', images: { downloadSource: 'local' } });
  const box = await SecretBox.fromKeyFile(join(dataDir, 'secrets.key'));
  queue = createAgentQueue({ store: server.store, box, agentApiUrl: server.agentUrl });
  // The conductor's side, on the same data directory the agent listener serves from.
  cache = new ImageCache({ dir: join(dataDir, 'images'), maxTotalBytes: 64 * MIB });
  proxy = imageProxyOf(cache, server.agentUrl);

  raw = Buffer.alloc(IMAGE_BYTES);
  writeGpt(raw, [{ firstLba: 2048, lastLba: 2048 + 2048 - 1, name: 'root' }]);
  randomBytes(MIB).copy(raw, 2048 * 512);
  const ca = makeCa('image-store');
  caPem = ca.certPem;
  otherCaPem = makeCa('someone-else').certPem;
  const cert = issueServerCert(ca, 'image-store');
  http = createServer(handler);
  https = createHttpsServer({ key: cert.key, cert: cert.cert }, handler);
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  await new Promise<void>((r) => https.listen(0, '127.0.0.1', r));
  httpUrl = `http://127.0.0.1:${(http.address() as { port: number }).port}`;
  httpsUrl = `https://127.0.0.1:${(https.address() as { port: number }).port}`;
  hostA = await makeHost('proxy-a', '52:54:00:00:00:0a');
  hostB = await makeHost('proxy-b', '52:54:00:00:00:0b');
});

afterAll(async () => {
  await new Promise((r) => http?.close(r));
  await new Promise((r) => https?.close(r));
  await cache?.close();
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

let diskFile: string;
beforeEach(() => {
  diskFile = join(dir, `disk-${++counter}.img`);
  writeFileSync(diskFile, Buffer.alloc(0));
  execFileSync('truncate', ['-s', String(DISK_BYTES), diskFile]);
});

const machine = (mac: string) =>
  createFileMachine({
    hardware: { cpu: { arch: 'x86_64', count: 1 }, ramMebibytes: 1024, nics: [{ name: 'eth0', mac }] },
    disks: [{ name: 'vda', file: diskFile, serial: 'S1' }],
    scratchDir: dir,
  });

const deployOf = (image: ImageSpec, host: Host): AgentStartRequest => ({
  kind: 'deploy',
  deploy: { image, rootDeviceHints: { deviceName: '/dev/vda' }, configDrive: { metaData: { uuid: host.metadata.uid, name: host.metadata.name } } },
});

/** Polls the proxy the way the provisioning handler does, until ready or failed. */
async function prepared(image: ImageSpec) {
  for (;;) {
    const p = await proxy.prepare(image);
    if (p.state !== 'downloading') return p;
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function bootConfigOf(host: Host): Promise<BootConfig> {
  const boot = await queue.prepareBoot(host);
  return readBootConfigFromIso(Buffer.from(await (await fetch(boot.mediaUrl)).arrayBuffer()));
}

/** A booted agent's lookup, done by hand so the test holds the token. */
async function lookedUp(host: Host, mac: string): Promise<BootConfig> {
  const config = await bootConfigOf(host);
  const res = await fetch(`${server.agentUrl}/agent/v1/lookup`, {
    method: 'POST',
    headers: { authorization: `Bearer ${config.token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ hostUid: config.hostUid, bootId: config.bootId, macs: [mac] }),
  });
  expect(res.status).toBe(200);
  return config;
}

async function startDeploy(host: Host, image: ImageSpec): Promise<string> {
  const operationId = `op-${++counter}`;
  await queue.start(host, operationId, deployOf(image, host));
  return (await server.store.findAgentCommand(host.metadata.uid, operationId))!.id;
}

describe('images through the conductor (downloadSource: local)', () => {
  it('deploys through the agent listener: one download from the image store, the agent fetches with its token', async () => {
    const before = served.get('/image.raw') ?? 0;
    const ready = await prepared({ url: `${httpUrl}/image.raw`, checksum: sha256(raw), format: 'raw' });
    expect(ready.state).toBe('ready');
    const url = (ready as { url: string }).url;
    expect(url).toBe(`${server.agentUrl}/agent/v1/images/${sha256(raw)}`);
    expect(served.get('/image.raw')).toBe(before + 1);

    const bootConfig = await bootConfigOf(hostA);
    const agent = runAgent({
      bootConfig,
      machine: machine('52:54:00:00:00:0a'),
      log: { info: () => {}, warn: () => {} },
      backoff: { initialMs: 20, maxMs: 200 },
      commandWaitSeconds: 1,
      minRootDiskBytes: 0,
    });
    const operationId = `op-${++counter}`;
    for (;;) {
      try {
        await queue.start(hostA, operationId, deployOf({ url, checksum: sha256(raw), format: 'raw' }, hostA));
        break;
      } catch (err) {
        if (!(err instanceof AgentUnavailable)) throw err;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    let poll: AgentPoll;
    for (;;) {
      poll = await queue.poll(hostA, operationId);
      if (poll.state !== 'running') break;
      await new Promise((r) => setTimeout(r, 25));
    }
    await queue.finish(hostA);
    expect((await agent).reason).toBe('session-ended');
    expect(poll).toMatchObject({ state: 'done', rootDevice: '/dev/vda' });
    const disk = readFileSync(diskFile);
    const body = (b: Buffer) => b.subarray(FIRST_USABLE_LBA * 512, IMAGE_BYTES - 33 * 512);
    expect(body(disk).equals(body(raw))).toBe(true);
    // Preparing the same image again is answered from the cache.
    expect((await proxy.prepare({ url: `${httpUrl}/image.raw`, checksum: sha256(raw), format: 'raw' })).state).toBe('ready');
    expect(served.get('/image.raw')).toBe(before + 1);
  });

  it('serves an image only to a live agent of the host whose deploy command names it', async () => {
    const digest = sha256(raw);
    expect((await prepared({ url: `${httpUrl}/image.raw`, checksum: digest, format: 'raw' })).state).toBe('ready');
    const a = await lookedUp(hostA, '52:54:00:00:00:0a');
    const b = await lookedUp(hostB, '52:54:00:00:00:0b');
    const commandA = await startDeploy(hostA, { url: `${server.agentUrl}/agent/v1/images/${digest}`, checksum: digest, format: 'raw' });
    const url = `${server.agentUrl}/agent/v1/images/${digest}`;
    const get = (headers: Record<string, string>) => fetch(url, { headers });

    const ok = await get({ authorization: `Bearer ${a.token}`, [IMAGE_COMMAND_HEADER]: commandA });
    expect(ok.status).toBe(200);
    expect(Buffer.from(await ok.arrayBuffer()).equals(raw)).toBe(true);
    const part = await get({ authorization: `Bearer ${a.token}`, [IMAGE_COMMAND_HEADER]: commandA, range: 'bytes=512-1023' });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 512-1023/${raw.length}`);
    expect(Buffer.from(await part.arrayBuffer()).equals(raw.subarray(512, 1024))).toBe(true);

    expect((await get({ [IMAGE_COMMAND_HEADER]: commandA })).status).toBe(401);
    expect((await get({ authorization: 'Bearer ingot_agent_not_a_real_token', [IMAGE_COMMAND_HEADER]: commandA })).status).toBe(401);
    // Host B's live agent: not with A's command, not without a deploy of its own.
    const crossHost = await get({ authorization: `Bearer ${b.token}`, [IMAGE_COMMAND_HEADER]: commandA });
    expect(crossHost.status).toBe(403);
    expect((await get({ authorization: `Bearer ${b.token}` })).status).toBe(403);
    // A command that deploys another image does not open this one.
    const commandB = await startDeploy(hostB, { url: `${server.agentUrl}/agent/v1/images/${'ab'.repeat(32)}`, checksum: 'ab'.repeat(32), format: 'raw' });
    expect((await get({ authorization: `Bearer ${b.token}`, [IMAGE_COMMAND_HEADER]: commandB })).status).toBe(403);
    // An image not in the cache is a 404 for a command that deploys it.
    const missing = await fetch(`${server.agentUrl}/agent/v1/images/${'ab'.repeat(32)}`, { headers: { authorization: `Bearer ${b.token}`, [IMAGE_COMMAND_HEADER]: commandB } });
    expect(missing.status).toBe(404);
    // Once A's session ends, its token opens nothing.
    await queue.finish(hostA);
    await queue.finish(hostB);
    expect((await get({ authorization: `Bearer ${a.token}`, [IMAGE_COMMAND_HEADER]: commandA })).status).toBe(401);
  });

  it('fails preparation with the reason when the image does not verify, and keeps nothing', async () => {
    const wrong = sha256(Buffer.from('not the image'));
    const p = await prepared({ url: `${httpUrl}/image.raw`, checksum: wrong, format: 'raw' });
    expect(p.state).toBe('failed');
    expect((p as { message: string }).message).toMatch(/^checksum-mismatch: /);
    expect(cache.pathOf(`sha256-${wrong}`)).toBeDefined();
    expect(() => readFileSync(cache.pathOf(`sha256-${wrong}`)!)).toThrow();
  });
});

describe('agent image downloads over HTTPS', () => {
  const deploy = (url: string, requireHttps = false) => ({
    image: { url, checksum: sha256(raw), format: 'raw' as const },
    rootDeviceHints: { deviceName: '/dev/vda' },
    policy: { allowMd5: false, requireHttps },
  });

  it('deploys from an HTTPS image server whose certificate the boot CA verifies', async () => {
    const result = await deployImage({ machine: machine('52:54:00:00:00:0a'), deploy: deploy(`${httpsUrl}/image.raw`, true), caPem, minRootDiskBytes: 0 });
    expect(result).toMatchObject({ rootDevice: '/dev/vda', format: 'raw' });
    const disk = readFileSync(diskFile);
    expect(disk.subarray(2048 * 512, 4096 * 512).equals(raw.subarray(2048 * 512, 4096 * 512))).toBe(true);
  });

  it('refuses an HTTPS image server whose certificate another CA issued, writing nothing', async () => {
    await expect(deployImage({ machine: machine('52:54:00:00:00:0a'), deploy: deploy(`${httpsUrl}/image.raw`), caPem: otherCaPem, minRootDiskBytes: 0 })).rejects.toThrow(
      /certificate could not be verified/,
    );
    expect(readFileSync(diskFile).equals(Buffer.alloc(DISK_BYTES))).toBe(true);
  });

  it('refuses a plain HTTP image URL when configuration demands HTTPS, and accepts it otherwise', async () => {
    const before = served.get('/image.raw') ?? 0;
    await expect(deployImage({ machine: machine('52:54:00:00:00:0a'), deploy: deploy(`${httpUrl}/image.raw`, true), caPem, minRootDiskBytes: 0 })).rejects.toThrow(
      /plain HTTP but configuration demands HTTPS/,
    );
    expect(served.get('/image.raw') ?? 0).toBe(before);
    expect((await deployImage({ machine: machine('52:54:00:00:00:0a'), deploy: deploy(`${httpUrl}/image.raw`), minRootDiskBytes: 0 })).format).toBe('raw');
  });
});
