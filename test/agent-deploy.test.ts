// The agent end to end: a real server (agent listener, SQLite in a temp dir), the real
// AgentQueue, the agent itself on a file machine with sparse disk files, and an image server
// on 127.0.0.1 serving images built with qemu-img. Each operation runs the full protocol:
// boot medium -> lookup -> long poll -> results -> finish (token revoked, agent exits).
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runAgent } from '../src/agent/agent.js';
import { createFileMachine } from '../src/agent/file-machine.js';
import type { AgentPoll, AgentStartRequest } from '../src/conductor/agent-port.js';
import { createAgentQueue, type AgentQueue } from '../src/conductor/agent-queue.js';
import { readBootConfigFromIso } from '../src/images/boot-config-iso.js';
import { readGptPartitions } from '../src/images/gpt.js';
import { readIso9660 } from '../src/images/iso9660.js';
import type { Host } from '../src/model/host.js';
import { runServer, type RunningServer } from '../src/server/run-server.js';
import { SecretBox } from '../src/store/secret-box.js';
import { runQueuedOperation } from './support/agent-operation.js';
import { FIRST_USABLE_LBA, writeGpt } from './support/gpt.js';

const MIB = 1024 * 1024;
const DISK_BYTES = 16 * MIB;
const IMAGE_BYTES = 4 * MIB;

let dir: string;
let server: RunningServer;
let queue: AgentQueue;
let images: Server;
let imageUrl: string;
const routes = new Map<string, (res: import('node:http').ServerResponse) => void>();
let raw: Buffer;
let qcow2: Buffer;
let backed: Buffer;
let diskFile: string;
let host: Host;
let opCounter = 0;

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function serve(path: string, body: Buffer) {
  routes.set(path, (res) => {
    res.writeHead(200, { 'content-length': body.length });
    res.end(body);
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ingot-agent-e2e-'));
  server = await runServer({ dataDir: join(dir, 'data'), listen: '127.0.0.1:0', agentListen: '127.0.0.1:0', role: 'api', fake: false, redfish: false, log: 'silent' });
  const box = await SecretBox.fromKeyFile(join(dir, 'data', 'secrets.key'));
  queue = createAgentQueue({ store: server.store, box, agentApiUrl: server.agentUrl });

  // A 4 MiB GPT disk with one partition of random bytes, and its qcow2 form.
  raw = Buffer.alloc(IMAGE_BYTES);
  writeGpt(raw, [{ firstLba: 2048, lastLba: 2048 + 2048 - 1, name: 'root' }]);
  randomBytes(1 * MIB).copy(raw, 2048 * 512);
  writeFileSync(join(dir, 'image.raw'), raw);
  execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', join(dir, 'image.raw'), join(dir, 'image.qcow2')]);
  qcow2 = readFileSync(join(dir, 'image.qcow2'));
  execFileSync('qemu-img', ['create', '-f', 'qcow2', '-F', 'raw', '-b', join(dir, 'image.raw'), join(dir, 'backed.qcow2')], { stdio: 'ignore' });
  backed = readFileSync(join(dir, 'backed.qcow2'));
  serve('/image.raw', raw);
  serve('/image.qcow2', qcow2);
  serve('/backed.qcow2', backed);
  routes.set('/truncated.raw', (res) => {
    res.writeHead(200, { 'content-length': raw.length });
    res.write(raw.subarray(0, 2 * MIB), () => res.destroy());
  });
  // Another build of the image that differs after the swap point (2 MiB).
  const other = Buffer.from(raw);
  randomBytes(MIB / 2).copy(other, 2 * MIB + MIB / 2);
  routes.set('/swapped.raw', (res) => {
    // The file changes mid-download: first half of one, second half of another.
    res.writeHead(200, { 'content-length': raw.length });
    res.end(Buffer.concat([raw.subarray(0, 2 * MIB), other.subarray(2 * MIB)]));
  });
  images = createServer((req, res) => {
    const handler = routes.get(req.url ?? '');
    if (handler) handler(res);
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => images.listen(0, '127.0.0.1', r));
  imageUrl = `http://127.0.0.1:${(images.address() as { port: number }).port}`;

  const row = await server.store.create({ kind: 'Host', name: 'e2e', spec: { bootMACAddress: '52:54:00:aa:bb:cc' }, status: {} });
  host = { apiVersion: 'ingot.dev/v1', kind: 'Host', metadata: { name: row.name, uid: row.uid }, spec: row.spec, status: {} } as unknown as Host;
});

afterAll(async () => {
  await new Promise((r) => images?.close(r));
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
  // A fresh sparse disk filled with a "previous tenant" pattern at both ends.
  diskFile = join(dir, `disk-${++opCounter}.img`);
  writeFileSync(diskFile, Buffer.alloc(0));
  execFileSync('truncate', ['-s', String(DISK_BYTES), diskFile]);
});

function fillOldTenant() {
  const data = readFileSync(diskFile);
  data.fill(0x5a, 0, 2 * MIB);
  data.fill(0x5a, DISK_BYTES - 2 * MIB);
  writeFileSync(diskFile, data);
}

/** Boots the agent from its medium, runs one operation through the queue, then finish(). */
async function operate(request: AgentStartRequest): Promise<AgentPoll> {
  const boot = await queue.prepareBoot(host);
  const iso = Buffer.from(await (await fetch(boot.mediaUrl)).arrayBuffer());
  const bootConfig = readBootConfigFromIso(iso);
  const machine = createFileMachine({
    hardware: { cpu: { arch: 'x86_64', count: 1 }, ramMebibytes: 1024, nics: [{ name: 'eth0', mac: '52:54:00:aa:bb:cc' }] },
    disks: [{ name: 'vda', file: diskFile, serial: 'S1' }],
    scratchDir: dir,
  });
  const logs: string[] = [];
  const agent = runAgent({
    bootConfig,
    machine,
    log: { info: (m) => logs.push(m), warn: (m) => logs.push(m) },
    backoff: { initialMs: 20, maxMs: 200 },
    commandWaitSeconds: 1,
    minRootDiskBytes: 0,
    conversion: { minFreeMemoryBytes: 0 },
  });
  const operationId = `op-${opCounter}-${request.kind}`;
  const poll = await runQueuedOperation(queue, host, operationId, request);
  await queue.finish(host);
  expect((await agent).reason).toBe('session-ended');
  return poll;
}

const deploy = (image: { url: string; checksum: string; format?: 'raw' | 'qcow2'; checksumType?: 'sha256' | 'md5' }, userData?: string): AgentStartRequest => ({
  kind: 'deploy',
  deploy: {
    image,
    rootDeviceHints: { deviceName: '/dev/vda' },
    configDrive: { metaData: { uuid: host.metadata.uid, name: 'e2e' }, networkData: { links: [] }, ...(userData !== undefined ? { userData } : {}) },
  },
});

function diskIo(data: Buffer) {
  return { size: data.length, read: async (o: number, l: number) => data.subarray(o, o + l), write: async () => {} };
}

/** Bytes of the image's partitions region (what the GPT edit for the config drive leaves alone). */
const imageBody = (b: Buffer) => b.subarray(FIRST_USABLE_LBA * 512, IMAGE_BYTES - 33 * 512);

describe('agent deploy end to end', () => {
  it('deploys a qcow2 image: disk matches qemu-img convert, config drive carries the user data', async () => {
    fillOldTenant();
    const poll = await operate(deploy({ url: `${imageUrl}/image.qcow2`, checksum: sha256(qcow2), format: 'qcow2' }, '#cloud-config\nhostname: e2e\n'));
    expect(poll).toMatchObject({ state: 'done', rootDevice: '/dev/vda' });
    const disk = readFileSync(diskFile);
    execFileSync('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', join(dir, 'image.qcow2'), join(dir, 'converted.raw')]);
    const converted = readFileSync(join(dir, 'converted.raw'));
    expect(imageBody(disk).equals(imageBody(converted))).toBe(true);
    const partitions = await readGptPartitions(diskIo(disk));
    expect(partitions.map((p) => p.name)).toEqual(['root', 'config-2']);
    const cd = partitions[1]!;
    expect((cd.lastLba + 1) * 512).toBe(DISK_BYTES - 33 * 512);
    const volume = readIso9660(disk.subarray(cd.firstLba * 512, (cd.lastLba + 1) * 512));
    expect(volume.volumeId).toBe('config-2');
    expect(volume.readFile('openstack/latest/user_data')?.toString()).toBe('#cloud-config\nhostname: e2e\n');
    expect(JSON.parse(volume.readFile('openstack/latest/meta_data.json')!.toString())).toEqual({ uuid: host.metadata.uid, name: 'e2e' });
    // The backup GPT moved to the end of the disk (the old tenant's bytes there are gone).
    expect(disk.toString('latin1', DISK_BYTES - 512, DISK_BYTES - 504)).toBe('EFI PART');
  });

  it('deploys a raw image straight to the disk', async () => {
    const poll = await operate(deploy({ url: `${imageUrl}/image.raw`, checksum: sha256(raw), format: 'raw' }));
    expect(poll.state).toBe('done');
    const disk = readFileSync(diskFile);
    expect(imageBody(disk).equals(imageBody(raw))).toBe(true);
    expect((await readGptPartitions(diskIo(disk))).map((p) => p.name)).toEqual(['root', 'config-2']);
  });

  const hostile: Array<[string, () => AgentStartRequest, RegExp]> = [
    ['a wrong checksum', () => deploy({ url: `${imageUrl}/image.raw`, checksum: 'ab'.repeat(32), format: 'raw' }), /checksum-mismatch/],
    ['an md5 checksum the policy does not allow', () => deploy({ url: `${imageUrl}/image.raw`, checksum: createHash('md5').update(raw).digest('hex'), checksumType: 'md5', format: 'raw' }), /checksum-type-not-allowed/],
    ['a qcow2 with a backing file', () => deploy({ url: `${imageUrl}/backed.qcow2`, checksum: sha256(backed), format: 'qcow2' }), /backing-file/],
    ['a qcow2 declared raw', () => deploy({ url: `${imageUrl}/image.qcow2`, checksum: sha256(qcow2), format: 'raw' }), /format-mismatch/],
    ['a truncated download', () => deploy({ url: `${imageUrl}/truncated.raw`, checksum: sha256(raw), format: 'raw' }), /truncated/],
    ['a file swapped mid-download', () => deploy({ url: `${imageUrl}/swapped.raw`, checksum: sha256(raw), format: 'raw' }), /checksum-mismatch/],
  ];
  for (const [what, request, reason] of hostile) {
    it(`refuses ${what} and leaves no image on the disk`, async () => {
      const poll = await operate(request());
      expect(poll.state).toBe('failed');
      expect((poll as { message: string }).message).toMatch(reason);
      const disk = readFileSync(diskFile);
      // Nothing of the image (nor a config drive) is on the disk: the first 4 MiB and the last MiB are zeros.
      expect(disk.subarray(0, IMAGE_BYTES).every((b) => b === 0)).toBe(true);
      expect(disk.subarray(DISK_BYTES - MIB).every((b) => b === 0)).toBe(true);
    });
  }
});

describe('agent clean end to end', () => {
  it('metadata: partition tables at both ends are gone', async () => {
    expect((await operate(deploy({ url: `${imageUrl}/image.raw`, checksum: sha256(raw), format: 'raw' }))).state).toBe('done');
    expect(await operate({ kind: 'clean', clean: { mode: 'metadata' } })).toMatchObject({ state: 'done' });
    const disk = readFileSync(diskFile);
    expect(disk.subarray(0, MIB).every((b) => b === 0)).toBe(true);
    expect(disk.subarray(DISK_BYTES - MIB).every((b) => b === 0)).toBe(true);
    await expect(readGptPartitions(diskIo(disk))).rejects.toThrow(/no GPT/);
    // The partition's own first and last MiB go too (here: all of its 1 MiB); blkid finds nothing there.
    expect(disk.subarray(2048 * 512, 4096 * 512).every((b) => b === 0)).toBe(true);
  });

  it('full: every byte is zero', async () => {
    fillOldTenant();
    const data = readFileSync(diskFile);
    data.fill(0x33, 5 * MIB, 6 * MIB);
    writeFileSync(diskFile, data);
    expect(await operate({ kind: 'clean', clean: { mode: 'full' } })).toMatchObject({ state: 'done' });
    expect(readFileSync(diskFile).every((b) => b === 0)).toBe(true);
  });

  it('inspect reports the machine inventory', async () => {
    const poll = await operate({ kind: 'inspect' });
    expect(poll.state).toBe('done');
    expect((poll as { inventory?: { storage?: unknown[] } }).inventory?.storage).toEqual([{ name: '/dev/vda', sizeBytes: DISK_BYTES, rotational: false, serialNumber: 'S1' }]);
  });
});
