// A real Linux host: inventory from /proc, /sys, `lsblk --json -b`, `ip -j link` and
// `dmidecode` when present. Writing to block devices is refused unless `allowDiskWrites` is
// set explicitly (`ingot agent --i-mean-it-write-disks`): running the agent by mistake on a
// workstation must not erase it.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import type { HardwareDetails } from '../model/host.js';
import { openFileDisk } from './file-disk.js';
import type { MachineAccess, MachineDisk } from './machine.js';

const run = promisify(execFile);
const MAX_OUTPUT = 4 * 1024 * 1024;

async function tryRun(cmd: string, args: string[]): Promise<string | undefined> {
  try {
    return (await run(cmd, args, { maxBuffer: MAX_OUTPUT, timeout: 30_000 })).stdout;
  } catch {
    return undefined;
  }
}

export function createLinuxMachine(opts: { allowDiskWrites?: boolean } = {}): MachineAccess {
  async function disks(): Promise<MachineDisk[]> {
    const out = await tryRun('lsblk', ['--json', '-b', '-d', '-o', 'NAME,PATH,SIZE,ROTA,SERIAL,WWN,TYPE,MODEL']);
    if (!out) return [];
    const parsed = JSON.parse(out) as { blockdevices?: Array<Record<string, unknown>> };
    return (parsed.blockdevices ?? [])
      .filter((d) => d.type === 'disk')
      .map((d) => ({
        name: String(d.name),
        path: String(d.path ?? `/dev/${String(d.name)}`),
        sizeBytes: Number(d.size),
        rotational: d.rota === true || d.rota === '1' || d.rota === 1,
        ...(d.serial ? { serial: String(d.serial) } : {}),
        ...(d.wwn ? { wwn: String(d.wwn) } : {}),
      }));
  }
  return {
    async inventory(): Promise<HardwareDetails> {
      const cpuinfo = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
      const meminfo = await readFile('/proc/meminfo', 'utf8').catch(() => '');
      const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1];
      const threads = (cpuinfo.match(/^processor\s*:/gm) ?? []).length;
      const memKb = Number(/^MemTotal:\s+(\d+)/m.exec(meminfo)?.[1] ?? 0);
      const links = JSON.parse((await tryRun('ip', ['-j', 'link'])) ?? '[]') as Array<{ ifname: string; address?: string; link_type?: string; operstate?: string }>;
      const dmi = async (key: string) => (await tryRun('dmidecode', ['-s', key]))?.trim() || undefined;
      const [manufacturer, productName, serialNumber, biosVendor, biosVersion] = await Promise.all(['system-manufacturer', 'system-product-name', 'system-serial-number', 'bios-vendor', 'bios-version'].map(dmi));
      const found = await disks();
      return {
        cpu: { arch: process.arch === 'x64' ? 'x86_64' : process.arch, ...(model ? { model } : {}), threads },
        ramMebibytes: Math.floor(memKb / 1024),
        storage: found.map((d) => ({ name: d.path, sizeBytes: d.sizeBytes, rotational: d.rotational, ...(d.serial ? { serialNumber: d.serial } : {}), ...(d.wwn ? { wwn: d.wwn } : {}) })),
        nics: links.filter((l) => l.link_type === 'ether' && l.address).map((l) => ({ name: l.ifname, mac: l.address!, linkUp: l.operstate === 'UP' })),
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
