// Issue 4 end to end on lab hosts: a lab (HTTPS Redfish BMCs, running the real agent for every
// system that boots an agent medium from virtual CD) and an Ingot server (SQLite, the Redfish
// driver, the conductor, the agent API with its command queue), joined only by `enrollLab`
// through the public API. A host goes registering -> inspecting (the agent reports the
// inventory) -> available -> provisioning (a qcow2 image in one test, a raw one in the other,
// both built here with qemu-img from a small GPT disk and served on 127.0.0.1) -> provisioned
// -> deprovisioning -> available. Every check reads the result where it really is: the lab's
// drive files, the lab's boot log, the host status through the API.
// Assertions wait for states (bounded polls), never for times.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hostApi, inState } from './support/host-api.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readGptPartitions } from '../src/images/gpt.js';
import { enrollLab } from '../src/lab/enroll.js';
import { diskPath, type BootRecord } from '../src/lab/lab-model.js';
import { LabHarness } from '../src/lab/lab-test-harness.js';
import { API_VERSION } from '../src/model/envelope.js';
import type { Host, ImageSpec } from '../src/model/host.js';
import type { RunningServer } from '../src/server/run-server.js';
import { FAST_LAB_AGENTS, startLabServer } from './support/lab-server.js';
import { FIRST_USABLE_LBA, writeGpt } from './support/gpt.js';

const MIB = 1024 * 1024;
const DISK_MIB = 64;
const DISK_BYTES = DISK_MIB * MIB;
const IMAGE_BYTES = 8 * MIB;

let dir: string;
let lab: LabHarness;
let server: RunningServer;
let token: string;
let images: Server;
let imageBase: string;
let raw: Buffer;
let qcow2: Buffer;
let converted: Buffer;

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ingot-lab-deploy-'));
  // 1. The images: an 8 MiB GPT disk with two partitions of random bytes, and its qcow2 form.
  raw = Buffer.alloc(IMAGE_BYTES);
  writeGpt(raw, [
    { firstLba: 2048, lastLba: 4095, name: 'boot' },
    { firstLba: 4096, lastLba: 4096 + 4096 - 1, name: 'root' },
  ]);
  randomBytes(MIB).copy(raw, 2048 * 512);
  randomBytes(2 * MIB).copy(raw, 4096 * 512);
  writeFileSync(join(dir, 'image.raw'), raw);
  execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', join(dir, 'image.raw'), join(dir, 'image.qcow2')]);
  qcow2 = readFileSync(join(dir, 'image.qcow2'));
  execFileSync('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', join(dir, 'image.qcow2'), join(dir, 'converted.raw')]);
  converted = readFileSync(join(dir, 'converted.raw'));
  const files: Record<string, Buffer> = { '/image.raw': raw, '/image.qcow2': qcow2 };
  images = createServer((req, res) => {
    const body = files[req.url ?? ''];
    if (!body) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-length': body.length }).end(body);
  });
  await new Promise<void>((r) => images.listen(0, '127.0.0.1', r));
  imageBase = `http://127.0.0.1:${(images.address() as { port: number }).port}`;

  // 2. A lab of two small machines (one 64 MiB NVMe disk each) that runs agents.
  const profile = join(dir, 'profile.yaml');
  writeFileSync(profile, `groups:\n  - {count: 2, cpus: 1, coresPerCpu: 2, ramGiB: 4, nics: 2, disks: [{sizeMiB: ${DISK_MIB}, type: nvme}]}\n`);
  lab = await LabHarness.start({
    hosts: 2,
    powerTransitionMs: 50,
    profile,
    agents: FAST_LAB_AGENTS,
  });

  // 3. The server, with the agent API on loopback (its URL goes into the boot media).
  server = await startLabServer(join(dir, 'server'));
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
const sectorIo = (data: Buffer) => ({ size: data.length, read: async (o: number, l: number) => data.subarray(o, o + l), write: async () => {} });
/** The image's partitions region: the config drive's GPT edit rewrites the headers, not this. */
const body = (b: Buffer) => b.subarray(FIRST_USABLE_LBA * 512, IMAGE_BYTES - 33 * 512);

/** The whole lifecycle of lab system `i` with `image`; `expected` is the raw form of the image. */
async function lifecycle(i: number, image: ImageSpec, expected: Buffer): Promise<void> {
  const id = lab.sys(i);
  // 1. Registered and inspected in-band: the inventory is what the agent saw on the lab machine.
  const available = await waitForHost(id, 'available', inState('available'));
  const hw = available.status.hardware!;
  expect(hw.storage).toEqual([expect.objectContaining({ name: '/dev/nvme0n1', sizeBytes: DISK_BYTES, rotational: false })]);
  expect(hw.cpu).toMatchObject({ count: 1, cores: 2, threads: 4, arch: 'x86_64' });
  expect(hw.ramMebibytes).toBe(4 * 1024);
  expect(hw.nics?.map((n) => n.mac)).toContain(available.spec.bootMACAddress);
  const inspectBoot = bootLog(i).find((b) => b.source === 'cd');
  expect(inspectBoot?.agent).toMatchObject({ started: true, hostUid: available.metadata.uid });
  expect(inspectBoot?.mediaUrl).toMatch(new RegExp(`^${server.agentUrl}/agent/v1/boot/`));
  // The medium was ejected when the agent's work was done.
  expect(lab.lab.fleet.get(id)!.media.inserted).toBe(false);

  // 2. Provision with user data.
  const userData = `#cloud-config\nhostname: ${id}\n# ${randomBytes(8).toString('hex')}\n`;
  const put = await api('PUT', `/api/v1/secrets/${id}-user-data`, { apiVersion: API_VERSION, kind: 'Secret', metadata: { name: `${id}-user-data` }, stringData: { userData } });
  expect([200, 201]).toContain(put.status);
  await patchHost(id, { spec: { image, online: true, userDataName: `${id}-user-data`, rootDeviceHints: { deviceName: '/dev/nvme0n1' } } });
  const provisioned = await waitForHost(id, 'provisioned', inState('provisioned'));
  expect(provisioned.status.provisioning.image?.url).toBe(image.url);
  expect(JSON.stringify(provisioned.status)).not.toContain(userData);

  // 3. The lab disk holds the image, and a config drive at its end.
  const disk = diskOf(i);
  expect(body(disk).equals(body(expected))).toBe(true);
  const partitions = await readGptPartitions(sectorIo(disk));
  expect(partitions.map((p) => p.name)).toEqual(['boot', 'root', 'config-2']);
  expect((partitions[2]!.lastLba + 34) * 512).toBe(DISK_BYTES);

  // 4. The machine booted from its disk, where the lab found the config drive with the user data.
  const diskBoot = await lab.until('a boot from disk with its findings recorded', async () => {
    const last = bootLog(i).at(-1);
    return last?.source === 'hdd' && last.disk ? last : undefined;
  }, 30_000);
  expect(diskBoot.disk).toMatchObject({ partitionTable: 'gpt', configDrive: { userDataSha256: sha256(userData), metaData: expect.objectContaining({ uuid: provisioned.metadata.uid, name: id }) } });
  expect(diskBoot.disk!.configDrive!.files).toEqual(expect.arrayContaining(['openstack/latest/meta_data.json', 'openstack/latest/user_data']));
  expect(JSON.stringify(bootLog(i))).not.toContain(userData.trim());
  expect(await lab.powerState(i)).toBe('On');

  // 5. Deprovision: metadata cleaning erases both partition tables, the host is available again.
  await patchHost(id, { spec: { image: null } });
  await waitForHost(id, 'available again', (h) => h.status.provisioning.state === 'available' && h.status.provisioning.image === undefined);
  const cleaned = diskOf(i);
  expect(cleaned.subarray(0, MIB).every((b) => b === 0)).toBe(true);
  expect(cleaned.subarray(DISK_BYTES - MIB).every((b) => b === 0)).toBe(true);
  await expect(readGptPartitions(sectorIo(cleaned))).rejects.toThrow(/no GPT/);
  const events = await api<{ items: Array<{ reason: string; fromState?: string; toState?: string }> }>('GET', `/api/v1/hosts/${id}/events`);
  const path = events.body.items.filter((e) => e.reason === 'StateChanged').map((e) => `${e.fromState}>${e.toState}`);
  expect(path).toEqual([
    'registering>inspecting',
    'inspecting>preparing',
    'preparing>available',
    'available>provisioning',
    'provisioning>provisioned',
    'provisioned>deprovisioning',
    'deprovisioning>available',
  ]);
  expect(lab.lab.agents?.runningSystems).not.toContain(id);
}

// Each lifecycle boots the agent three times (inspect + first clean, deploy, clean): room for a
// loaded machine. A wait for a state, not a timing assertion.
const LIFECYCLE_TIMEOUT_MS = 180_000;

describe('lab hosts deployed by the real agent', () => {
  it('qcow2: inspected in-band, provisioned (disk equals the converted image, config drive with user data), deprovisioned', async () => {
    await lifecycle(0, { url: `${imageBase}/image.qcow2`, checksum: sha256(qcow2), checksumType: 'sha256', format: 'qcow2' }, converted);
  }, LIFECYCLE_TIMEOUT_MS);

  it('raw: the same lifecycle with a raw image written straight to the disk', async () => {
    await lifecycle(1, { url: `${imageBase}/image.raw`, checksum: sha256(raw), checksumType: 'sha256', format: 'raw' }, raw);
  }, LIFECYCLE_TIMEOUT_MS);
});
