// Tenancy end to end on lab hosts (issue 6): a lab (HTTPS Redfish BMCs, two machines with a
// SecureBoot resource and two without, the real agent booted from virtual CD) and an Ingot server
// (SQLite, the Redfish driver, the conductor, the claim controller and the OS image verifier),
// joined only by `enrollLab` and the public API.
//
// An admin enrolls the hosts, publishes an OSImage (verified on create) and two NodeTypes (one
// requiring secure boot), creates projects red and blue with different allowedNodeTypes and
// quotas, an IP pool, and API tokens for the tenants. Red's admin claims three machines; they
// provision with the claim's user data and addresses, and the secure-boot ones boot with secure
// boot on. A red viewer can see but not change; blue sees nothing of red and cannot claim red's
// node types; a fourth claim is refused naming the quota. Deleting the claims cleans the hosts
// and returns them to available.
//
// Every check reads the result where it really is: the lab's Redfish SecureBoot resource, its
// boot log, the config drive on the lab's drive file, claims and hosts through the API.
// Waits are bounded polls on states, never on times.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readGptPartitions } from '../src/images/gpt.js';
import { readIso9660 } from '../src/images/iso9660.js';
import { enrollLab } from '../src/lab/enroll.js';
import { diskPath, type BootRecord } from '../src/lab/lab-model.js';
import { LabHarness } from '../src/lab/lab-test-harness.js';
import { API_VERSION } from '../src/model/envelope.js';
import type { Host } from '../src/model/host.js';
import type { RunningServer } from '../src/server/run-server.js';
import { FAST_LAB_AGENTS, startLabServer } from './support/lab-server.js';
import { writeGpt } from './support/gpt.js';

const MIB = 1024 * 1024;
const DISK_MIB = 64;
const IMAGE_BYTES = 4 * MIB;
const WAIT_MS = 90_000;
const HOSTS = 4;
const PROJECT_LABEL = 'ingot.dev/project';
const CLAIM_LABEL = 'ingot.dev/claim';

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

// Tenant inputs; the random markers make a leak of user data findable in any response.
const INLINE_USER_DATA = `#cloud-config\nhostname: sec-1\n# inline-${randomBytes(8).toString('hex')}\n`;
const SECRET_USER_DATA = `#cloud-config\nhostname: sec-2\n# secret-${randomBytes(8).toString('hex')}\n`;
const STD_USER_DATA = `#cloud-config\nhostname: std-1\n# std-${randomBytes(8).toString('hex')}\n`;
const SSH_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHtenancyLabTestKeyOnlyForThisTestAAAAAAAAA red@lab';
const POOL = { ranges: [{ start: '192.0.2.10', end: '192.0.2.20' }], prefix: 24, gateway: '192.0.2.1', dnsServers: ['192.0.2.53'] };

/** The three claims red's admin makes: two need secure boot, one takes any host. */
const CLAIMS = [
  { name: 'sec-1', nodeTypeName: 'metal.secure', userData: INLINE_USER_DATA, secureBoot: true, source: { userData: INLINE_USER_DATA } },
  { name: 'sec-2', nodeTypeName: 'metal.secure', userData: SECRET_USER_DATA, secureBoot: true, source: { userDataSecretName: 'red-ud' } },
  { name: 'std-1', nodeTypeName: 'metal.std', userData: STD_USER_DATA, secureBoot: false, source: { userData: STD_USER_DATA } },
] as const;

let dir: string;
let lab: LabHarness;
let server: RunningServer;
let images: Server;
let imageUrl: string;
let qcow2: Buffer;
let converted: Buffer;
const tokens: Record<'admin' | 'redAdmin' | 'redViewer' | 'blueAdmin', string> = { admin: '', redAdmin: '', redViewer: '', blueAdmin: '' };

interface Res<T = any> {
  status: number;
  text: string;
  json: T;
}

async function call<T = any>(token: string, method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<Res<T>> {
  const res = await fetch(`${server.apiUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, accept: 'application/json', ...(body !== undefined ? { 'content-type': contentType } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  let json: any;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json: json as T };
}

/** A call that must succeed (2xx), with the answer in the failure message. */
async function ok<T = any>(token: string, method: string, path: string, body?: unknown, contentType?: string): Promise<Res<T>> {
  const res = await call<T>(token, method, path, body, contentType);
  expect(res.status, `${method} ${path}: ${res.status} ${res.text}`).toBeLessThan(300);
  return res;
}

const admin = <T = any>(method: string, path: string, body?: unknown, contentType?: string) => call<T>(tokens.admin, method, path, body, contentType);
const getHost = async (name: string): Promise<Host> => (await ok<Host>(tokens.admin, 'GET', `/api/v1/hosts/${name}`)).json;
const indexOf = (hostName: string) => {
  const i = Array.from({ length: HOSTS }, (_, k) => lab.sys(k)).indexOf(hostName);
  expect(i, `host ${hostName} is one of the lab's systems`).toBeGreaterThanOrEqual(0);
  return i;
};
const bootLog = (i: number): BootRecord[] => lab.lab.fleet.get(lab.sys(i))!.bootLog;
const secureBootResource = (i: number) => lab.as(i, 'GET', `/redfish/v1/Systems/${lab.sys(i)}/SecureBoot`);
const diskOf = (i: number) => readFileSync(diskPath(lab.dataDir, lab.sys(i), 0));
const sectorIo = (data: Buffer) => ({ size: data.length, read: async (o: number, l: number) => data.subarray(o, o + l), write: async () => {} });

/** Claims (all projects) and hosts in one line each: what a timed-out wait prints. */
async function whereThingsAre(): Promise<string> {
  const claims = await admin<{ items: Array<{ metadata: { project: string; name: string; deletionTimestamp?: string }; status?: { state?: string; hostName?: string; reason?: string } }> }>('GET', '/api/v1/claims');
  const hosts = await admin<{ items: Host[] }>('GET', '/api/v1/hosts');
  const c = (claims.json?.items ?? []).map((x) => `${x.metadata.project}/${x.metadata.name}: ${x.status?.state}${x.metadata.deletionTimestamp ? ' (deleted)' : ''} host=${x.status?.hostName ?? '-'}${x.status?.reason ? ` reason="${x.status.reason}"` : ''}`);
  const h = (hosts.json?.items ?? []).map((x) => `${x.metadata.name}: ${x.status.provisioning.state} claim=${x.metadata.labels?.[CLAIM_LABEL] ?? '-'}${x.status.errorType ? ` error=${x.status.errorType} "${x.status.errorMessage}"` : ''}`);
  return `claims [${c.join('; ') || 'none'}]; hosts [${h.join('; ')}]`;
}

/** Polls `check` until it gives a value; on timeout the error shows every claim and host. */
async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = WAIT_MS): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${await whereThingsAre()}`);
    // Tenant tokens have the default rate limit (10 requests/s); polls stay well below it.
    await new Promise((r) => setTimeout(r, 400));
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ingot-lab-tenancy-'));
  // 1. The image: a 4 MiB GPT disk with one partition of random bytes, as qcow2 (qemu-img), served on 127.0.0.1.
  const raw = Buffer.alloc(IMAGE_BYTES);
  writeGpt(raw, [{ firstLba: 2048, lastLba: 4095, name: 'root' }]);
  randomBytes(MIB).copy(raw, 2048 * 512);
  writeFileSync(join(dir, 'image.raw'), raw);
  execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', join(dir, 'image.raw'), join(dir, 'image.qcow2')]);
  qcow2 = readFileSync(join(dir, 'image.qcow2'));
  execFileSync('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', join(dir, 'image.qcow2'), join(dir, 'converted.raw')]);
  converted = readFileSync(join(dir, 'converted.raw'));
  images = createServer((req, res) => (req.url === '/ubuntu.qcow2' ? res.writeHead(200, { 'content-length': qcow2.length }).end(qcow2) : res.writeHead(404).end()));
  await new Promise<void>((r) => images.listen(0, '127.0.0.1', r));
  imageUrl = `http://127.0.0.1:${(images.address() as { port: number }).port}/ubuntu.qcow2`;

  // 2. Four lab machines with one 64 MiB NVMe disk: two with secure boot; two without, and
  // smaller (2 GiB), so "smallest sufficient host first" gives the std claim one of those.
  const profile = join(dir, 'profile.yaml');
  const group = `cpus: 1, coresPerCpu: 2, nics: 2, disks: [{sizeMiB: ${DISK_MIB}, type: nvme}]`;
  writeFileSync(profile, `groups:\n  - {count: 2, ramGiB: 4, ${group}, secureBootCapable: true}\n  - {count: 2, ramGiB: 2, ${group}, secureBootCapable: false}\n`);
  lab = await LabHarness.start({
    hosts: HOSTS,
    powerTransitionMs: 50,
    profile,
    agents: FAST_LAB_AGENTS,
  });

  // 3. The server: conductor and tenancy controllers in one process, fast timings.
  server = await startLabServer(join(dir, 'server'), { tenancy: { pollMs: 200 } });
  tokens.admin = server.bootstrapToken!;
  await enrollLab({ dataDir: lab.dataDir, server: server.apiUrl, token: tokens.admin });
}, 90_000);

afterAll(async () => {
  await server?.close();
  await lab?.stop();
  await new Promise((r) => images?.close(r));
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 60_000);

/** Each host's spec.bootMode before any claim (restored on release). */
const bootModeBefore = new Map<string, string | undefined>();
/** Filled by the claim test, read by the later ones. */
const bound = new Map<string, { uid: string; hostName: string; address: string; index: number }>();

describe('tenancy on lab hosts', () => {
  it('the admin publishes a verified OS image, node types, projects, a pool and tenant tokens; the hosts are inspected', async () => {
    // Hosts: inspected by the agent, then given root device hints (the disks are small).
    for (let i = 0; i < HOSTS; i++) {
      const id = lab.sys(i);
      const host = await waitFor(`host ${id} available`, async () => {
        const h = await getHost(id);
        return h.status.provisioning.state === 'available' ? h : undefined;
      });
      expect(host.status.hardware?.secureBootCapable).toBe(i < 2);
      bootModeBefore.set(id, host.spec.bootMode);
      await ok(tokens.admin, 'PATCH', `/api/v1/hosts/${id}`, { spec: { rootDeviceHints: { deviceName: '/dev/nvme0n1' } } }, 'application/merge-patch+json');
    }

    // The OS image, verified on create by the verifier (downloaded, digest and format checked).
    const checksum = sha256(qcow2);
    await ok(tokens.admin, 'POST', '/api/v1/osimages', {
      apiVersion: API_VERSION,
      kind: 'OSImage',
      metadata: { name: 'ubuntu' },
      spec: { url: imageUrl, checksum, checksumType: 'sha256', format: 'qcow2', secureBoot: true, verifyOnCreate: true },
    });
    const verified = await waitFor('OSImage ubuntu verified', async () => {
      const r = await admin('GET', '/api/v1/osimages/ubuntu');
      const v = r.json?.status?.verification;
      if (v?.state === 'failed') throw new Error(`OSImage verification failed: ${v.message}`);
      return v?.state === 'verified' ? v : undefined;
    });
    expect(verified).toMatchObject({ state: 'verified', digest: checksum, sizeBytes: qcow2.length, detectedFormat: 'qcow2', url: imageUrl, checksum });

    await ok(tokens.admin, 'POST', '/api/v1/nodetypes', { apiVersion: API_VERSION, kind: 'NodeType', metadata: { name: 'metal.std' }, spec: { selector: {}, osImageName: 'ubuntu' } });
    await ok(tokens.admin, 'POST', '/api/v1/nodetypes', { apiVersion: API_VERSION, kind: 'NodeType', metadata: { name: 'metal.secure' }, spec: { selector: { capabilities: { secureBoot: true } }, osImageName: 'ubuntu' } });
    await ok(tokens.admin, 'POST', '/api/v1/projects', { apiVersion: API_VERSION, kind: 'Project', metadata: { name: 'red' }, spec: { allowedNodeTypes: ['metal.*'], quotas: { claims: { hard: 3 } } } });
    await ok(tokens.admin, 'POST', '/api/v1/projects', { apiVersion: API_VERSION, kind: 'Project', metadata: { name: 'blue' }, spec: { allowedNodeTypes: ['gpu.*'] } });
    await ok(tokens.admin, 'POST', '/api/v1/ippools', { apiVersion: API_VERSION, kind: 'IPPool', metadata: { name: 'rack1' }, spec: POOL });

    // Tenant tokens through the API, as an admin hands them out.
    const mint = async (roles: string[], project: string) => {
      const r = await ok<{ token: string; roles: string[]; project: string }>(tokens.admin, 'POST', '/api/v1/tokens', { roles, project, description: `lab tenancy test ${roles[0]} ${project}`, expiresInSeconds: 3600 });
      expect(r.json).toMatchObject({ roles, project });
      expect(r.json.token).toMatch(/^ingot_/);
      return r.json.token;
    };
    tokens.redAdmin = await mint(['project-admin'], 'red');
    tokens.redViewer = await mint(['project-viewer'], 'red');
    tokens.blueAdmin = await mint(['project-admin'], 'blue');

    // Red sees both metal node types; blue sees none of them.
    const redTypes = await ok(tokens.redViewer, 'GET', '/api/v1/projects/red/nodetypes');
    expect(redTypes.json.items.map((t: { metadata: { name: string } }) => t.metadata.name).sort()).toEqual(['metal.secure', 'metal.std']);
    const blueTypes = await ok(tokens.blueAdmin, 'GET', '/api/v1/projects/blue/nodetypes');
    expect(blueTypes.json.items).toEqual([]);
  }, 120_000);

  it("red's admin claims three machines: they provision with the claim's user data and addresses, the secure-boot ones with secure boot on", async () => {
    await ok(tokens.redAdmin, 'POST', '/api/v1/projects/red/secrets', { apiVersion: API_VERSION, kind: 'Secret', metadata: { name: 'red-ud' }, stringData: { userData: SECRET_USER_DATA } });
    for (const c of CLAIMS) {
      const res = await ok(tokens.redAdmin, 'POST', '/api/v1/projects/red/claims', {
        apiVersion: API_VERSION,
        kind: 'Claim',
        metadata: { name: c.name },
        spec: { nodeTypeName: c.nodeTypeName, ...c.source, networks: [{ ipPoolName: 'rack1' }], sshKeys: [SSH_KEY] },
      });
      expect(res.status).toBe(201);
      expect(res.text).not.toContain(c.userData.trim());
    }

    // Bound first: each claim names its host and address (recorded for the release test, which
    // then cleans up whatever happens to provisioning).
    type Listed = { metadata: { name: string; uid: string }; status?: { state?: string; hostName?: string; addresses?: Array<{ address: string }> } };
    const boundClaims = await waitFor('the three claims bound to hosts with addresses', async () => {
      const r = await ok<{ items: Listed[] }>(tokens.redAdmin, 'GET', '/api/v1/projects/red/claims');
      return r.json.items.length === 3 && r.json.items.every((c) => c.status?.hostName !== undefined && c.status.addresses?.length === 1) ? r.json.items : undefined;
    });
    for (const c of boundClaims) bound.set(c.metadata.name, { uid: c.metadata.uid, hostName: c.status!.hostName!, address: c.status!.addresses![0]!.address, index: indexOf(c.status!.hostName!) });

    const ready = await waitFor('the three claims ready', async () => {
      const r = await ok<{ items: Array<{ metadata: { name: string }; status?: { state?: string } }> }>(tokens.redAdmin, 'GET', '/api/v1/projects/red/claims');
      const failed = r.json.items.find((c) => c.status?.state === 'failed');
      if (failed) throw new Error(`claim ${failed.metadata.name} failed: ${await whereThingsAre()}`);
      return r.json.items.length === 3 && r.json.items.every((c) => c.status?.state === 'ready') ? r.json.items : undefined;
    });
    expect(ready.map((c) => c.metadata.name).sort()).toEqual(['sec-1', 'sec-2', 'std-1']);

    const hostNames = new Set<string>();
    for (const c of CLAIMS) {
      // 1. The tenant's view: host name and address, nothing about the BMC or the image.
      const view = await ok(tokens.redAdmin, 'GET', `/api/v1/projects/red/claims/${c.name}`);
      const status = view.json.status;
      expect(status.state).toBe('ready');
      expect(status.hostName).toMatch(/\S/);
      expect(status.addresses).toEqual([expect.objectContaining({ ipPoolName: 'rack1', prefix: 24, gateway: '192.0.2.1', address: expect.stringMatching(/^192\.0\.2\.(1[0-9]|20)$/) })]);
      hostNames.add(status.hostName);
      const host = await getHost(status.hostName);
      const i = indexOf(status.hostName);
      expect(bound.get(c.name)).toEqual({ uid: view.json.metadata.uid, hostName: status.hostName, address: status.addresses[0].address, index: i });
      expect(view.text).not.toContain(host.spec.bmc!.address);
      expect(view.text).not.toContain(imageUrl);
      expect(view.text).not.toContain('127.0.0.1');
      expect(view.text).not.toContain(c.userData.trim());

      // 2. The host carries the claim's labels and is provisioned with the published image.
      expect(host.metadata.labels).toMatchObject({ [PROJECT_LABEL]: 'red', [CLAIM_LABEL]: view.json.metadata.uid });
      expect(host.status.provisioning.state).toBe('provisioned');
      expect(host.status.provisioning.image?.url).toBe(imageUrl);
      expect(JSON.stringify(host)).not.toContain(c.userData.trim());
      if (c.secureBoot) expect(host.status.hardware?.secureBootCapable).toBe(true);

      // 3. The machine booted from its disk, where the lab found the config drive with this claim's user data.
      const diskBoot = await waitFor(`a boot of ${status.hostName} from disk with its findings`, async () => {
        const last = bootLog(i).at(-1);
        return last?.source === 'hdd' && last.disk ? last : undefined;
      });
      expect(diskBoot.disk?.configDrive).toMatchObject({ userDataSha256: sha256(c.userData) });

      // 4. The config drive on the lab's disk: the image, then network_data.json with the claim's
      // address on the boot NIC, the ssh key in the meta data.
      const disk = diskOf(i);
      expect(disk.subarray(2048 * 512, 4096 * 512).equals(converted.subarray(2048 * 512, 4096 * 512))).toBe(true);
      const partitions = await readGptPartitions(sectorIo(disk));
      const cd = partitions.find((p) => p.name === 'config-2');
      expect(cd, `config-2 partition on ${status.hostName}`).toBeDefined();
      const volume = readIso9660(disk.subarray(cd!.firstLba * 512, (cd!.lastLba + 1) * 512));
      expect(volume.readFile('openstack/latest/user_data')!.toString('utf8')).toBe(c.userData);
      const network = JSON.parse(volume.readFile('openstack/latest/network_data.json')!.toString('utf8'));
      const mac = host.spec.bootMACAddress!.toLowerCase();
      expect(network.links).toEqual([expect.objectContaining({ type: 'phy', ethernet_mac_address: mac })]);
      expect(network.networks).toEqual([expect.objectContaining({ type: 'ipv4', ip_address: status.addresses[0].address, netmask: '255.255.255.0', link: network.links[0].id, network_id: 'rack1' })]);
      expect(network.networks[0].routes).toEqual([expect.objectContaining({ gateway: '192.0.2.1' })]);
      expect(network.services).toEqual([{ type: 'dns', address: '192.0.2.53' }]);
      const meta = JSON.parse(volume.readFile('openstack/latest/meta_data.json')!.toString('utf8'));
      expect(meta).toMatchObject({ uuid: host.metadata.uid, claim: c.name, project: 'red', public_keys: { key0: SSH_KEY } });

      // 5. Secure boot, read from the lab's Redfish and boot log.
      if (c.secureBoot) {
        expect(host.status.provisioning).toMatchObject({ bootMode: 'UEFISecureBoot', secureBoot: true });
        const sb = await secureBootResource(i);
        expect(sb.status).toBe(200);
        expect(sb.body).toMatchObject({ SecureBootEnable: true, SecureBootCurrentBoot: 'Enabled' });
        expect(bootLog(i).at(-1)).toMatchObject({ source: 'hdd', secureBoot: true });
      }
    }
    // Three claims, three different hosts, three different addresses.
    expect(hostNames.size).toBe(3);
    expect(new Set([...bound.values()].map((b) => b.address)).size).toBe(3);
    const addresses = await ok(tokens.admin, 'GET', '/api/v1/ippools/rack1/addresses');
    expect(addresses.json.items.map((a: { address: string }) => a.address).sort()).toEqual([...bound.values()].map((b) => b.address).sort());
  }, 120_000);

  it('a fourth red claim is refused naming the hard quota', async () => {
    const res = await call(tokens.redAdmin, 'POST', '/api/v1/projects/red/claims', { apiVersion: API_VERSION, kind: 'Claim', metadata: { name: 'std-2' }, spec: { nodeTypeName: 'metal.std' } });
    expect(res.status, res.text).toBe(403);
    expect(res.json.code).toBe('INGOT_ERR_QUOTA_EXCEEDED');
    expect(res.json.message).toContain('quota of 3 claims reached in project red');
    expect((await call(tokens.redAdmin, 'GET', '/api/v1/projects/red/claims/std-2')).status).toBe(404);
  });

  it("a red viewer sees red's claims but cannot change them", async () => {
    const list = await ok(tokens.redViewer, 'GET', '/api/v1/projects/red/claims');
    expect(list.json.items.map((c: { metadata: { name: string } }) => c.metadata.name).sort()).toEqual(['sec-1', 'sec-2', 'std-1']);
    expect((await ok(tokens.redViewer, 'GET', '/api/v1/projects/red/claims/sec-1')).json.status.hostName).toBe(bound.get('sec-1')!.hostName);
    expect((await ok(tokens.redViewer, 'GET', '/api/v1/projects/red')).json.metadata.name).toBe('red');
    const create = await call(tokens.redViewer, 'POST', '/api/v1/projects/red/claims', { apiVersion: API_VERSION, kind: 'Claim', metadata: { name: 'v-1' }, spec: { nodeTypeName: 'metal.std' } });
    expect(create.status, create.text).toBe(403);
    const del = await call(tokens.redViewer, 'DELETE', '/api/v1/projects/red/claims/sec-1');
    expect(del.status, del.text).toBe(403);
    const still = await ok(tokens.redViewer, 'GET', '/api/v1/projects/red/claims/sec-1');
    expect(still.json.metadata.deletionTimestamp).toBeUndefined();
    expect(still.json.status.state).toBe('ready');
  });

  it("blue sees nothing of red and cannot claim red's node types", async () => {
    const redMarks = () => [...bound.entries()].flatMap(([name, b]) => [name, b.uid, b.hostName, b.address]).concat(['red-ud']);
    for (const path of ['/api/v1/projects/red', '/api/v1/projects/red/claims', '/api/v1/projects/red/claims/sec-1', '/api/v1/projects/red/secrets', '/api/v1/projects/red/secrets/red-ud', '/api/v1/claims', '/api/v1/hosts']) {
      const res = await call(tokens.blueAdmin, 'GET', path);
      expect([403, 404], `${path}: ${res.status} ${res.text}`).toContain(res.status);
      for (const mark of redMarks()) expect(res.text, `${path} answers with "${mark}"`).not.toContain(mark);
    }
    const own = await ok(tokens.blueAdmin, 'GET', '/api/v1/projects/blue/claims');
    expect(own.json.items).toEqual([]);
    const claim = await call(tokens.blueAdmin, 'POST', '/api/v1/projects/blue/claims', { apiVersion: API_VERSION, kind: 'Claim', metadata: { name: 'b-1' }, spec: { nodeTypeName: 'metal.std' } });
    expect(claim.status, claim.text).toBe(403);
    expect(claim.json.message).toContain('may not claim node type');
    expect((await ok(tokens.blueAdmin, 'GET', '/api/v1/projects/blue/claims')).json.items).toEqual([]);
  });

  it('deleting the claims releases them: hosts cleaned and available again, labels removed, addresses freed, claims gone', async () => {
    expect(bound.size, 'the claim test bound three hosts').toBe(3);
    for (const c of CLAIMS) {
      const res = await call(tokens.redAdmin, 'DELETE', `/api/v1/projects/red/claims/${c.name}`);
      expect(res.status, res.text).toBe(202);
      expect(res.json.metadata.deletionTimestamp).toBeDefined();
    }
    // Each claim is seen releasing (cleaning boots an agent, which takes several passes), then disappears.
    const seenReleasing = new Set<string>();
    await waitFor('the three claims released and removed', async () => {
      let gone = 0;
      for (const c of CLAIMS) {
        const r = await call(tokens.redAdmin, 'GET', `/api/v1/projects/red/claims/${c.name}`);
        if (r.status === 404) gone++;
        else if (r.json?.status?.state === 'releasing') seenReleasing.add(c.name);
      }
      return gone === CLAIMS.length ? true : undefined;
    }, WAIT_MS);
    expect([...seenReleasing].sort()).toEqual(['sec-1', 'sec-2', 'std-1']);
    expect((await ok(tokens.redAdmin, 'GET', '/api/v1/projects/red/claims')).json.items).toEqual([]);

    for (const [name, b] of bound) {
      const host = await waitFor(`host ${b.hostName} (claim ${name}) available and unlabelled`, async () => {
        const h = await getHost(b.hostName);
        return h.status.provisioning.state === 'available' && h.status.provisioning.image === undefined && h.metadata.labels?.[CLAIM_LABEL] === undefined ? h : undefined;
      });
      expect(host.metadata.labels?.[PROJECT_LABEL]).toBeUndefined();
      expect(host.spec.image).toBeUndefined();
      expect(host.spec.bootMode).toBe(bootModeBefore.get(b.hostName));
      expect(host.status.provisioning.secureBoot).toBeUndefined();
      // Cleaned: metadata cleaning erased both partition tables.
      const disk = diskOf(b.index);
      expect(disk.subarray(0, MIB).every((x) => x === 0)).toBe(true);
      expect(disk.subarray(DISK_MIB * MIB - MIB).every((x) => x === 0)).toBe(true);
      await expect(readGptPartitions(sectorIo(disk))).rejects.toThrow(/no GPT/);
      const events = await ok<{ items: Array<{ reason: string; fromState?: string; toState?: string }> }>(tokens.admin, 'GET', `/api/v1/hosts/${b.hostName}/events`);
      const path = events.json.items.filter((e) => e.reason === 'StateChanged').map((e) => `${e.fromState}>${e.toState}`);
      expect(path.slice(-3)).toEqual(['provisioning>provisioned', 'provisioned>deprovisioning', 'deprovisioning>available']);
      // Secure boot is off again on the machines that had it.
      if (b.index < 2) {
        expect((await secureBootResource(b.index)).body).toMatchObject({ SecureBootEnable: false, SecureBootCurrentBoot: 'Disabled' });
        expect(bootLog(b.index).at(-1)).toMatchObject({ source: 'cd', secureBoot: false });
      }
    }
    const addresses = await ok(tokens.admin, 'GET', '/api/v1/ippools/rack1/addresses');
    expect(addresses.json.items).toEqual([]);
    // All four hosts are free for the next tenant.
    const hosts = await ok<{ items: Host[] }>(tokens.admin, 'GET', '/api/v1/hosts');
    expect(hosts.json.items.map((h) => `${h.metadata.name}:${h.status.provisioning.state}`).sort()).toEqual(Array.from({ length: HOSTS }, (_, i) => `${lab.sys(i)}:available`).sort());
  }, 120_000);
});
