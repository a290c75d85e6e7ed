// The QEMU command line of a lab VM, built from its definition. Pure: vm-machine.ts runs it.
//
// - q35 machine, KVM or TCG; SMM on when the Secure Boot firmware build is used (it needs it).
// - UEFI: OVMF code read-only (pflash 0) and the VM's own variable store (pflash 1); Legacy:
//   QEMU's default SeaBIOS.
// - Disks as virtio-blk with the drive's serial; the virtual CD as an AHCI (SATA) CD-ROM,
//   started empty: the medium is inserted over QMP before the CPUs run (paths never pass
//   through QEMU's comma-separated option syntax that way).
// - One virtio NIC per MAC on the restricted user network (guest-network.ts).
// - Serial port 0 appended to the console log; QMP on stdin/stdout; -S (paused) so the lab
//   finishes setting up before the firmware runs.
// - SMBIOS type 1 carries the system's serial number and UUID, so dmidecode in the guest
//   matches what Redfish reports.
// - No -sandbox: QEMU's seccomp filter is inherited by the socat relays it spawns for the
//   forwards, and socat does not work under it (measured with QEMU 7.2 and socat 1.7.4).
import { userNetdev, type PortForward } from './guest-network.js';
import type { BootOrder } from './boot-order.js';
import type { VmHost } from './vm-host.js';

export interface QemuLaunch {
  name: string;
  uuid: string;
  vcpus: number;
  memoryMiB: number;
  smbios: { manufacturer: string; product: string; serial: string; sku: string };
  firmware: { kind: 'uefi'; code: string; vars: string; secureBoot: boolean } | { kind: 'legacy' };
  disks: Array<{ id: string; file: string; format: 'raw' | 'qcow2'; serial: string }>;
  nics: Array<{ id: string; mac: string }>;
  order: BootOrder;
  consoleLog: string;
  forwards: readonly PortForward[];
}

/** QEMU's -option syntax: a comma inside a value is written twice. */
export function optionValue(value: string): string {
  if (/[\0\n\r]/.test(value)) throw new Error(`value ${JSON.stringify(value)} cannot be passed to QEMU`);
  return value.replace(/,/g, ',,');
}

const MAC = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/;
const ID = /^[a-z][a-z0-9-]{0,30}$/;

export function qemuArgs(host: VmHost, l: QemuLaunch): string[] {
  const secure = l.firmware.kind === 'uefi' && l.firmware.secureBoot;
  const args = [
    '-name', optionValue(l.name),
    '-machine', `q35,accel=${host.accel}${secure ? ',smm=on' : ''}`,
    ...(host.accel === 'kvm' ? ['-cpu', 'host'] : []),
    '-smp', `${l.vcpus},sockets=1,cores=${l.vcpus},threads=1`,
    '-m', `${l.memoryMiB}M`,
    '-uuid', l.uuid,
    '-smbios', `type=1,manufacturer=${optionValue(l.smbios.manufacturer)},product=${optionValue(l.smbios.product)},serial=${optionValue(l.smbios.serial)},sku=${optionValue(l.smbios.sku)}`,
    '-no-user-config',
    '-nodefaults',
    '-display', 'none',
    '-msg', 'timestamp=on',
  ];
  if (l.firmware.kind === 'uefi') {
    if (secure) args.push('-global', 'driver=cfi.pflash01,property=secure,value=on');
    args.push('-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${optionValue(l.firmware.code)}`);
    args.push('-drive', `if=pflash,format=raw,unit=1,file=${optionValue(l.firmware.vars)}`);
  }
  for (const d of l.disks) {
    if (!ID.test(d.id)) throw new Error(`disk id ${d.id} is not a QEMU id`);
    // JSON -blockdev: the file name needs no escaping.
    args.push('-blockdev', JSON.stringify({ driver: 'file', filename: d.file, 'node-name': `${d.id}-file`, discard: 'unmap' }));
    args.push('-blockdev', JSON.stringify({ driver: d.format, file: `${d.id}-file`, 'node-name': d.id }));
    const first = d === l.disks[0];
    args.push('-device', `virtio-blk-pci,drive=${d.id},id=${d.id},serial=${optionValue(d.serial.slice(0, 20))}${first ? `,bootindex=${l.order.disk}` : ''}`);
  }
  args.push('-device', `ide-cd,bus=ide.0,id=cd0,bootindex=${l.order.cd}`);
  l.nics.forEach((n, i) => {
    if (!MAC.test(n.mac)) throw new Error(`NIC ${n.id}: ${n.mac} is not a MAC address`);
    if (!ID.test(n.id)) throw new Error(`NIC id ${n.id} is not a QEMU id`);
    args.push('-netdev', userNetdev(`${n.id}-net`, l.forwards, host.socat));
    args.push('-device', `virtio-net-pci,netdev=${n.id}-net,id=${n.id},mac=${n.mac},speed=1000,duplex=full${i === 0 ? `,bootindex=${l.order.nic}` : ''}`);
  });
  args.push('-chardev', `file,id=serial0,path=${optionValue(l.consoleLog)},append=on`, '-serial', 'chardev:serial0');
  args.push('-chardev', 'stdio,id=qmp,signal=off', '-mon', 'chardev=qmp,mode=control');
  args.push('-S');
  return args;
}

/** Device ids in the command line above, for qom-set of bootindex. */
export const BOOT_DEVICE_IDS = { disk: 'disk0', cd: 'cd0', nic: 'nic0' } as const;
