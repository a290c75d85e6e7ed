// The lab's machine: a JSON description (what /proc, /sys and dmidecode would say) plus disk
// image files standing in for block devices. The agent runs the same code against it as on a
// real host; only inventory and disk access differ.
import { readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, resolve } from 'node:path';
import type { HardwareDetails } from '../model/host.js';
import { openFileDisk } from './file-disk.js';
import type { MachineAccess, MachineDisk } from './machine.js';

export interface MachineDescription {
  hardware: Omit<HardwareDetails, 'storage'>;
  disks: Array<{ name: string; file: string; rotational?: boolean; serial?: string; wwn?: string; model?: string }>;
  scratchDir?: string;
}

const MAX_DESCRIPTION_BYTES = 1024 * 1024;

export function loadMachineDescription(path: string): { description: MachineDescription; baseDir: string } {
  const text = readFileSync(path, 'utf8');
  if (text.length > MAX_DESCRIPTION_BYTES) throw new RangeError(`machine description ${path} is larger than ${MAX_DESCRIPTION_BYTES} bytes`);
  const description = JSON.parse(text) as MachineDescription;
  if (!description || typeof description !== 'object' || !Array.isArray(description.disks)) throw new RangeError(`machine description ${path} needs a "disks" array`);
  return { description, baseDir: dirname(resolve(path)) };
}

export function createFileMachine(description: MachineDescription, baseDir = process.cwd()): MachineAccess {
  const disks = (): MachineDisk[] =>
    description.disks.map((d) => {
      const path = isAbsolute(d.file) ? d.file : resolve(baseDir, d.file);
      return { name: d.name, path, sizeBytes: statSync(path).size, rotational: d.rotational ?? false, ...(d.serial ? { serial: d.serial } : {}), ...(d.wwn ? { wwn: d.wwn } : {}) };
    });
  return {
    async inventory() {
      return {
        ...description.hardware,
        storage: disks().map((d, i) => ({
          name: `/dev/${d.name}`,
          sizeBytes: d.sizeBytes,
          rotational: d.rotational,
          ...(d.serial ? { serialNumber: d.serial } : {}),
          ...(d.wwn ? { wwn: d.wwn } : {}),
          ...(description.disks[i]?.model ? { model: description.disks[i]!.model } : {}),
        })),
      };
    },
    async disks() {
      return disks();
    },
    async openDisk(name) {
      const disk = disks().find((d) => d.name === name);
      if (!disk) throw new RangeError(`no disk named ${name}`);
      return openFileDisk(disk.path, disk.sizeBytes);
    },
    scratchDir: () => description.scratchDir ?? tmpdir(),
  };
}
