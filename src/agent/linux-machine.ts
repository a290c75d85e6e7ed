// A real Linux host: inventory from /proc, /sys, `lsblk --json -b`, `ip -j link` and
// `dmidecode` when present. Each tool is optional: a ramdisk without `ip` or `lsblk` still
// reports NICs and disks from /sys (class/net, block), the system and firmware from
// /sys/class/dmi/id (dmidecode only where the kernel exposes no DMI there), and without
// /proc/cpuinfo the CPU count comes from Node. Inventory only reads (files under /proc and
// /sys, read-only commands).
// Writing to block devices is refused unless `allowDiskWrites` is set explicitly
// (`ingot agent --i-mean-it-write-disks`): running the agent by mistake on a workstation must
// not erase it.
import { execFile } from 'node:child_process';
import { access, readdir, readFile } from 'node:fs/promises';
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
/** What firmware vendors leave in unset DMI strings: reported as absent, not as a value. */
const DMI_PLACEHOLDER = /^(|to be filled by o\.?e\.?m\.?|default string|not specified|not applicable|none|system (product name|manufacturer|serial number)|0+|o\.e\.m\.?)$/i;
/** The EFI global variable GUID (UEFI spec §3.3): SecureBoot-<guid> exists where the firmware supports secure boot. */
const EFI_GLOBAL_GUID = '8be4df61-93ca-11d2-aa0d-00e098032b8c';

/** Runs a read-only tool; undefined when it is missing or fails (the inventory then does without it). */
export type CommandRunner = (cmd: string, args: string[]) => Promise<string | undefined>;

export const runTool: CommandRunner = async (cmd, args) => {
  try {
    return (await run(cmd, args, { maxBuffer: MAX_OUTPUT, timeout: 30_000 })).stdout;
  } catch {
    return undefined;
  }
};

function parseJson<T>(text: string | undefined): T | undefined {
  if (!text) return undefined;
  try {
    return JSON.parse(text) as T;
  } catch {
    return undefined;
  }
}

export interface LinuxMachineOptions {
  allowDiskWrites?: boolean;
  /** Tests: stands in for the tools on PATH. */
  run?: CommandRunner;
  /** Tests: a directory holding a copy of proc/ and sys/ to read instead of the real ones. */
  root?: string;
  /**
   * Only these block devices (short names such as sda or loop3) are disks for the agent. A
   * device named here counts even when its kind is never a target otherwise (a loop device
   * over a file, for tests and for operators who want to bound what the agent may touch).
   */
  onlyDisks?: string[];
}

export function createLinuxMachine(opts: LinuxMachineOptions = {}): MachineAccess {
  const tryRun = opts.run ?? runTool;
  const root = (opts.root ?? '').replace(/\/+$/, '');
  const only = opts.onlyDisks ? new Set(opts.onlyDisks) : undefined;
  const isCandidate = (name: string) => (only ? only.has(name) : !NOT_A_TARGET.test(name));
  const readText = (path: string): Promise<string | undefined> => readFile(root + path, 'utf8').then((t) => t.slice(0, MAX_OUTPUT), () => undefined);
  const readTrimmed = async (path: string) => (await readText(path))?.trim() || undefined;
  const list = (path: string) => readdir(root + path).catch(() => [] as string[]);

  /** Disks from /sys/block when lsblk is missing: sizes are in 512-byte sectors whatever the logical block size. */
  async function sysDisks(): Promise<MachineDisk[]> {
    const found: MachineDisk[] = [];
    for (const name of (await list('/sys/block')).filter(isCandidate).sort()) {
      const sectors = Number(await readTrimmed(`/sys/block/${name}/size`));
      if (!Number.isFinite(sectors) || sectors <= 0) continue;
      const serial = (await readTrimmed(`/sys/block/${name}/device/serial`)) ?? (await readTrimmed(`/sys/block/${name}/serial`));
      const wwn = await readTrimmed(`/sys/block/${name}/device/wwid`);
      found.push({
        name,
        path: `/dev/${name}`,
        sizeBytes: sectors * 512,
        rotational: (await readTrimmed(`/sys/block/${name}/queue/rotational`)) === '1',
        ...(serial ? { serial } : {}),
        ...(wwn ? { wwn } : {}),
      });
    }
    return found;
  }

  async function disks(): Promise<MachineDisk[]> {
    const parsed = parseJson<{ blockdevices?: Array<Record<string, unknown>> }>(await tryRun('lsblk', ['--json', '-b', '-d', '-o', 'NAME,PATH,SIZE,ROTA,SERIAL,WWN,TYPE,MODEL']));
    if (!parsed || root) return sysDisks();
    return (parsed.blockdevices ?? [])
      .filter((d) => (only ? only.has(String(d.name)) : d.type === 'disk' && isCandidate(String(d.name))) && Number(d.size) > 0)
      .map((d) => ({
        name: String(d.name),
        path: String(d.path ?? `/dev/${String(d.name)}`),
        sizeBytes: Number(d.size),
        rotational: d.rota === true || d.rota === '1' || d.rota === 1,
        ...(d.serial ? { serial: String(d.serial) } : {}),
        ...(d.wwn ? { wwn: String(d.wwn) } : {}),
      }));
  }

  /** Link speed in Gbit/s from /sys (Mbit/s there; -1 or unreadable while the link is down). */
  async function speedGbps(name: string): Promise<number | undefined> {
    const mbps = Number(await readTrimmed(`/sys/class/net/${name}/speed`));
    return Number.isFinite(mbps) && mbps > 0 ? mbps / 1000 : undefined;
  }

  /** Ethernet interfaces (loopback and other link types left out), from `ip -j link` or else /sys/class/net. */
  async function interfaces(): Promise<NonNullable<HardwareDetails['nics']>> {
    const links = root ? undefined : parseJson<Array<{ ifname?: string; address?: string; link_type?: string; operstate?: string }>>(await tryRun('ip', ['-j', 'link']));
    if (Array.isArray(links)) {
      const nics = links.filter((l) => l.link_type === 'ether' && l.ifname && l.address);
      return Promise.all(
        nics.map(async (l) => {
          const speed = await speedGbps(l.ifname!);
          return { name: l.ifname!, mac: l.address!, linkUp: l.operstate === 'UP', ...(speed !== undefined ? { speedGbps: speed } : {}) };
        }),
      );
    }
    const nics: Array<NonNullable<HardwareDetails['nics']>[number] & { index: number }> = [];
    for (const name of await list('/sys/class/net')) {
      if ((await readTrimmed(`/sys/class/net/${name}/type`)) !== ARPHRD_ETHER) continue;
      const mac = await readTrimmed(`/sys/class/net/${name}/address`);
      if (!mac) continue;
      const index = Number(await readTrimmed(`/sys/class/net/${name}/ifindex`)) || Number.MAX_SAFE_INTEGER;
      const speed = await speedGbps(name);
      nics.push({ name, mac, linkUp: (await readTrimmed(`/sys/class/net/${name}/operstate`)) === 'up', ...(speed !== undefined ? { speedGbps: speed } : {}), index });
    }
    // Interface index order, as `ip link` lists them.
    return nics.sort((a, b) => a.index - b.index).map(({ index: _, ...nic }) => nic);
  }

  /** System and BIOS strings: /sys/class/dmi/id first (any kernel with DMI has it), dmidecode as a fallback. */
  async function dmi(): Promise<Pick<HardwareDetails, 'systemVendor' | 'firmware'>> {
    const fromSys = async (file: string) => await readTrimmed(`/sys/class/dmi/id/${file}`);
    const fromTool = async (key: string) => (root ? undefined : (await tryRun('dmidecode', ['-s', key]))?.trim() || undefined);
    const haveSys = (await list('/sys/class/dmi/id')).length > 0;
    const read = (file: string, key: string) => (haveSys ? fromSys(file) : fromTool(key));
    const clean = (v: string | undefined) => (v === undefined || DMI_PLACEHOLDER.test(v) ? undefined : v.slice(0, 256));
    const [manufacturer, productName, serialNumber, vendor, version, date] = (
      await Promise.all([
        read('sys_vendor', 'system-manufacturer'),
        read('product_name', 'system-product-name'),
        // Readable by root only; the agent runs as root, a test user gets undefined.
        read('product_serial', 'system-serial-number'),
        read('bios_vendor', 'bios-vendor'),
        read('bios_version', 'bios-version'),
        read('bios_date', 'bios-release-date'),
      ])
    ).map(clean);
    const systemVendor = { ...(manufacturer ? { manufacturer } : {}), ...(productName ? { productName } : {}), ...(serialNumber ? { serialNumber } : {}) };
    const bios = { ...(vendor ? { vendor } : {}), ...(version ? { version } : {}), ...(date ? { date: date.slice(0, 64) } : {}) };
    return { ...(Object.keys(systemVendor).length > 0 ? { systemVendor } : {}), ...(Object.keys(bios).length > 0 ? { firmware: { bios } } : {}) };
  }

  /** UEFI firmware that defines the SecureBoot variable supports secure boot; legacy BIOS boots have no /sys/firmware/efi. */
  async function secureBootCapable(): Promise<boolean | undefined> {
    if (!(await access(`${root}/sys/firmware/efi`).then(() => true, () => false))) return undefined;
    return (await list('/sys/firmware/efi/efivars')).includes(`SecureBoot-${EFI_GLOBAL_GUID}`);
  }

  return {
    async inventory(): Promise<HardwareDetails> {
      const cpuinfo = (await readText('/proc/cpuinfo')) ?? '';
      const meminfo = (await readText('/proc/meminfo')) ?? '';
      const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim();
      const mhz = Number(/^cpu MHz\s*:\s*([\d.]+)/m.exec(cpuinfo)?.[1]);
      const threads = (cpuinfo.match(/^processor\s*:/gm) ?? []).length || cpus().length;
      // Physical cores: distinct (physical id, core id) pairs; absent on kernels/arches that do not say.
      const cores = new Set(cpuinfo.split(/\n\s*\n/).map((block) => {
        const pkg = /^physical id\s*:\s*(\d+)/m.exec(block)?.[1];
        const core = /^core id\s*:\s*(\d+)/m.exec(block)?.[1];
        return pkg !== undefined && core !== undefined ? `${pkg}/${core}` : undefined;
      }).filter((c): c is string => c !== undefined)).size;
      const memKb = Number(/^MemTotal:\s+(\d+)/m.exec(meminfo)?.[1] ?? 0) || (root ? 0 : Math.floor(totalmem() / 1024));
      const [nics, found, ids, secureBoot] = await Promise.all([interfaces(), disks(), dmi(), secureBootCapable()]);
      return {
        cpu: {
          arch: process.arch === 'x64' ? 'x86_64' : process.arch,
          ...(model ? { model } : {}),
          count: threads,
          ...(cores > 0 ? { cores } : {}),
          threads,
          ...(Number.isFinite(mhz) && mhz > 0 ? { speedMHz: Math.round(mhz) } : {}),
        },
        ramMebibytes: Math.floor(memKb / 1024),
        storage: found.map((d) => ({ name: d.path, sizeBytes: d.sizeBytes, rotational: d.rotational, ...(d.serial ? { serialNumber: d.serial } : {}), ...(d.wwn ? { wwn: d.wwn } : {}) })),
        nics,
        ...ids,
        ...(secureBoot !== undefined ? { secureBootCapable: secureBoot } : {}),
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
