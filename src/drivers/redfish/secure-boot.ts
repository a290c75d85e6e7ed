// UEFI Secure Boot (Redfish SecureBoot schema): SecureBootEnable is the setting (what the
// next boot will have), reported as `enabled` so set/get converge without a reboot;
// SecureBootCurrentBoot is what the running boot actually has, reported as `currentBoot` for
// the conductor to verify after provisioning that secure boot really took effect.
import type { BmcTarget, SecureBootInterface } from '../driver.js';
import { BmcRefused } from '../driver.js';
import { patchResource } from './patch.js';
import type { RedfishContext } from './redfish-context.js';
import { linkOf, pick, pickString } from './redfish-context.js';

async function secureBootPath(ctx: RedfishContext, target: BmcTarget): Promise<string | undefined> {
  const system = await ctx.client.get(target, await ctx.locator.locate(target), 'reading the system');
  return linkOf(system, 'SecureBoot');
}

export function redfishSecureBoot(ctx: RedfishContext): SecureBootInterface {
  return {
    async get(target) {
      const path = await secureBootPath(ctx, target);
      const resource = path ? await ctx.client.getOptional(target, path) : undefined;
      if (!resource) return { enabled: false, capable: false };
      const current = pickString(resource, 'SecureBootCurrentBoot');
      const setting = pick(resource, 'SecureBootEnable');
      const enabled = typeof setting === 'boolean' ? setting : current === 'Enabled';
      return { enabled, capable: true, ...(current !== undefined ? { currentBoot: current === 'Enabled' } : {}) };
    },
    async set(target, request) {
      const path = await secureBootPath(ctx, target);
      const resource = path ? await ctx.client.getOptional(target, path) : undefined;
      if (!path || !resource) {
        if (!request.enabled) return; // nothing to turn off
        throw new BmcRefused(`host "${target.hostName}": the BMC reports no UEFI Secure Boot support; pick a node type or boot mode without secure boot`);
      }
      if (pick(resource, 'SecureBootEnable') === request.enabled) return;
      await patchResource(ctx, target, path, { SecureBootEnable: request.enabled }, `${request.enabled ? 'enabling' : 'disabling'} secure boot`);
    },
  };
}
