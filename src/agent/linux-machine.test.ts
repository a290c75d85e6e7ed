// The real-Linux machine on the machine running the tests (a Linux VM or container): its
// inventory must agree with what the kernel and the standard tools say, must only read, and
// must still work when a tool is missing (a minimal ramdisk).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createLinuxMachine, runTool, type CommandRunner } from './linux-machine.js';

const onLinux = process.platform === 'linux' && existsSync('/proc/cpuinfo');
const has = (tool: string) => {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};
const hasIp = onLinux && has('ip');
const hasLsblk = onLinux && has('lsblk');
const emptyPath = mkdtempSync(join(tmpdir(), 'ingot-no-tools-'));
afterAll(() => rmSync(emptyPath, { recursive: true, force: true }));

/** The commands the inventory may run: each only reads. */
const READ_ONLY = [/^lsblk --json -b -d -o [A-Z,]+$/, /^ip -j link$/, /^dmidecode -s [a-z-]+$/];

function recording(inner: CommandRunner = runTool) {
  const calls: string[] = [];
  const run: CommandRunner = (cmd, args) => {
    calls.push([cmd, ...args].join(' '));
    return inner(cmd, args);
  };
  return { calls, run };
}

/** As if `missing` were not installed: the real tools, looked up in an empty directory (ENOENT). */
function without(missing: string[]): CommandRunner {
  return (cmd, args) => (missing.includes(cmd) ? runTool(join(emptyPath, cmd), args) : runTool(cmd, args));
}

describe.skipIf(!onLinux)('linux machine inventory (on this Linux machine)', () => {
  it('counts the CPUs and the memory the kernel reports', async () => {
    const inv = await createLinuxMachine().inventory();
    const processors = (execFileSync('cat', ['/proc/cpuinfo'], { encoding: 'utf8' }).match(/^processor\s*:/gm) ?? []).length;
    expect(inv.cpu?.count).toBe(processors);
    expect(inv.cpu?.count).toBe(cpus().length);
    expect(inv.cpu?.threads).toBe(processors);
    const totalMiB = totalmem() / (1024 * 1024);
    expect(Math.abs(inv.ramMebibytes! - totalMiB) / totalMiB).toBeLessThan(0.01);
  });

  it.skipIf(!hasIp)('lists the Ethernet NICs `ip -j link` shows, without loopback', async () => {
    const inv = await createLinuxMachine().inventory();
    const links = JSON.parse(execFileSync('ip', ['-j', 'link'], { encoding: 'utf8' })) as Array<{ ifname: string; address?: string; link_type?: string }>;
    const expected = links.filter((l) => l.link_type === 'ether' && l.address).map((l) => ({ name: l.ifname, mac: l.address }));
    expect(expected.length).toBeGreaterThan(0);
    expect(inv.nics?.map((n) => ({ name: n.name, mac: n.mac }))).toEqual(expected);
    expect(inv.nics?.some((n) => n.name === 'lo')).toBe(false);
    for (const n of inv.nics!) expect(n.mac).toMatch(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
  });

  it.skipIf(!hasLsblk)('lists the disks `lsblk --json -b` shows, with their sizes, leaving out RAM and loop devices', async () => {
    const machine = createLinuxMachine();
    const inv = await machine.inventory();
    const devices = (JSON.parse(execFileSync('lsblk', ['--json', '-b', '-d', '-o', 'NAME,SIZE,TYPE'], { encoding: 'utf8' })) as { blockdevices: Array<{ name: string; size: number | string; type: string }> }).blockdevices;
    const expected = devices.filter((d) => d.type === 'disk' && !/^(zram|ram|loop)/.test(d.name) && Number(d.size) > 0);
    expect(expected.length).toBeGreaterThan(0);
    expect(inv.storage?.map((s) => ({ name: s.name, sizeBytes: s.sizeBytes }))).toEqual(expected.map((d) => ({ name: `/dev/${d.name}`, sizeBytes: Number(d.size) })));
    expect((await machine.disks()).map((d) => d.name)).toEqual(expected.map((d) => d.name));
  });

  it('only reads: it runs read-only tools alone, and opening a disk is refused without the explicit flag', async () => {
    const { calls, run } = recording();
    const machine = createLinuxMachine({ run });
    await machine.inventory();
    await machine.disks();
    expect(calls.length).toBeGreaterThan(0);
    for (const call of calls) expect(READ_ONLY.some((re) => re.test(call)), call).toBe(true);
    const first = (await machine.disks())[0];
    if (first) await expect(machine.openDisk(first.name)).rejects.toThrow(/--i-mean-it-write-disks/);
    await expect(machine.openDisk('no-such-disk')).rejects.toThrow(/--i-mean-it-write-disks/);
  });

  it('without ip and lsblk (not on PATH) still finds the same NICs and disks, from /sys', async () => {
    const full = await createLinuxMachine().inventory();
    const { calls, run } = recording(without(['ip', 'lsblk', 'dmidecode']));
    const bare = await createLinuxMachine({ run }).inventory();
    // The tools were asked for and were missing (not skipped).
    expect(calls.some((c) => c.startsWith('ip '))).toBe(true);
    expect(calls.some((c) => c.startsWith('lsblk '))).toBe(true);
    expect(bare.cpu?.count).toBe(full.cpu?.count);
    expect(bare.ramMebibytes).toBe(full.ramMebibytes);
    if (hasIp) expect(bare.nics?.map((n) => [n.name, n.mac])).toEqual(full.nics?.map((n) => [n.name, n.mac]));
    else expect(bare.nics?.length).toBeGreaterThan(0);
    if (hasLsblk) expect(bare.storage?.map((s) => [s.name, s.sizeBytes])).toEqual(full.storage?.map((s) => [s.name, s.sizeBytes]));
    else expect(bare.storage?.length).toBeGreaterThan(0);
    // DMI comes from /sys/class/dmi/id where the kernel has it; dmidecode was the only other source.
    if (existsSync('/sys/class/dmi/id')) expect(bare.systemVendor).toEqual(full.systemVendor);
    else expect(bare.systemVendor).toBeUndefined();
  });

  it('a tool printing garbage is treated as missing, not a crash', async () => {
    const inv = await createLinuxMachine({ run: async () => 'not json {' }).inventory();
    expect(inv.cpu?.count).toBe(cpus().length);
    expect(Array.isArray(inv.nics)).toBe(true);
    expect(Array.isArray(inv.storage)).toBe(true);
  });
});

/** Writes `files` (path under root -> content) as a small copy of /proc and /sys. */
function fakeTree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'ingot-fake-sys-'));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

const SERVER_TREE = {
  'proc/cpuinfo': [0, 1, 2, 3].map((n) => `processor\t: ${n}\nmodel name\t: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz\ncpu MHz\t\t: 2000.000\nphysical id\t: 0\ncore id\t\t: ${n % 2}\n`).join('\n'),
  'proc/meminfo': 'MemTotal:       263921664 kB\nMemFree:         1000 kB\n',
  'sys/class/dmi/id/sys_vendor': 'Dell Inc.\n',
  'sys/class/dmi/id/product_name': 'PowerEdge R650\n',
  'sys/class/dmi/id/product_serial': 'To be filled by O.E.M.\n',
  'sys/class/dmi/id/bios_vendor': 'Dell Inc.\n',
  'sys/class/dmi/id/bios_version': '1.13.2\n',
  'sys/class/dmi/id/bios_date': '03/14/2024\n',
  'sys/class/net/lo/type': '772\n',
  'sys/class/net/lo/address': '00:00:00:00:00:00\n',
  'sys/class/net/eno1/type': '1\n',
  'sys/class/net/eno1/address': 'b8:ca:3a:01:02:03\n',
  'sys/class/net/eno1/ifindex': '2\n',
  'sys/class/net/eno1/operstate': 'up\n',
  'sys/class/net/eno1/speed': '25000\n',
  'sys/class/net/eno2/type': '1\n',
  'sys/class/net/eno2/address': 'b8:ca:3a:01:02:04\n',
  'sys/class/net/eno2/ifindex': '3\n',
  'sys/class/net/eno2/operstate': 'down\n',
  'sys/class/net/eno2/speed': '-1\n',
  'sys/block/nvme0n1/size': '3750748848\n',
  'sys/block/nvme0n1/queue/rotational': '0\n',
  'sys/block/nvme0n1/device/serial': 'S4YNNE0R123456\n',
  'sys/block/sda/size': '7814037168\n',
  'sys/block/sda/queue/rotational': '1\n',
  'sys/block/loop0/size': '131072\n',
  'sys/block/sr0/size': '2097152\n',
  [`sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c`]: '\x06\x00\x00\x00\x00',
};

describe('linux machine inventory (from a copy of /proc and /sys)', () => {
  const root = fakeTree(SERVER_TREE);
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('reads CPUs, memory, DMI, NICs with link and speed, disks and secure boot support from the files', async () => {
    const inv = await createLinuxMachine({ root, run: async () => undefined }).inventory();
    expect(inv.cpu).toMatchObject({ model: 'Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz', count: 4, threads: 4, cores: 2, speedMHz: 2000 });
    expect(inv.ramMebibytes).toBe(Math.floor(263921664 / 1024));
    // The placeholder serial is absent, not reported as a serial number.
    expect(inv.systemVendor).toEqual({ manufacturer: 'Dell Inc.', productName: 'PowerEdge R650' });
    expect(inv.firmware).toEqual({ bios: { vendor: 'Dell Inc.', version: '1.13.2', date: '03/14/2024' } });
    expect(inv.nics).toEqual([
      { name: 'eno1', mac: 'b8:ca:3a:01:02:03', linkUp: true, speedGbps: 25 },
      { name: 'eno2', mac: 'b8:ca:3a:01:02:04', linkUp: false },
    ]);
    expect(inv.storage).toEqual([
      { name: '/dev/nvme0n1', sizeBytes: 3750748848 * 512, rotational: false, serialNumber: 'S4YNNE0R123456' },
      { name: '/dev/sda', sizeBytes: 7814037168 * 512, rotational: true },
    ]);
    expect(inv.secureBootCapable).toBe(true);
  });

  it('a legacy BIOS boot (no /sys/firmware/efi) leaves secure boot support unknown', async () => {
    const bios = fakeTree({ 'proc/cpuinfo': 'processor\t: 0\n', 'sys/class/dmi/id/sys_vendor': 'QEMU\n' });
    try {
      const inv = await createLinuxMachine({ root: bios, run: async () => undefined }).inventory();
      expect(inv.secureBootCapable).toBeUndefined();
      expect(inv.systemVendor).toEqual({ manufacturer: 'QEMU' });
    } finally {
      rmSync(bios, { recursive: true, force: true });
    }
  });

  it('onlyDisks bounds the disks to the named devices, and a named loop device counts', async () => {
    const machine = createLinuxMachine({ root, run: async () => undefined, onlyDisks: ['loop0', 'sda'] });
    expect((await machine.disks()).map((d) => d.name)).toEqual(['loop0', 'sda']);
    expect((await createLinuxMachine({ root, run: async () => undefined }).disks()).map((d) => d.name)).toEqual(['nvme0n1', 'sda']);
  });
});
