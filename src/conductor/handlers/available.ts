// available: ready for a tenant. A spec.image starts provisioning; spec.externallyProvisioned
// adopts the host as it is; otherwise power follows spec.online.
import { guarded } from './failures.js';
import { reconcilePower } from './steps.js';
import type { Handler } from './types.js';

export const available: Handler = async (ctx) => {
  if (ctx.host.spec.externallyProvisioned) return { kind: 'advance', event: 'adopt', message: 'spec.externallyProvisioned set' };
  if (ctx.host.spec.image) return { kind: 'advance', event: 'provision', message: `provisioning ${ctx.host.spec.image.url}` };
  return guarded('power-management', async () => reconcilePower(ctx, await ctx.bmc()));
};
