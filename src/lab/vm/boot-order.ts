// Redfish boot override -> the VM's boot order. OVMF (and SeaBIOS) boot devices in the order of
// QEMU's `bootindex` properties, which QEMU hands the firmware through fw_cfg ("bootorder") at
// every machine reset. The lab sets the indexes when it starts QEMU, and changes them on a
// running VM with qom-set before a reset (QEMU rebuilds the fw_cfg file at reset, so a change
// takes effect exactly at the next reset and not before).
import type { BootTarget, SystemState } from '../lab-model.js';

/** bootindex per device; lower boots first. */
export interface BootOrder {
  disk: number;
  cd: number;
  nic: number;
}

/** With no override the machine boots its disk, then the CD, then the network, like a server from the factory. */
export const DEFAULT_BOOT_ORDER: BootOrder = { disk: 1, cd: 2, nic: 3 };

/**
 * The order for a boot toward `target`. BiosSetup has no VM counterpart (OVMF's setup menu
 * needs a keyboard at the console): it boots as the default order does.
 */
export function bootOrderFor(target: BootTarget): BootOrder {
  switch (target) {
    case 'Cd':
      return { cd: 1, disk: 2, nic: 3 };
    case 'Pxe':
    case 'UefiHttp':
      return { nic: 1, disk: 2, cd: 3 };
    case 'Hdd':
    case 'None':
    case 'BiosSetup':
      return DEFAULT_BOOT_ORDER;
  }
}

/**
 * The order of the machine's next boot, however it comes (a BMC reset or the guest's own
 * reboot): the override while one is set (Once or Continuous), else the default. A Once
 * override is consumed by the boot that uses it (LabFleet.boot), after which this is the
 * order again for the boots after.
 */
export function nextBootOrder(system: SystemState): BootOrder {
  return system.boot.enabled === 'Disabled' ? DEFAULT_BOOT_ORDER : bootOrderFor(system.boot.target);
}

export function sameOrder(a: BootOrder, b: BootOrder): boolean {
  return a.disk === b.disk && a.cd === b.cd && a.nic === b.nic;
}
