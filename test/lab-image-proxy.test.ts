// images.downloadSource: local on lab hosts: the same set-up as lab-deploy.test.ts (a lab with
// HTTPS Redfish BMCs running the real agent, an Ingot server with the conductor and the agent
// API), but the server downloads and verifies each image into its cache and the agents fetch
// it from the agent listener. Checks: two hosts deployed from one download of the image store;
// the lab disks hold the image; a hostile image (qcow2 with a backing file) fails provisioning
// at the cache, before the host is booted for the deploy, and nothing of it reaches the disk.
// Assertions wait for states (bounded polls), never for times.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hostApi, inState } from './support/host-api.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrollLab } from '../src/lab/enroll.js';
import { diskPath, type BootRecord } from '../src/lab/lab-model.js';
import { LabHarness } from '../src/lab/lab-test-harness.js';
import type { Host, ImageSpec } from '../src/model/host.js';
import { runServer, type RunningServer } from '../src/server/run-server.js';
import { FIRST_USABLE_LBA, writeGpt } from './support/gpt.js';

const MIB = 1024 * 1024;
const DISK_MIB = 64;
const IMAGE_BYTES = 8 * MIB;

let dir: string;
let lab: LabHarness;
let server: RunningServer;
let token: string;
let images: Server;
let imageBase: string;
let qcow2: Buffer;
let converted: Buffer;
let backed: Buffer;
const served = new Map<string, number>();

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ingot-lab-proxy-'));
  const raw = Buffer.alloc(IMAGE_BYTES);
  writeGpt(raw, [{ firstLba: 2048, lastLba: 2048 + 4096 - 1, name: 'root' }]);
  randomBytes(2 * MIB).copy(raw, 2048 * 512);
  writeFileSync(join(dir, 'image.raw'), raw);
  execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', join(dir, 'image.raw'), join(dir, 'image.qcow2')]);
  qcow2 = readFileSync(join(dir, 'image.qcow2'));
  execFileSync('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', join(dir, 'image.qcow2'), join(dir, 'converted.raw')]);
  converted = readFileSync(join(dir, 'converted.raw'));
  execFileSync('qemu-img', ['create', '-f', 'qcow2', '-F', 'raw', '-b', join(dir, 'image.raw'), join(dir, 'backed.qcow2')], { stdio: 'ignore' });
  backed = readFileSync(join(dir, 'backed.qcow2'));
  const files: Record<string, Buffer> = { '/image.qcow2': qcow2, '/backed.qcow2': backed };
  images = createServer((req, res) => {
    served.set(req.url ?? '', (served.get(req.url ?? '') ?? 0) + 1);
    const body = files[req.url ?? ''];
    if (!body) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-length': body.length }).end(body);
  });
  await new Promise<void>((r) => images.listen(0, '127.0.0.1', r));
  imageBase = `http://127.0.0.1:${(images.address() as { port: number }).port}`;

  const profile = join(dir, 'profile.yaml');
  writeFileSync(profile, `groups:\n  - {count: 3, cpus: 1, coresPerCpu: 2, ramGiB: 4, nics: 2, disks: [{sizeMiB: ${DISK_MIB}, type: nvme}]}\n`);
  lab = await LabHarness.start({
    hosts: 3,
    powerTransitionMs: 50,
    profile,
    agents: { backoff: { initialMs: 50, maxMs: 500 }, commandWaitSeconds: 1, conversion: { minFreeMemoryBytes: 0 } },
  });
  server = await runServer({
    dataDir: join(dir, 'server'),
    listen: '127.0.0.1:0',
    agentListen: '127.0.0.1:0',
    fake: false,
    log: 'silent',
    images: { downloadSource: 'local', cacheMaxBytes: 256 * MIB },
    conductor: {
      pollMs: 50,
      resyncMs: 1_000,
      backoff: { baseMs: 200, capMs: 1_000 },
      handler: { powerPollMs: 100, agentPollMs: 100, idleRecheckMs: 300, agentBootTimeoutMs: 60_000 },
    },
  });
  token = server.bootstrapToken!;
  await enrollLab({ dataDir: lab.dataDir, server: server.apiUrl, token });
});

afterAll(async () => {
  await server?.close();
  await lab?.stop();
  await new Promise((r) => images?.close(r));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const { api, patchHost, waitForHost } = hostApi(() => ({ apiUrl: server.apiUrl, token }));
const bootLog = (i: number): BootRecord[] => lab.lab.fleet.get(lab.sys(i))!.bootLog;
const diskOf = (i: number) => readFileSync(diskPath(lab.dataDir, lab.sys(i), 0));
const body = (b: Buffer) => b.subarray(FIRST_USABLE_LBA * 512, IMAGE_BYTES - 33 * 512);

describe('lab hosts deployed through the conductor image cache', () => {
  it('two hosts provisioned from one download of the image store, fetched by their agents from the agent listener', async () => {
    const image: ImageSpec = { url: `${imageBase}/image.qcow2`, checksum: sha256(qcow2), checksumType: 'sha256', format: 'qcow2' };
    for (const i of [0, 1]) await waitForHost(lab.sys(i), 'available', inState('available'));
    for (const i of [0, 1]) await patchHost(lab.sys(i), { spec: { image, online: true, rootDeviceHints: { deviceName: '/dev/nvme0n1' } } });
    for (const i of [0, 1]) {
      const provisioned = await waitForHost(lab.sys(i), 'provisioned', inState('provisioned'));
      // The tenant's spec and status keep the image store URL; only the agent saw the proxy.
      expect(provisioned.status.provisioning.image?.url).toBe(image.url);
      expect(body(diskOf(i)).equals(body(converted))).toBe(true);
      const events = await api<{ items: Array<{ reason: string }> }>('GET', `/api/v1/hosts/${lab.sys(i)}/events`);
      expect(events.body.items.map((e) => e.reason)).toContain('ImageCached');
    }
    expect(served.get('/image.qcow2')).toBe(1);
    expect(readFileSync(join(dir, 'server', 'images', `sha256-${sha256(qcow2)}`)).equals(qcow2)).toBe(true);
  });

  it('a hostile image fails provisioning at the cache, before the host is booted for the deploy', async () => {
    const i = 2;
    await waitForHost(lab.sys(i), 'available', inState('available'));
    const bootsBefore = bootLog(i).length;
    const diskBefore = diskOf(i);
    await patchHost(lab.sys(i), { spec: { image: { url: `${imageBase}/backed.qcow2`, checksum: sha256(backed), checksumType: 'sha256', format: 'qcow2' }, online: true } });
    const failed = await waitForHost(lab.sys(i), 'provisioning error', (h) => h.status.provisioning.state === 'error' && h.status.errorType === 'provisioning');
    expect(failed.status.errorMessage).toMatch(/backing-file/);
    expect(bootLog(i).length).toBe(bootsBefore);
    expect(diskOf(i).equals(diskBefore)).toBe(true);
  });
});
