// Boot override through ComputerSystem.Boot (BootSourceOverrideTarget / Enabled / Mode),
// checked against `BootSourceOverrideTarget@Redfish.AllowableValues` when the BMC lists them.
import type { BmcTarget, BootDevice, BootInterface } from '../driver.js';
import { BmcRefused } from '../driver.js';
import { patchResource } from './patch.js';
import type { RedfishContext } from './redfish-context.js';
import { pick, pickString } from './redfish-context.js';

const TARGETS: Record<BootDevice, string> = { pxe: 'Pxe', cd: 'Cd', hdd: 'Hdd', 'uefi-http': 'UefiHttp' };
const DEVICES = new Map<string, BootDevice>(Object.entries(TARGETS).map(([d, t]) => [t, d as BootDevice]));

export function redfishBoot(ctx: RedfishContext): BootInterface {
  return {
    async setBootDevice(target: BmcTarget, request) {
      const path = await ctx.locator.locate(target);
      const system = await ctx.client.get(target, path, 'reading the boot settings');
      const boot = pick(system, 'Boot') ?? {};
      const wanted = Object.hasOwn(TARGETS, request.device) ? TARGETS[request.device] : undefined;
      if (!wanted) {
        throw new BmcRefused(`host "${target.hostName}": unknown boot device "${String(request.device).slice(0, 40)}"; use one of ${Object.keys(TARGETS).join(', ')}`);
      }
      const allowed = pick(boot, 'BootSourceOverrideTarget@Redfish.AllowableValues');
      if (Array.isArray(allowed) && !allowed.includes(wanted)) {
        throw new BmcRefused(
          `host "${target.hostName}": the BMC cannot boot from ${wanted} (it allows ${allowed.join(', ')}); choose another boot method for this host`,
        );
      }
      const enabled = request.persistent ? 'Continuous' : 'Once';
      const patch: Record<string, string> = { BootSourceOverrideTarget: wanted, BootSourceOverrideEnabled: enabled };
      if (request.mode) {
        const mode = request.mode === 'UEFI' ? 'UEFI' : 'Legacy';
        const modes = pick(boot, 'BootSourceOverrideMode@Redfish.AllowableValues');
        if (Array.isArray(modes) && !modes.includes(mode)) {
          throw new BmcRefused(`host "${target.hostName}": the BMC does not support boot mode ${mode} (it allows ${modes.join(', ')}); fix spec.bootMode`);
        }
        if (pickString(boot, 'BootSourceOverrideMode') !== mode) patch['BootSourceOverrideMode'] = mode;
      }
      const unchanged =
        pickString(boot, 'BootSourceOverrideTarget') === wanted &&
        pickString(boot, 'BootSourceOverrideEnabled') === enabled &&
        patch['BootSourceOverrideMode'] === undefined;
      if (unchanged) return;
      await patchResource(ctx, target, path, { Boot: patch }, `setting the boot device to ${wanted}`);
    },

    async getBootDevice(target) {
      const system = await ctx.client.get(target, await ctx.locator.locate(target), 'reading the boot settings');
      const enabled = pickString(system, 'Boot', 'BootSourceOverrideEnabled');
      const device = DEVICES.get(pickString(system, 'Boot', 'BootSourceOverrideTarget') ?? '');
      if (!device || !enabled || enabled === 'Disabled') return { device: 'none', persistent: false };
      return { device, persistent: enabled === 'Continuous' };
    },
  };
}
