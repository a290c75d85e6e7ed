import { describe, expect, it } from 'vitest';
import { bootOrderFor, DEFAULT_BOOT_ORDER, nextBootOrder } from './boot-order.js';
import { optionValue, qemuArgs, type QemuLaunch } from './qemu-args.js';
import type { VmHost } from './vm-host.js';
import { buildVmSystem, resolveVmShape } from './vm-definition.js';

const host: VmHost = { qemu: '/usr/bin/qemu-system-x86_64', accel: 'tcg', setpriv: '/usr/bin/setpriv', socat: '/usr/bin/socat', ovmf: { code: '/ovmf/CODE.fd', vars: '/ovmf/VARS.fd' } };

function launch(over: Partial<QemuLaunch> = {}): QemuLaunch {
  return {
    name: 'ingot-lab-node-001',
    uuid: '00000000-0000-5000-8000-000000000001',
    vcpus: 2,
    memoryMiB: 512,
    smbios: { manufacturer: 'QEMU', product: 'Standard PC (Q35 + ICH9, 2009)', serial: 'LAB123', sku: 'VM-2C-512M' },
    firmware: { kind: 'uefi', code: '/ovmf/CODE.fd', vars: '/data/systems/node-001/uefi-vars.fd', secureBoot: false },
    disks: [{ id: 'disk0', file: '/data/systems/node-001/disk-0.img', format: 'raw', serial: 'D0123456789AB' }],
    nics: [{ id: 'nic0', mac: '52:54:00:00:00:00' }],
    order: DEFAULT_BOOT_ORDER,
    consoleLog: '/data/systems/node-001/console.log',
    forwards: [{ guestPort: 7386, hostPort: 7386 }],
    ...over,
  };
}

const valueOf = (args: string[], flag: string) => args.filter((_, i) => args[i - 1] === flag);

describe('qemuArgs', () => {
  it('starts paused with QMP on stdio, the console in a file, and the machine as defined', () => {
    const args = qemuArgs(host, launch());
    expect(args).toContain('-S');
    expect(valueOf(args, '-mon')).toEqual(['chardev=qmp,mode=control']);
    expect(valueOf(args, '-chardev')).toContain('stdio,id=qmp,signal=off');
    expect(valueOf(args, '-chardev')).toContain('file,id=serial0,path=/data/systems/node-001/console.log,append=on');
    expect(valueOf(args, '-machine')).toEqual(['q35,accel=tcg']);
    expect(valueOf(args, '-smp')).toEqual(['2,sockets=1,cores=2,threads=1']);
    expect(valueOf(args, '-m')).toEqual(['512M']);
    expect(valueOf(args, '-smbios')[0]).toContain('serial=LAB123');
    expect(valueOf(args, '-device')).toContain('virtio-net-pci,netdev=nic0-net,id=nic0,mac=52:54:00:00:00:00,speed=1000,duplex=full,bootindex=3');
    expect(JSON.parse(valueOf(args, '-blockdev')[0]!)).toMatchObject({ driver: 'file', filename: '/data/systems/node-001/disk-0.img' });
    expect(valueOf(args, '-drive')).toEqual(['if=pflash,format=raw,unit=0,readonly=on,file=/ovmf/CODE.fd', 'if=pflash,format=raw,unit=1,file=/data/systems/node-001/uefi-vars.fd']);
  });

  it('turns on SMM and secure flash for the Secure Boot firmware, and uses SeaBIOS for legacy boots', () => {
    const secure = qemuArgs(host, launch({ firmware: { kind: 'uefi', code: '/ovmf/SB.fd', vars: '/v.fd', secureBoot: true } }));
    expect(valueOf(secure, '-machine')).toEqual(['q35,accel=tcg,smm=on']);
    expect(valueOf(secure, '-global')).toEqual(['driver=cfi.pflash01,property=secure,value=on']);
    const legacy = qemuArgs(host, launch({ firmware: { kind: 'legacy' } }));
    expect(legacy.some((a) => a.includes('pflash'))).toBe(false);
  });

  it('escapes commas in option values and refuses what cannot be escaped', () => {
    expect(optionValue('a,b')).toBe('a,,b');
    expect(valueOf(qemuArgs(host, launch({ consoleLog: '/d/x,y/console.log' })), '-chardev')).toContain('file,id=serial0,path=/d/x,,y/console.log,append=on');
    expect(() => optionValue('a\nb')).toThrow('cannot be passed');
    expect(() => qemuArgs(host, launch({ nics: [{ id: 'nic0', mac: 'nonsense' }] }))).toThrow('not a MAC');
  });

  it('uses the host CPU with KVM', () => {
    expect(valueOf(qemuArgs({ ...host, accel: 'kvm' }, launch()), '-cpu')).toEqual(['host']);
  });
});

describe('boot order', () => {
  it('puts the override target first and keeps the others bootable', () => {
    expect(bootOrderFor('Cd')).toEqual({ cd: 1, disk: 2, nic: 3 });
    expect(bootOrderFor('Pxe')).toEqual({ nic: 1, disk: 2, cd: 3 });
    expect(bootOrderFor('Hdd')).toEqual(DEFAULT_BOOT_ORDER);
  });

  it('follows the override while it is set, the default after a Once override was used', () => {
    const system = buildVmSystem(0, 1, resolveVmShape());
    system.boot = { target: 'Cd', enabled: 'Once', mode: 'UEFI' };
    expect(nextBootOrder(system)).toEqual(bootOrderFor('Cd'));
    system.boot.enabled = 'Disabled';
    expect(nextBootOrder(system)).toEqual(DEFAULT_BOOT_ORDER);
    system.boot = { target: 'Pxe', enabled: 'Continuous', mode: 'UEFI' };
    expect(nextBootOrder(system)).toEqual(bootOrderFor('Pxe'));
  });
});

describe('VM definition', () => {
  it('describes the VM it runs as the inventory', () => {
    const system = buildVmSystem(2, 3, resolveVmShape({ vcpus: 4, memoryMiB: 2048, diskGiB: 3, nics: 2 }));
    expect(system.vm).toEqual({ vcpus: 4, memoryMiB: 2048, diskFormat: 'raw' });
    expect(system.hardware.processors).toHaveLength(1);
    expect(system.hardware.processors[0]).toMatchObject({ cores: 4, threads: 4 });
    expect(system.hardware.memory.reduce((n, m) => n + m.capacityMiB, 0)).toBe(2048);
    expect(system.hardware.drives).toEqual([expect.objectContaining({ type: 'virtio', sizeBytes: 3 * 1024 ** 3 })]);
    expect(system.hardware.nics.map((n) => n.mac)).toEqual(['52:54:00:00:02:00', '52:54:00:00:02:01']);
  });

  it.each([[{ vcpus: 0 }, '--vm-cpus'], [{ memoryMiB: 64 }, '--vm-memory'], [{ diskGiB: 0 }, '--vm-disk-size'], [{ diskFormat: 'vmdk' as never }, '--vm-disk-format']])('refuses %j', (shape, flag) => {
    expect(() => resolveVmShape(shape)).toThrow(flag);
  });
});
