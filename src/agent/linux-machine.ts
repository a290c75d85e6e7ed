// A real Linux host: inventory from /proc, /sys, `lsblk --json -b`, `ip -j link` and
// `dmidecode` when present. Each tool is optional: a ramdisk without `ip` or `lsblk` still
// reports NICs and disks from /sys (class/net, block), and without /proc/cpuinfo the CPU count
// comes from Node. Inventory only reads (files under /proc and /sys, read-only commands).
// Writing to block devices is refused unless `allowDiskWrites` is set explicitly
// (`ingot agent --i-mean-it-write-disks`): running the agent by mistake on a workstation must
// not erase it.
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { promisify } from 'node:util';
import type { HardwareDetails } from '../model/host.js';
import { openFileDisk } from './file-disk.js';
import type { MachineAccess, MachineDisk } from './machine.js';

const run = promisify(execFile);
const MAX_OUTPUT = 4 * 1024 * 1024;
/** Block devices that are never install targets: loop files, RAM disks, compressed swap, optical, device-mapper, md, nbd. */
const NOT_A_TARGET = /^(loop|ram|zram|sr|fd|dm-|md|nbd)/;
/** ARPHRD_ETHER in /sys/class/net/NAME/type (linux/if_arp.h). */
const ARPHRD_ETHER = '1';

/** Runs a read-only tool; undefined when it is missing or fails (the inventory then does without it). */
export type CommandRunner = (cmd: string, args: string[]) => Promise<string | undefined>;

export const runTool: CommandRunner = async (cmd, args) => {
  try {
    return (await run(cmd, args, { maxBuffer: MAX_OUTPUT, timeout: 30_000 })).stdout;
  } catch {
    return undefined;
  }
};

const readText = (path: string): Promise<string | undefined> => readFile(path, 'utf8').then((t) => t.slice(0, MAX_OUTPUT), () => undefined);

function parseJson<T>(text: string | undefined): T | undefined {
  if (!text) return undefined;
  try {
    return JSON.parse(text) as T;
  } catch {
    return undefined;
  }
}

export function createLinuxMachine(opts: { allowDiskWrites?: boolean; /** Tests: stands in for the tools on PATH. */ run?: CommandRunner } = {}): MachineAccess {
  const tryRun = opts.run ?? runTool;

  /** Disks from /sys/block when lsblk is missing: sizes are in 512-byte sectors whatever the logical block size. */
  async function sysDisks(): Promise<MachineDisk[]> {
    const names = await readdir('/sys/block').catch(() => [] as string[]);
    const found: MachineDisk[] = [];
    for (const name of names.filter((n) => !NOT_A_TARGET.test(n)).sort()) {
      const sectors = Number((await readText(`/sys/block/${name}/size`))?.trim());
      if (!Number.isFinite(sectors) || sectors <= 0) continue;
      const serial = ((await readText(`/sys/block/${name}/device/serial`)) ?? (await readText(`/sys/block/${name}/serial`)))?.trim();
      const wwn = (await readText(`/sys/block/${name}/device/wwid`))?.trim();
      found.push({
        name,
        path: `/dev/${name}`,
        sizeBytes: sectors * 512,
        rotational: (await readText(`/sys/block/${name}/queue/rotational`))?.trim() === '1',
        ...(serial ? { serial } : {}),
        ...(wwn ? { wwn } : {}),
      });
    }
    return found;
  }

  async function disks(): Promise<MachineDisk[]> {
    const parsed = parseJson<{ blockdevices?: Array<Record<string, unknown>> }>(await tryRun('lsblk', ['--json', '-b', '-d', '-o', 'NAME,PATH,SIZE,ROTA,SERIAL,WWN,TYPE,MODEL']));
    if (!parsed) return sysDisks();
    return (parsed.blockdevices ?? [])
      .filter((d) => d.type === 'disk' && !NOT_A_TARGET.test(String(d.name)) && Number(d.size) > 0)
      .map((d) => ({
        name: String(d.name),
        path: String(d.path ?? `/dev/${String(d.name)}`),
        sizeBytes: Number(d.size),
        rotational: d.rota === true || d.rota === '1' || d.rota === 1,
        ...(d.serial ? { serial: String(d.serial) } : {}),
        ...(d.wwn ? { wwn: String(d.wwn) } : {}),
      }));
  }
  /** Ethernet interfaces (loopback and other link types left out), from `ip -j link` or else /sys/class/net. */
  async function interfaces(): Promise<NonNullable<HardwareDetails['nics']>> {
    const links = parseJson<Array<{ ifname?: string; address?: string; link_type?: string; operstate?: string }>>(await tryRun('ip', ['-j', 'link']));
    if (Array.isArray(links)) {
      return links.filter((l) => l.link_type === 'ether' && l.ifname && l.address).map((l) => ({ name: l.ifname!, mac: l.address!, linkUp: l.operstate === 'UP' }));
    }
    const nics: Array<NonNullable<HardwareDetails['nics']>[number] & { index: number }> = [];
    for (const name of await readdir('/sys/class/net').catch(() => [] as string[])) {
      if ((await readText(`/sys/class/net/${name}/type`))?.trim() !== ARPHRD_ETHER) continue;
      const mac = (await readText(`/sys/class/net/${name}/address`))?.trim();
      if (!mac) continue;
      const index = Number((await readText(`/sys/class/net/${name}/ifindex`))?.trim()) || Number.MAX_SAFE_INTEGER;
      nics.push({ name, mac, linkUp: (await readText(`/sys/class/net/${name}/operstate`))?.trim() === 'up', index });
    }
    // Interface index order, as `ip link` lists them.
    return nics.sort((a, b) => a.index - b.index).map(({ index: _, ...nic }) => nic);
  }

  return {
    async inventory(): Promise<HardwareDetails> {
      const cpuinfo = (await readText('/proc/cpuinfo')) ?? '';
      const meminfo = (await readText('/proc/meminfo')) ?? '';
      const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1];
      const threads = (cpuinfo.match(/^processor\s*:/gm) ?? []).length || cpus().length;
      const memKb = Number(/^MemTotal:\s+(\d+)/m.exec(meminfo)?.[1] ?? 0) || Math.floor(totalmem() / 1024);
      const nics = await interfaces();
      const dmi = async (key: string) => (await tryRun('dmidecode', ['-s', key]))?.trim() || undefined;
      const [manufacturer, productName, serialNumber, biosVendor, biosVersion] = await Promise.all(['system-manufacturer', 'system-product-name', 'system-serial-number', 'bios-vendor', 'bios-version'].map(dmi));
      const found = await disks();
      return {
        cpu: { arch: process.arch === 'x64' ? 'x86_64' : process.arch, ...(model ? { model } : {}), count: threads, threads },
        ramMebibytes: Math.floor(memKb / 1024),
        storage: found.map((d) => ({ name: d.path, sizeBytes: d.sizeBytes, rotational: d.rotational, ...(d.serial ? { serialNumber: d.serial } : {}), ...(d.wwn ? { wwn: d.wwn } : {}) })),
        nics,
        ...(manufacturer || productName || serialNumber ? { systemVendor: { ...(manufacturer ? { manufacturer } : {}), ...(productName ? { productName } : {}), ...(serialNumber ? { serialNumber } : {}) } } : {}),
        ...(biosVendor || biosVersion ? { firmware: { bios: { ...(biosVendor ? { vendor: biosVendor } : {}), ...(biosVersion ? { version: biosVersion } : {}) } } } : {}),
      };
    },
    disks,
    async openDisk(name) {
      if (!opts.allowDiskWrites) throw new Error('writing to real block devices is disabled; start the agent with --i-mean-it-write-disks on a host it may erase');
      const disk = (await disks()).find((d) => d.name === name);
      if (!disk) throw new RangeError(`no disk named ${name}`);
      return openFileDisk(disk.path, disk.sizeBytes);
    },
    scratchDir: () => tmpdir(),
  };
}
