// Virtual media (Redfish VirtualMedia schema). The collection hangs off the System in newer
// schemas (ComputerSystem.VirtualMedia, 2021.2+) and off the Manager in older ones, reached via
// Links.ManagedBy. The slot used is the first whose MediaTypes has CD or DVD. Insert/eject
// use the #VirtualMedia.InsertMedia / EjectMedia actions, or a PATCH of Image/Inserted on BMCs
// that predate them.
import type { BmcTarget, VirtualMediaInterface } from '../driver.js';
import { BmcRefused } from '../driver.js';
import { describeAction } from './actions.js';
import { getMembers } from './collections.js';
import { patchResource } from './patch.js';
import type { RedfishContext } from './redfish-context.js';
import { linkOf, pick, pickString } from './redfish-context.js';
import { runAction } from './tasks.js';

const MAX_URL_LENGTH = 4096;

async function findCdSlot(ctx: RedfishContext, target: BmcTarget): Promise<{ path: string; slot: Record<string, unknown> }> {
  const systemPath = await ctx.locator.locate(target);
  const system = await ctx.client.get(target, systemPath, 'reading the system');
  const collections: string[] = [];
  const direct = linkOf(system, 'VirtualMedia');
  if (direct) collections.push(direct);
  const managers = pick(system, 'Links', 'ManagedBy');
  if (Array.isArray(managers)) {
    for (const m of managers.slice(0, 4)) {
      const managerPath = pickString(m, '@odata.id');
      if (!managerPath) continue;
      const manager = await ctx.client.getOptional(target, managerPath);
      const link = linkOf(manager, 'VirtualMedia');
      if (link) collections.push(link);
    }
  }
  for (const collection of collections) {
    for (const slot of await getMembers(ctx.client, target, collection, 32)) {
      const types = pick(slot, 'MediaTypes');
      if (Array.isArray(types) && types.some((t) => t === 'CD' || t === 'DVD')) {
        return { path: pickString(slot, '@odata.id') ?? collection, slot };
      }
    }
  }
  throw new BmcRefused(
    `host "${target.hostName}": the BMC offers no virtual CD/DVD (no VirtualMedia slot with MediaTypes CD or DVD); use a redfish:// address to boot from the network instead`,
  );
}

async function eject(ctx: RedfishContext, target: BmcTarget, path: string, slot: Record<string, unknown>): Promise<void> {
  const action = pick(slot, 'Actions', '#VirtualMedia.EjectMedia');
  if (action) {
    const actionTarget = pickString(action, 'target') ?? `${path}/Actions/VirtualMedia.EjectMedia`;
    await runAction(ctx, target, actionTarget, {}, 'ejecting virtual media');
    return;
  }
  await patchResource(ctx, target, path, { Image: null, Inserted: false }, 'ejecting virtual media');
}

export function redfishVirtualMedia(ctx: RedfishContext): VirtualMediaInterface {
  return {
    async insert(target, request) {
      if (!/^https?:\/\//.test(request.url) || request.url.length > MAX_URL_LENGTH) {
        throw new BmcRefused(`host "${target.hostName}": virtual media needs an http(s) URL shorter than ${MAX_URL_LENGTH} characters`);
      }
      const { path, slot } = await findCdSlot(ctx, target);
      const inserted = pick(slot, 'Inserted') === true || (pickString(slot, 'Image') ?? '') !== '';
      if (inserted && pickString(slot, 'Image') === request.url && pick(slot, 'Inserted') !== false) return;
      if (inserted) await eject(ctx, target, path, slot);
      const action = await describeAction(ctx, target, slot, path, 'VirtualMedia.InsertMedia', 'TransferProtocolType');
      if (action.advertised) {
        const body: Record<string, unknown> = { Image: request.url, Inserted: true, WriteProtected: true };
        // Only BMCs that list TransferProtocolType get it: others may reject unknown parameters.
        if (action.allowed) {
          const protocol = request.url.startsWith('https:') ? 'HTTPS' : 'HTTP';
          if (!action.allowed.includes(protocol)) {
            throw new BmcRefused(`host "${target.hostName}": the BMC cannot fetch virtual media over ${protocol} (it allows ${action.allowed.join(', ')}); serve the image another way`);
          }
          body['TransferProtocolType'] = protocol;
        }
        await runAction(ctx, target, action.target, body, 'inserting virtual media');
        return;
      }
      await patchResource(ctx, target, path, { Image: request.url, Inserted: true }, 'inserting virtual media');
    },

    async eject(target) {
      const { path, slot } = await findCdSlot(ctx, target);
      const inserted = pick(slot, 'Inserted') === true || (pickString(slot, 'Image') ?? '') !== '';
      if (!inserted) return;
      await eject(ctx, target, path, slot);
    },
  };
}
