// Firmware inventory (Redfish UpdateService.FirmwareInventory: SoftwareInventory members).
import type { FirmwareComponent, FirmwareInterface } from '../driver.js';
import { getMembers } from './collections.js';
import type { RedfishContext } from './redfish-context.js';
import { linkOf, pickString } from './redfish-context.js';

export function redfishFirmware(ctx: RedfishContext): FirmwareInterface {
  return {
    async list(target) {
      const root = await ctx.client.get(target, '/redfish/v1', 'reading the service root');
      const updateService = linkOf(root, 'UpdateService');
      if (!updateService) return [];
      const service = await ctx.client.getOptional(target, updateService);
      const inventory = linkOf(service, 'FirmwareInventory');
      if (!inventory) return [];
      const components: FirmwareComponent[] = [];
      for (const item of await getMembers(ctx.client, target, inventory, 256)) {
        const id = pickString(item, 'Id') ?? pickString(item, '@odata.id') ?? '';
        components.push({ id, name: pickString(item, 'Name') ?? id, version: pickString(item, 'Version') ?? '' });
      }
      return components;
    },
  };
}
