// Root device selection with Ironic's root device hint semantics (ironic-lib
// utils.match_root_device_hints / find_devices_by_hints): every given hint must match;
// `deviceName` matches the name with or without /dev/; `minSizeGigabytes` means at least that
// many GiB; among the matching disks the smallest wins. Without hints: the smallest disk of
// at least 4 GiB (Ironic's default skips smaller ones: USB sticks, virtual media).
import type { WireRootDeviceHints } from '../model/agent-protocol.js';
import type { MachineDisk } from './machine.js';

const GIB = 1024 ** 3;
export const MIN_ROOT_DISK_BYTES = 4 * GIB;

export class NoRootDisk extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NoRootDisk';
  }
}

const bare = (name: string) => name.replace(/^\/dev\//, '');

export function selectRootDisk(disks: MachineDisk[], hints: WireRootDeviceHints | undefined, minBytes = MIN_ROOT_DISK_BYTES): MachineDisk {
  const given = hints && Object.values(hints).some((v) => v !== undefined);
  const candidates = disks.filter((d) => {
    if (!given) return d.sizeBytes >= minBytes;
    if (hints.deviceName !== undefined && bare(hints.deviceName) !== bare(d.name) && hints.deviceName !== d.path) return false;
    if (hints.serialNumber !== undefined && hints.serialNumber !== d.serial) return false;
    if (hints.wwn !== undefined && hints.wwn.toLowerCase() !== d.wwn?.toLowerCase()) return false;
    if (hints.minSizeGigabytes !== undefined && d.sizeBytes < hints.minSizeGigabytes * GIB) return false;
    if (hints.rotational !== undefined && hints.rotational !== d.rotational) return false;
    return true;
  });
  const chosen = [...candidates].sort((a, b) => a.sizeBytes - b.sizeBytes || (a.name < b.name ? -1 : 1))[0];
  if (!chosen) {
    const seen = disks.map((d) => `${d.name} (${d.sizeBytes} bytes${d.serial ? `, serial ${d.serial}` : ''}${d.rotational ? ', rotational' : ''})`).join('; ') || 'none';
    throw new NoRootDisk(
      given
        ? `no disk matches spec.rootDeviceHints ${JSON.stringify(hints)}; disks found: ${seen}`
        : `no disk of at least ${minBytes / GIB} GiB was found (disks: ${seen}); set spec.rootDeviceHints to choose one`,
    );
  }
  return chosen;
}
