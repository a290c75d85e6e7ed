// The agent's ramdisk boots on a real (virtual) machine: `ingot ramdisk build` output, put on a
// host's bootable medium exactly as the agent listener makes it, is inserted through the lab's
// Redfish virtual media into a QEMU VM (OVMF, TCG here), boots, and the bundled agent gets
// DHCP, finds its configuration on the CD and reaches the agent API through the VM's
// forwarded port with the medium's token and the VM's real inventory. In the first test the
// agent API is a recording stand-in that refuses the lookup (the boot path alone); in the second
// a real `ingot server` holding the ramdisk enrolls the VM, and its conductor inserts the
// bootable medium, the agent inspects and cleans the VM, and the host becomes available.
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostBootIso } from '../src/boot/agent-boot-iso.js';
import { buildRamdisk } from '../src/boot/ramdisk-build.js';
import { aptGetInstallFor, missingPrerequisites, systemSources } from '../src/boot/ramdisk-prerequisites.js';
import type { StoredRamdisk } from '../src/boot/ramdisk-store.js';
import { enrollLab } from '../src/lab/enroll.js';
import { LabHarness } from '../src/lab/lab-test-harness.js';
import { GUEST_SERVICE_ADDRESS } from '../src/lab/vm/guest-network.js';
import { probeVmHost } from '../src/lab/vm/vm-host.js';
import type { BootConfig } from '../src/model/agent-protocol.js';
import type { RunningServer } from '../src/server/run-server.js';
import { hostApi, inState } from './support/host-api.js';
import { startLabServer } from './support/lab-server.js';

const missingPieces = missingPrerequisites(systemSources());
const missing = [...(missingPieces.length ? [aptGetInstallFor(missingPieces)] : []), ...(await probeVmHost().then(() => [], (err: Error) => [err.message]))];
if (missing.length > 0 && process.env.CI) throw new Error(`agent ramdisk VM test cannot run: ${missing.join('; ')}`);
const describeVm = missing.length === 0 ? describe : describe.skip;
if (missing.length > 0) console.warn(`skipping the agent ramdisk VM test: ${missing.join('; ')}`);

/** Bounds for a loaded 2-core machine without KVM, not expectations. */
const BUILD_TIMEOUT_MS = 420_000;
const BOOT_TIMEOUT_MS = 300_000;
const AGENT_GUEST_PORT = 7386;
const MEDIA_GUEST_PORT = 8080;

interface Recorded {
  method: string;
  url: string;
  authorization: string | undefined;
  body: string;
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

const work = mkdtempSync(join(tmpdir(), 'ingot-ramdisk-vm-'));
let built: Promise<{ ramdisk: StoredRamdisk; seconds: number }> | undefined;
/** One ramdisk build for the file (the slowest step), into work/data. */
function builtRamdisk() {
  built ??= (async () => {
    const started = Date.now();
    const ramdisk = await buildRamdisk({ dataDir: join(work, 'data') });
    return { ramdisk, seconds: (Date.now() - started) / 1000 };
  })();
  return built;
}
afterAll(() => rmSync(work, { recursive: true, force: true }));

describeVm('the agent ramdisk in a VM', () => {
  const requests: Recorded[] = [];
  const config: BootConfig = {
    apiUrl: `http://${GUEST_SERVICE_ADDRESS}:${AGENT_GUEST_PORT}`,
    token: `ingotagent_${createHash('sha256').update(work).digest('base64url')}`,
    hostUid: '3a5c7e90-1111-4222-8333-444455556666',
    bootId: '9b8a7c6d-1111-4222-8333-444455556666',
  };
  let ramdisk: StoredRamdisk;
  let agentApi: Server;
  let media: Server;
  let h: LabHarness | undefined;
  let buildSeconds = 0;

  beforeAll(async () => {
    ({ ramdisk, seconds: buildSeconds } = await builtRamdisk());
    // The host's medium, as GET /agent/v1/boot/:mediaId streams it.
    const chunks: Buffer[] = [];
    for await (const c of hostBootIso(ramdisk.bootIso, ramdisk.bootIso.size, config)) chunks.push(c as Buffer);
    writeFileSync(join(work, 'host.iso'), Buffer.concat(chunks));
    agentApi = createServer((req, res) => {
      void readBody(req).then((body) => {
        requests.push({ method: req.method ?? '', url: req.url ?? '', authorization: req.headers.authorization, body });
        res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ code: 'INGOT_ERR_UNAUTHENTICATED', message: 'recording stand-in: lookup refused on purpose' }));
      });
    });
    media = createServer((req, res) => {
      if (req.url !== '/host.iso') return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'application/x-iso9660-image', 'content-length': String(statSync(join(work, 'host.iso')).size) });
      res.end(readFileSync(join(work, 'host.iso')));
    });
    const agentPort = await listen(agentApi);
    const mediaPort = await listen(media);
    h = await LabHarness.start({
      hosts: 1,
      vms: {
        shape: { vcpus: 2, memoryMiB: 1024, diskGiB: 1 },
        forwards: [
          { guestPort: AGENT_GUEST_PORT, hostPort: agentPort },
          { guestPort: MEDIA_GUEST_PORT, hostPort: mediaPort },
        ],
      },
    });
  }, BUILD_TIMEOUT_MS);

  afterAll(async () => {
    await h?.stop();
    for (const s of [agentApi, media]) if (s) await new Promise((r) => s.close(r));
  });

  it('boots from the per-host medium over Redfish virtual media and the agent looks itself up with the medium\'s token and the VM\'s inventory', async () => {
    const lab = h!;
    const sys = `/redfish/v1/Systems/${lab.sys()}`;
    const image = `http://${GUEST_SERVICE_ADDRESS}:${MEDIA_GUEST_PORT}/host.iso`;
    const inserted = await lab.as(0, 'POST', `/redfish/v1/Managers/${lab.sys()}/VirtualMedia/Cd/Actions/VirtualMedia.InsertMedia`, { body: { Image: image, Inserted: true } });
    expect(inserted.status, inserted.text).toBe(204);
    const patched = await lab.as(0, 'PATCH', sys, { body: { Boot: { BootSourceOverrideTarget: 'Cd', BootSourceOverrideEnabled: 'Once' } } });
    expect(patched.status, patched.text).toBe(200);
    const started = Date.now();
    const reset = await lab.as(0, 'POST', `${sys}/Actions/ComputerSystem.Reset`, { body: { ResetType: 'On' } });
    expect(reset.status, reset.text).toBe(204);

    const consoleFile = join(lab.dataDir, 'systems', lab.sys(), 'console.log');
    const lookup = await lab.until(
      'the agent\'s lookup at the agent API',
      async () => requests.find((r) => r.method === 'POST' && r.url === '/agent/v1/lookup'),
      BOOT_TIMEOUT_MS,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\nconsole:\n${existsSync(consoleFile) ? readFileSync(consoleFile, 'utf8').slice(-4000) : '(none)'}`);
    });
    const bootSeconds = (Date.now() - started) / 1000;
    const serial = readFileSync(consoleFile, 'utf8');
    console.log(
      `agent ramdisk: build ${buildSeconds.toFixed(0)} s; initramfs ${(ramdisk.manifest.sizes.initramfs / 1048576).toFixed(1)} MiB, boot ISO ${(ramdisk.manifest.sizes.bootIso / 1048576).toFixed(1)} MiB; ` +
        `power on to the agent's lookup ${bootSeconds.toFixed(1)} s (${(await probeVmHost()).accel})`,
    );

    expect(lookup.authorization).toBe(`Bearer ${config.token}`);
    const body = JSON.parse(lookup.body) as { hostUid: string; bootId: string; macs: string[]; inventory?: { storage?: Array<{ sizeBytes: number }> } };
    expect(body).toMatchObject({ hostUid: config.hostUid, bootId: config.bootId });
    const nic = (await lab.as(0, 'GET', `${sys}/EthernetInterfaces/NIC1`)).body as { MACAddress: string };
    const drive = (await lab.as(0, 'GET', `${sys}/Storage/1/Drives/0`)).body as { CapacityBytes: number };
    expect(body.macs.map((m) => m.toLowerCase())).toContain(nic.MACAddress.toLowerCase());
    expect(body.inventory?.storage?.map((d) => d.sizeBytes)).toContain(drive.CapacityBytes);
    // The boot went the way /init and the agent describe it: modules, DHCP, the medium on the CD.
    expect(serial).toContain('ingot-ramdisk: started');
    expect(serial).toContain('ingot-ramdisk: starting the agent');
    expect(serial).toMatch(/"msg":"network up".*"address":"10\.0\.2\.15/);
    expect(serial).toMatch(/"msg":"boot configuration read".*"from":"[^"]*sr0/);
  }, BOOT_TIMEOUT_MS + 60_000);
});

describeVm('ingot server boots a lab VM into its agent ramdisk', () => {
  let server: RunningServer | undefined;
  let lab: LabHarness | undefined;
  let token = '';
  const { waitForHost } = hostApi(() => ({ apiUrl: server!.apiUrl, token }));

  beforeAll(async () => {
    // The server's data directory holds the ramdisk (as `ingot ramdisk build --data-dir` leaves it).
    const dataDir = join(work, 'server');
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    await builtRamdisk();
    cpSync(join(work, 'data', 'ramdisk'), join(dataDir, 'ramdisk'), { recursive: true });
    server = await startLabServer(dataDir, {
      agent: { apiUrl: `http://${GUEST_SERVICE_ADDRESS}:${AGENT_GUEST_PORT}` },
      conductor: { handler: { agentBootTimeoutMs: BOOT_TIMEOUT_MS } },
    });
    token = server.bootstrapToken!;
    lab = await LabHarness.start({
      hosts: 1,
      vms: {
        shape: { vcpus: 2, memoryMiB: 1024, diskGiB: 1 },
        forwards: [{ guestPort: AGENT_GUEST_PORT, hostPort: Number(new URL(server.agentUrl).port) }],
      },
    });
    await enrollLab({ dataDir: lab.dataDir, server: server.apiUrl, token });
  }, BUILD_TIMEOUT_MS);

  afterAll(async () => {
    await server?.close();
    await lab?.stop();
  });

  it('enrolls the VM, inspects it with the real agent booted from the bootable medium the conductor inserted, cleans it and makes it available', async () => {
    const id = lab!.sys();
    const started = Date.now();
    const consoleFile = join(lab!.dataDir, 'systems', id, 'console.log');
    const available = await waitForHost(id, 'available', inState('available'), 2 * BOOT_TIMEOUT_MS).catch((err: Error) => {
      throw new Error(`${err.message}\nconsole:\n${existsSync(consoleFile) ? readFileSync(consoleFile, 'utf8').slice(-4000) : '(none)'}`);
    });
    console.log(`agent ramdisk: enroll to available through the real agent ${((Date.now() - started) / 1000).toFixed(0)} s (${(await probeVmHost()).accel})`);
    const sys = `/redfish/v1/Systems/${id}`;
    const nic = (await lab!.as(0, 'GET', `${sys}/EthernetInterfaces/NIC1`)).body as { MACAddress: string };
    const drive = (await lab!.as(0, 'GET', `${sys}/Storage/1/Drives/0`)).body as { CapacityBytes: number };
    const hw = available.status.hardware!;
    expect(hw.storage?.map((d) => d.sizeBytes)).toContain(drive.CapacityBytes);
    expect(hw.nics?.map((n) => n.mac.toLowerCase())).toContain(nic.MACAddress.toLowerCase());
    // The VM booted the medium from the agent listener, and the serial console shows the ramdisk.
    const log = (await lab!.admin('GET', `/systems/${id}/boot-log`)).body.records as Array<{ source: string; mediaUrl?: string }>;
    expect(log.some((r) => r.source === 'cd' && r.mediaUrl?.startsWith(`http://${GUEST_SERVICE_ADDRESS}:${AGENT_GUEST_PORT}/agent/v1/boot/`))).toBe(true);
    expect(readFileSync(consoleFile, 'utf8')).toContain('ingot-ramdisk: starting the agent');
  }, 2 * BOOT_TIMEOUT_MS + 60_000);
});
