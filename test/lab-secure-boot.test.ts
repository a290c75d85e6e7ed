// UEFI secure boot and the config-drive source end to end on lab hosts: a lab (HTTPS Redfish
// BMCs with a SecureBoot resource, the real agent booted from virtual CD) and an Ingot server
// (SQLite, the Redfish driver, the conductor) whose conductor is given a ConfigDriveSource, as
// the tenancy code gives it one for claimed hosts. Every check reads the result where it really
// is: the lab's Redfish SecureBoot resource, its boot log, the config drive on the lab's drive
// file, the host status and events through the API, the audit file.
//
// 1. A secure-boot-capable host with spec.bootMode UEFISecureBoot provisions; Redfish then says
//    SecureBootCurrentBoot Enabled, status.provisioning.secureBoot is true, and the disk's config
//    drive holds the source's user data and network_data.json. Deprovisioning resets secure
//    boot: SecureBootEnable false, and the cleaning boot already ran without it.
// 2. A host without secure boot asking for UEFISecureBoot fails provisioning with a message
//    naming the fix, before anything boots.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigDriveSource } from '../src/conductor/config-drive-source.js';
import { readGptPartitions } from '../src/images/gpt.js';
import { readIso9660 } from '../src/images/iso9660.js';
import { enrollLab } from '../src/lab/enroll.js';
import { diskPath, type BootRecord } from '../src/lab/lab-model.js';
import { LabHarness } from '../src/lab/lab-test-harness.js';
import type { ImageSpec } from '../src/model/host.js';
import type { RunningServer } from '../src/server/run-server.js';
import { FAST_LAB_AGENTS, startLabServer } from './support/lab-server.js';
import { writeGpt } from './support/gpt.js';
import { hostApi, inState } from './support/host-api.js';

const MIB = 1024 * 1024;
const DISK_MIB = 32;
const IMAGE_BYTES = 4 * MIB;

let dir: string;
let lab: LabHarness;
let server: RunningServer;
let token: string;
let images: Server;
let image: ImageSpec;

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const USER_DATA = `#cloud-config\nhostname: tenant-box\n# ${randomBytes(8).toString('hex')}\n`;
const NETWORK = {
  links: [{ id: 'eno1', type: 'phy', ethernet_mac_address: '52:54:00:00:00:01', mtu: 1500 }],
  networks: [{ id: 'tenant-net', link: 'eno1', type: 'ipv4', ip_address: '10.20.30.40', netmask: '255.255.255.0', routes: [] }],
  services: [{ type: 'dns', address: '10.20.30.1' }],
};

/** What the tenancy code would hand the conductor for the claimed host: lab system 0 only. */
const configDriveSource: ConfigDriveSource = async (host) => {
  if (host.metadata.name !== lab.sys(0)) return undefined;
  return { userData: USER_DATA, networkData: NETWORK, metaData: { project: 'team-a' }, secretUse: { secretName: 'claim-ud', secretProject: 'team-a', secretVersion: 2 } };
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ingot-lab-secure-boot-'));
  // 1. A 4 MiB raw GPT image with one partition of random bytes, served on 127.0.0.1.
  const raw = Buffer.alloc(IMAGE_BYTES);
  writeGpt(raw, [{ firstLba: 2048, lastLba: 4095, name: 'root' }]);
  randomBytes(MIB).copy(raw, 2048 * 512);
  image = { url: '', checksum: sha256(raw), checksumType: 'sha256', format: 'raw' };
  images = createServer((req, res) => (req.url === '/image.raw' ? res.writeHead(200, { 'content-length': raw.length }).end(raw) : res.writeHead(404).end()));
  await new Promise<void>((r) => images.listen(0, '127.0.0.1', r));
  image.url = `http://127.0.0.1:${(images.address() as { port: number }).port}/image.raw`;

  // 2. Two lab machines: the first supports secure boot, the second does not (no SecureBoot resource).
  const profile = join(dir, 'profile.yaml');
  const group = `cpus: 1, coresPerCpu: 2, ramGiB: 4, nics: 2, disks: [{sizeMiB: ${DISK_MIB}, type: nvme}]`;
  writeFileSync(profile, `groups:\n  - {count: 1, ${group}}\n  - {count: 1, ${group}, secureBootCapable: false}\n`);
  lab = await LabHarness.start({
    hosts: 2,
    powerTransitionMs: 50,
    profile,
    agents: FAST_LAB_AGENTS,
  });

  // 3. The server, its conductor given the config-drive source.
  server = await startLabServer(join(dir, 'server'), { conductor: { configDriveSource } });
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
const secureBootResource = async (i: number) => lab.as(i, 'GET', `/redfish/v1/Systems/${lab.sys(i)}/SecureBoot`);
const eventReasons = async (id: string) => (await api<{ items: Array<{ reason: string }> }>('GET', `/api/v1/hosts/${id}/events`)).body.items.map((e) => e.reason);

describe('secure boot on lab hosts', () => {
  it('UEFISecureBoot: provisioned with SecureBootCurrentBoot Enabled and the source config drive; deprovisioning disables it', async () => {
    const id = lab.sys(0);
    const available = await waitForHost(id, 'available', inState('available'));
    expect(available.status.hardware?.secureBootCapable).toBe(true);

    // 1. Provision with secure boot.
    await patchHost(id, { spec: { image, online: true, bootMode: 'UEFISecureBoot', rootDeviceHints: { deviceName: '/dev/nvme0n1' } } });
    const provisioned = await waitForHost(id, 'provisioned', inState('provisioned'));
    expect(provisioned.status.provisioning).toMatchObject({ bootMode: 'UEFISecureBoot', secureBoot: true });
    expect(JSON.stringify(provisioned.status)).not.toContain(USER_DATA);

    // 2. The lab's Redfish SecureBoot resource: on now, and for the running boot.
    const sb = await secureBootResource(0);
    expect(sb.status).toBe(200);
    expect(sb.body).toMatchObject({ SecureBootEnable: true, SecureBootCurrentBoot: 'Enabled' });
    // The OS boot from disk had it; the agent boot that wrote the image did not (enabled after).
    const log = bootLog(0);
    expect(log.at(-1)).toMatchObject({ source: 'hdd', mode: 'UEFI', secureBoot: true });
    expect(log.filter((b) => b.source === 'cd').at(-1)).toMatchObject({ secureBoot: false });

    // 3. The config drive on the disk holds what the source gave: user data and network data.
    const disk = readFileSync(diskPath(lab.dataDir, id, 0));
    const partitions = await readGptPartitions({ size: disk.length, read: async (o: number, l: number) => disk.subarray(o, o + l), write: async () => {} });
    const cd = partitions.find((p) => p.name === 'config-2')!;
    const volume = readIso9660(disk.subarray(cd.firstLba * 512, (cd.lastLba + 1) * 512));
    expect(JSON.parse(volume.readFile('openstack/latest/network_data.json')!.toString('utf8'))).toEqual(NETWORK);
    expect(volume.readFile('openstack/latest/user_data')!.toString('utf8')).toBe(USER_DATA);
    expect(JSON.parse(volume.readFile('openstack/latest/meta_data.json')!.toString('utf8'))).toEqual({ uuid: provisioned.metadata.uid, name: id, hostname: id, project: 'team-a' });
    expect(await eventReasons(id)).toEqual(expect.arrayContaining(['SecureBootEnabled', 'SecureBootVerified']));

    // 4. The source's secret use was audited as a user-data use for this host.
    await lab.until('the audited user-data secret use', async () => {
      const lines = readFileSync(join(dir, 'server', 'audit.jsonl'), 'utf8').split('\n');
      return lines.some((l) => l.includes('"secret:use"') && l.includes('claim-ud') && l.includes('user-data') && l.includes(id)) ? true : undefined;
    });

    // 5. Deprovision: secure boot back to the disabled baseline, before the cleaning boot.
    await patchHost(id, { spec: { image: null } });
    const again = await waitForHost(id, 'available again', (h) => h.status.provisioning.state === 'available' && h.status.provisioning.image === undefined);
    expect(again.status.provisioning.secureBoot).toBeUndefined();
    expect((await secureBootResource(0)).body).toMatchObject({ SecureBootEnable: false, SecureBootCurrentBoot: 'Disabled' });
    expect(bootLog(0).at(-1)).toMatchObject({ source: 'cd', secureBoot: false });
    expect(await eventReasons(id)).toContain('SecureBootReset');
  });

  it('a host without secure boot asking for UEFISecureBoot fails provisioning with the fix, before anything boots', async () => {
    const id = lab.sys(1);
    const available = await waitForHost(id, 'available', inState('available'));
    expect(available.status.hardware?.secureBootCapable).toBe(false);
    expect((await secureBootResource(1)).status).toBe(404);
    const boots = bootLog(1).length;

    await patchHost(id, { spec: { image, online: true, bootMode: 'UEFISecureBoot', rootDeviceHints: { deviceName: '/dev/nvme0n1' } } });
    const failed = await waitForHost(id, 'a provisioning error', (h) => h.status.errorType === 'provisioning');
    expect(failed.status.errorMessage).toBe(
      'spec.bootMode is UEFISecureBoot but inspection found that this host does not support UEFI secure boot; set spec.bootMode to UEFI, or use a host whose firmware supports secure boot',
    );
    expect(bootLog(1).length).toBe(boots);
  });
});
