import { describe, expect, it } from 'vitest';
import { deriveCapabilities } from './capabilities.js';

describe('deriveCapabilities', () => {
  it('summarises secure boot, GPUs, NIC speed and disk kinds', () => {
    expect(
      deriveCapabilities({
        cpu: { arch: 'x86_64', count: 2 },
        secureBootCapable: true,
        gpus: [{ model: 'A100' }, { model: 'L4' }, { model: 'A100' }],
        nics: [
          { name: 'eth0', mac: '52:54:00:00:00:01', speedGbps: 25 },
          { name: 'eth1', mac: '52:54:00:00:00:02', speedGbps: 100 },
          { name: 'eth2', mac: '52:54:00:00:00:03' },
        ],
        storage: [
          { name: '/dev/nvme0n1', sizeBytes: 1e12 },
          { name: '/dev/sda', sizeBytes: 4e12, rotational: true },
          { name: '/dev/sdb', sizeBytes: 1e12, rotational: false },
        ],
      }),
    ).toEqual({
      bootModes: ['UEFI', 'UEFISecureBoot', 'legacy'],
      secureBoot: true,
      cpuArch: 'x86_64',
      gpus: [
        { model: 'A100', count: 2 },
        { model: 'L4', count: 1 },
      ],
      maxNicSpeedGbps: 100,
      diskKinds: ['nvme', 'ssd', 'hdd'],
    });
  });

  it('says no secure boot and nothing else when the inventory is empty', () => {
    expect(deriveCapabilities(undefined)).toEqual({ bootModes: ['UEFI', 'legacy'], secureBoot: false, gpus: [], diskKinds: [] });
  });
});
