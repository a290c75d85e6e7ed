// Lab systems that are real QEMU virtual machines (src/lab/vm/), driven only through the lab's
// Redfish service, on TCG where KVM is missing (this machine, CI). The slow VM tests live in
// this one file. A tiny UEFI ISO built from Debian packages (test/support/tiny-boot-iso.ts)
// prints what the guest sees (its MAC, disk, DMI serial, which addresses it can reach) to
// the serial console, which the lab keeps in DATA_DIR/systems/<id>/console.log.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONTRACT_CASES, runDriverContract } from './drivers/contract.js';
import { LabHarness } from '../src/lab/lab-test-harness.js';
import { probeVmHost } from '../src/lab/vm/vm-host.js';
import { GUEST_SERVICE_ADDRESS } from '../src/lab/vm/guest-network.js';
import { createRedfishDriver } from '../src/drivers/redfish/redfish-driver.js';
import { parseBmcAddress } from '../src/model/bmc-address.js';
import { makeCa, issueServerCert } from './support/test-pki.js';
import { buildInitramfs, buildTinyUefiIso, missingForTinyIso } from './support/tiny-boot-iso.js';
import { BIN, ensureBuilt } from './support/ingot-process.js';

const missing = [...missingForTinyIso(), ...(await probeVmHost().then(() => [], (err: Error) => [err.message]))];
// In CI every tool is installed by .ci/run: a missing one is a failure there, not a skip.
if (missing.length > 0 && process.env.CI) throw new Error(`lab VM tests cannot run: missing ${missing.join('; ')}`);
const describeVm = missing.length === 0 ? describe : describe.skip;
if (missing.length > 0) console.warn(`skipping lab VM tests: missing ${missing.join('; ')}`);

/** How long one TCG boot may take on a loaded 2-core machine (a bound, not an expectation). */
const BOOT_TIMEOUT_MS = 180_000;
const SERVICE_GUEST_PORT = 7999;
const MEDIA_GUEST_PORT = 8443;

const work = mkdtempSync(join(tmpdir(), 'ingot-lab-vms-'));
const ca = makeCa('lab-vm-media');
let mediaServer: HttpsServer;
let serviceServer: TcpServer;
let closedServer: TcpServer;
let closedServerConnections = 0;
let mediaPort = 0;
let servicePort = 0;
let closedPort = 0;
let iso = '';

function listenTcp(server: TcpServer | HttpsServer): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

function consoleOf(h: LabHarness, i = 0): string {
  const file = join(h.dataDir, 'systems', h.sys(i), 'console.log');
  return existsSync(file) ? readFileSync(file, 'utf8') : '';
}

/** The value printed after `key ` on the console in the latest boot. */
function consoleValue(text: string, key: string): string | undefined {
  const boot = text.split('--- ingot lab: power on at').at(-1) ?? '';
  return new RegExp(`^${key} (.*)$`, 'm').exec(boot)?.[1]?.trim();
}

async function waitConsole(h: LabHarness, marker: string, since: number): Promise<void> {
  await h.until(`"${marker}" on the serial console`, async () => (consoleOf(h).slice(since).includes(marker) ? true : undefined), BOOT_TIMEOUT_MS);
}

beforeAll(async () => {
  if (missing.length > 0) return;
  serviceServer = createTcpServer((socket) => socket.end('SERVICE-REACHED\n'));
  closedServer = createTcpServer((socket) => {
    closedServerConnections++;
    socket.end('SHOULD-NOT-BE-REACHABLE\n');
  });
  servicePort = await listenTcp(serviceServer);
  closedPort = await listenTcp(closedServer);
  // What the guest prints: the devices it has, and which addresses it can reach.
  const script = `
for i in $(seq 1 50); do [ -e /sys/class/net/eth0 ] && [ -e /sys/block/vda ] && break; sleep 0.2; done
printf '#!/bin/sh\\n[ "$1" = bound ] && ifconfig $interface $ip netmask $subnet && echo "NET-DHCP $ip"\\n' > /bin/dhcp-script
chmod +x /bin/dhcp-script
ip link set lo up; ip link set eth0 up
udhcpc -i eth0 -q -n -t 10 -T 1 -s /bin/dhcp-script
echo "INV-MAC $(cat /sys/class/net/eth0/address)"
echo "INV-DISK-BYTES $(( $(cat /sys/block/vda/size) * 512 ))"
echo "INV-DISK-SERIAL $(cat /sys/block/vda/serial)"
echo "INV-DMI-SERIAL $(cat /sys/class/dmi/id/product_serial)"
echo "INV-CPUS $(grep -c ^processor /proc/cpuinfo)"
echo "NET-FORWARD $(nc -w 5 ${GUEST_SERVICE_ADDRESS} ${SERVICE_GUEST_PORT} </dev/null 2>&1 | head -1)"
echo "NET-GATEWAY $(nc -w 5 10.0.2.2 ${closedPort} </dev/null 2>&1 | head -1)"
echo "NET-GATEWAY-FORWARDED-PORT $(nc -w 5 10.0.2.2 ${servicePort} </dev/null 2>&1 | head -1)"
echo "NET-OTHER-PORT $(nc -w 5 ${GUEST_SERVICE_ADDRESS} ${closedPort} </dev/null 2>&1 | head -1)"
echo INGOT-TEST-READY
`;
  iso = buildTinyUefiIso(work, buildInitramfs(script));
  const tls = issueServerCert(ca, 'media', `IP:${GUEST_SERVICE_ADDRESS},IP:127.0.0.1`);
  mediaServer = createHttpsServer({ key: tls.key, cert: tls.cert }, (req, res) => {
    if (req.url !== '/tiny.iso') return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(statSync(iso).size) });
    res.end(readFileSync(iso));
  });
  mediaPort = await listenTcp(mediaServer);
}, 120_000);

afterAll(async () => {
  for (const s of [mediaServer, serviceServer, closedServer]) if (s) await new Promise((r) => s.close(r));
  rmSync(work, { recursive: true, force: true });
  rmSync(ca.dir, { recursive: true, force: true });
});

function startVmLab(vms: number): Promise<LabHarness> {
  return LabHarness.start({
    hosts: vms,
    vms: {
      shape: { vcpus: 2, memoryMiB: 512, diskGiB: 1 },
      forwards: [
        { guestPort: SERVICE_GUEST_PORT, hostPort: servicePort },
        { guestPort: MEDIA_GUEST_PORT, hostPort: mediaPort },
      ],
      mediaCaPem: ca.certPem,
      gracefulRestartMs: 60_000,
    },
  });
}

describeVm('a lab VM through Redfish', () => {
  let h: LabHarness;
  const sysPath = () => `/redfish/v1/Systems/${h.sys()}`;
  const cdPath = () => `/redfish/v1/Managers/${h.sys()}/VirtualMedia/Cd`;
  const reset = async (ResetType: string) => {
    const r = await h.as(0, 'POST', `${sysPath()}/Actions/ComputerSystem.Reset`, { body: { ResetType } });
    expect(r.status, r.text).toBe(204);
  };

  beforeAll(async () => {
    h = await startVmLab(1);
  });
  afterAll(async () => {
    await h?.stop();
  });

  it('reports the VM definition as the system inventory, powered off', async () => {
    const sys = (await h.as(0, 'GET', sysPath())).body;
    expect(sys.PowerState).toBe('Off');
    expect(sys.ProcessorSummary).toMatchObject({ Count: 1, CoreCount: 2 });
    expect(sys.MemorySummary.TotalSystemMemoryGiB).toBe(0.5);
    const drive = (await h.as(0, 'GET', `${sysPath()}/Storage/1/Drives/0`)).body;
    expect(drive).toMatchObject({ CapacityBytes: 1024 ** 3, Protocol: 'PCIe' });
    const admin = (await h.admin('GET', `/systems/${h.sys()}`)).body;
    expect(admin.vm).toMatchObject({ vcpus: 2, memoryMiB: 512, state: 'off' });
  });

  it('boots an ISO it fetched for virtual media, once, with a Cd override; the guest sees the VM the BMC describes and reaches only the forwards', async () => {
    const mediaUrl = `https://${GUEST_SERVICE_ADDRESS}:${MEDIA_GUEST_PORT}/tiny.iso`;
    const inserted = await h.as(0, 'POST', `${cdPath()}/Actions/VirtualMedia.InsertMedia`, { body: { Image: mediaUrl, Inserted: true } });
    expect(inserted.status, inserted.text).toBe(204);
    expect((await h.as(0, 'GET', cdPath())).body).toMatchObject({ Image: mediaUrl, Inserted: true });
    const patched = await h.as(0, 'PATCH', sysPath(), { body: { Boot: { BootSourceOverrideTarget: 'Cd', BootSourceOverrideEnabled: 'Once' } } });
    expect(patched.status, patched.text).toBe(200);
    const since = consoleOf(h).length;
    const started = Date.now();
    await reset('On');
    expect(await h.powerState()).toBe('On');
    await waitConsole(h, 'INGOT-TEST-READY', since);
    console.log(`lab VM: ISO boot to the guest's marker took ${((Date.now() - started) / 1000).toFixed(1)} s (${(await probeVmHost()).accel})`);

    const text = consoleOf(h);
    const sys = (await h.as(0, 'GET', sysPath())).body;
    const nic = (await h.as(0, 'GET', `${sysPath()}/EthernetInterfaces/NIC1`)).body;
    const drive = (await h.as(0, 'GET', `${sysPath()}/Storage/1/Drives/0`)).body;
    expect(consoleValue(text, 'INV-MAC')).toBe(nic.MACAddress);
    expect(Number(consoleValue(text, 'INV-DISK-BYTES'))).toBe(drive.CapacityBytes);
    expect(consoleValue(text, 'INV-DISK-SERIAL')).toBe(drive.SerialNumber);
    expect(consoleValue(text, 'INV-DMI-SERIAL')).toBe(sys.SerialNumber);
    expect(Number(consoleValue(text, 'INV-CPUS'))).toBe(sys.ProcessorSummary.CoreCount);
    expect(consoleValue(text, 'NET-DHCP')).toBe('10.0.2.15');
    // Only the forwarded service answers; the host behind the gateway and other ports do not.
    expect(consoleValue(text, 'NET-FORWARD')).toBe('SERVICE-REACHED');
    for (const key of ['NET-GATEWAY', 'NET-GATEWAY-FORWARDED-PORT', 'NET-OTHER-PORT']) {
      expect(consoleValue(text, key), key).not.toMatch(/REACHED|SHOULD-NOT/);
    }
    expect(closedServerConnections).toBe(0);

    // The override was used once and is gone; the boot log names the medium.
    expect(sys.Boot.BootSourceOverrideEnabled).toBe('Disabled');
    const log = (await h.admin('GET', `/systems/${h.sys()}/boot-log`)).body.records;
    expect(log.at(-1)).toMatchObject({ source: 'cd', mediaUrl, override: 'Once' });
  }, BOOT_TIMEOUT_MS + 60_000);

  it('GracefulShutdown presses the power button; the guest powers off and the system reads Off', async () => {
    const since = consoleOf(h).length;
    await reset('GracefulShutdown');
    await h.until('the guest to power off', async () => ((await h.powerState()) === 'Off' ? true : undefined), 60_000);
    expect(consoleOf(h).slice(since)).toContain('INGOT-TEST-POWERDOWN');
    expect((await h.admin('GET', `/systems/${h.sys()}`)).body.vm.state).toBe('off');
  }, 90_000);

  it('ejects the medium from a running VM, and ForceOff cuts it', async () => {
    await reset('On');
    expect(await h.powerState()).toBe('On');
    const log = (await h.admin('GET', `/systems/${h.sys()}/boot-log`)).body.records;
    // No override left: the default order, disk first.
    expect(log.at(-1)).toMatchObject({ source: 'hdd', override: 'Disabled' });
    const pid = (await h.admin('GET', `/systems/${h.sys()}`)).body.vm.pid as number;
    expect(pid).toBeGreaterThan(0);
    const ejected = await h.as(0, 'POST', `${cdPath()}/Actions/VirtualMedia.EjectMedia`, { body: {} });
    expect(ejected.status, ejected.text).toBe(204);
    expect((await h.as(0, 'GET', cdPath())).body).toMatchObject({ Image: null, Inserted: false });
    expect(existsSync(join(h.dataDir, 'systems', h.sys(), 'media', 'current.iso'))).toBe(false);
    await reset('ForceOff');
    expect(await h.powerState()).toBe('Off');
    expect(() => process.kill(pid, 0)).toThrow();
  }, 90_000);

  it('refuses media it may not fetch or cannot verify, with the reason', async () => {
    // An address that is neither loopback nor a forward.
    const offNet = await h.as(0, 'POST', `${cdPath()}/Actions/VirtualMedia.InsertMedia`, { body: { Image: `http://${GUEST_SERVICE_ADDRESS}:${closedPort}/x.iso` } });
    expect(offNet.status).toBe(400);
    expect(offNet.text).toContain('fetches media only from loopback');
    // A certificate from a CA the BMC does not trust.
    const other = makeCa('not-trusted');
    const tls = issueServerCert(other, 'rogue');
    const rogue = createHttpsServer({ key: tls.key, cert: tls.cert }, (_req, res) => res.end('x'));
    const port = await listenTcp(rogue);
    try {
      const r = await h.as(0, 'POST', `${cdPath()}/Actions/VirtualMedia.InsertMedia`, { body: { Image: `https://127.0.0.1:${port}/x.iso` } });
      expect(r.status).toBe(502);
      expect(r.text).toMatch(/certificate/i);
    } finally {
      await new Promise((r) => rogue.close(r));
      rmSync(other.dir, { recursive: true, force: true });
    }
    expect((await h.as(0, 'GET', cdPath())).body.Inserted).toBe(false);
  });
});

describeVm('the Redfish driver contract against lab VMs', () => {
  let lab: Promise<LabHarness> | undefined;
  let next = 0;
  afterAll(async () => {
    if (lab) await (await lab).stop();
  });
  runDriverContract({
    name: 'redfish (lab VMs on QEMU)',
    newTarget: async () => {
      lab ??= startVmLab(CONTRACT_CASES.length);
      const h = await lab;
      const system = h.lab.systems[next++ % CONTRACT_CASES.length]!;
      const driver = createRedfishDriver({ taskPollIntervalMs: 50 });
      return {
        driver,
        target: {
          hostName: `vm-${system.id}`,
          address: parseBmcAddress(`redfish-virtualmedia://${new URL(h.lab.url).host}${system.path}`),
          credentials: { username: system.username, password: system.password },
          tls: { verify: true, caBundle: h.ca },
        },
        cleanup: async () => {
          await driver.close();
          // Leave no VM running for the next case.
          const r = await h.request('POST', `${system.path}/Actions/ComputerSystem.Reset`, { auth: { username: system.username, password: system.password }, body: { ResetType: 'ForceOff' } });
          expect(r.status).toBe(204);
        },
      };
    },
    // The BMC of a lab VM fetches media when it is inserted, so the URL must serve an image.
    get mediaUrl() {
      return `https://127.0.0.1:${mediaPort}/tiny.iso`;
    },
    convergeTimeoutMs: 60_000,
  });
});

describeVm('ingot lab --vms', () => {
  it('leaves no QEMU process behind when the lab process is killed', async () => {
    ensureBuilt();
    const dataDir = join(work, 'cli-lab');
    const child = spawn(process.execPath, [BIN, 'lab', '--vms', '1', '--vm-memory', '512', '--vm-disk-size', '1', '--listen', '127.0.0.1:0', '--data-dir', dataDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    try {
      const url = await waitFor('the lab to listen', () => /Redfish at (https:\/\/\S+)/.exec(out)?.[1], 60_000);
      expect(out).toContain(`${GUEST_SERVICE_ADDRESS}:7386`);
      const state = JSON.parse(readFileSync(join(dataDir, 'lab-state.json'), 'utf8')) as { systems: Array<{ id: string; credentials: { username: string; password: string } }> };
      const s = state.systems[0]!;
      const caPem = readFileSync(join(dataDir, 'ca', 'ca.crt'), 'utf8');
      const { Agent, fetch: undiciFetch } = await import('undici');
      const dispatcher = new Agent({ connect: { ca: caPem } });
      const auth = `Basic ${Buffer.from(`${s.credentials.username}:${s.credentials.password}`).toString('base64')}`;
      const on = await undiciFetch(`${url}/redfish/v1/Systems/${s.id}/Actions/ComputerSystem.Reset`, { method: 'POST', dispatcher, headers: { authorization: auth, 'content-type': 'application/json' }, body: JSON.stringify({ ResetType: 'On' }) });
      expect(on.status).toBe(204);
      const adminToken = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
      const admin = await undiciFetch(`${url}/lab/v1/systems/${s.id}`, { dispatcher, headers: { authorization: `Bearer ${adminToken}` } });
      const pid = ((await admin.json()) as { vm: { pid: number } }).vm.pid;
      await dispatcher.close();
      expect(processAlive(pid)).toBe(true);
      // 1. The lab dies without any chance to clean up.
      child.kill('SIGKILL');
      // 2. The kernel's parent-death signal takes its VM with it.
      await waitFor('QEMU to exit after the lab died', () => (processAlive(pid) ? undefined : true), 30_000);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    // Room for ensureBuilt's tsc run when dist/ is older than src/ (a bare `vitest run`).
  }, 240_000);
});

/** True while `pid` runs (a zombie nobody reaped counts as gone). */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

async function waitFor<T>(what: string, check: () => T | undefined, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
