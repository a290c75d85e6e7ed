import { describe, expect, it } from 'vitest';
import type { MachineDisk } from './machine.js';
import { NoRootDisk, selectRootDisk } from './root-disk.js';

const GIB = 1024 ** 3;
const disks: MachineDisk[] = [
  { name: 'sda', path: '/dev/sda', sizeBytes: 500 * GIB, rotational: true, serial: 'HDD1', wwn: '0x5000c500a1' },
  { name: 'sdb', path: '/dev/sdb', sizeBytes: 2 * GIB, rotational: false, serial: 'USB1' },
  { name: 'nvme0n1', path: '/dev/nvme0n1', sizeBytes: 200 * GIB, rotational: false, serial: 'NVME1' },
];

describe('root device hints (Ironic semantics)', () => {
  it.each([
    [undefined, 'nvme0n1'],
    [{}, 'nvme0n1'],
    [{ deviceName: '/dev/sda' }, 'sda'],
    [{ deviceName: 'sdb' }, 'sdb'],
    [{ serialNumber: 'HDD1' }, 'sda'],
    [{ wwn: '0X5000C500A1' }, 'sda'],
    [{ minSizeGigabytes: 300 }, 'sda'],
    [{ rotational: false }, 'sdb'],
    [{ rotational: false, minSizeGigabytes: 10 }, 'nvme0n1'],
  ])('hints %j choose %s', (hints, expected) => {
    expect(selectRootDisk(disks, hints).name).toBe(expected);
  });

  it('fails clearly when nothing matches', () => {
    expect(() => selectRootDisk(disks, { serialNumber: 'nope' })).toThrow(NoRootDisk);
    expect(() => selectRootDisk(disks, { serialNumber: 'nope' })).toThrow(/spec.rootDeviceHints/);
    expect(() => selectRootDisk([disks[1]!], undefined)).toThrow(/at least 4 GiB/);
  });
});
