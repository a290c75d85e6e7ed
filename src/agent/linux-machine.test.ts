// The real-Linux machine on the machine running the tests (a Linux VM or container): its
// inventory must agree with what the kernel and the standard tools say, must only read, and
// must still work when a tool is missing (a minimal ramdisk).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
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
    expect(bare.systemVendor).toBeUndefined();
  });

  it('a tool printing garbage is treated as missing, not a crash', async () => {
    const inv = await createLinuxMachine({ run: async () => 'not json {' }).inventory();
    expect(inv.cpu?.count).toBe(cpus().length);
    expect(Array.isArray(inv.nics)).toBe(true);
    expect(Array.isArray(inv.storage)).toBe(true);
  });
});
