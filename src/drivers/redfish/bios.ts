// BIOS attributes (Redfish Bios schema). Changes go to the settings object named by
// `@Redfish.Settings.SettingsObject` (DSP0266 "Settings resource"), applied by the BMC at the
// next reset; `/Bios/Settings` is the conventional fallback. #Bios.ResetBios restores defaults.
import type { BiosInterface, BmcTarget } from '../driver.js';
import { BmcRefused } from '../driver.js';
import { describeAction } from './actions.js';
import { patchResource } from './patch.js';
import type { RedfishContext } from './redfish-context.js';
import { linkOf, pick, pickString } from './redfish-context.js';
import { runAction } from './tasks.js';

type Attributes = Record<string, string | number | boolean>;
const MAX_ATTRIBUTES = 4096;

async function readBios(ctx: RedfishContext, target: BmcTarget): Promise<{ path: string; bios: Record<string, unknown> }> {
  const system = await ctx.client.get(target, await ctx.locator.locate(target), 'reading the system');
  const path = linkOf(system, 'Bios');
  if (!path) throw new BmcRefused(`host "${target.hostName}": the BMC exposes no BIOS settings (no Bios link on the system)`);
  return { path, bios: await ctx.client.get(target, path, 'reading BIOS settings') };
}

function attributesOf(resource: unknown): Attributes {
  const out: Attributes = {};
  const attrs = pick(resource, 'Attributes');
  if (!attrs || typeof attrs !== 'object') return out;
  for (const [k, v] of Object.entries(attrs).slice(0, MAX_ATTRIBUTES)) {
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out[k] = v;
  }
  return out;
}

export function redfishBios(ctx: RedfishContext): BiosInterface {
  return {
    async get(target) {
      return attributesOf((await readBios(ctx, target)).bios);
    },
    async apply(target, settings) {
      const { path, bios } = await readBios(ctx, target);
      const current = attributesOf(bios);
      const unknown = Object.keys(settings).filter((k) => !(k in current));
      if (unknown.length && Object.keys(current).length) {
        throw new BmcRefused(`host "${target.hostName}": the BIOS has no attribute ${unknown.slice(0, 5).join(', ')}; check the names against \`bios get\``);
      }
      const settingsPath = pickString(bios, '@Redfish.Settings', 'SettingsObject', '@odata.id') ?? `${path.replace(/\/$/, '')}/Settings`;
      const pending = attributesOf(await ctx.client.getOptional(target, settingsPath));
      const changes = Object.fromEntries(
        Object.entries(settings).filter(([k, v]) => (k in pending ? pending[k] !== v : current[k] !== v)),
      );
      if (Object.keys(changes).length === 0) return;
      await patchResource(ctx, target, settingsPath, { Attributes: changes }, 'staging BIOS settings');
    },
    async resetToDefaults(target) {
      const { path, bios } = await readBios(ctx, target);
      const action = await describeAction(ctx, target, bios, path, 'Bios.ResetBios');
      await runAction(ctx, target, action.target, {}, 'resetting BIOS settings to defaults');
    },
  };
}
