// externally-provisioned: the host runs an OS Ingot did not write; Ingot only drives power.
// Clearing spec.externallyProvisioned hands the host to the normal lifecycle (inspection),
// as in Metal3.
import { guarded } from './failures.js';
import { reconcilePower } from './steps.js';
import type { Handler } from './types.js';

export const externallyProvisioned: Handler = async (ctx) => {
  if (!ctx.host.spec.externallyProvisioned) return { kind: 'advance', event: 'inspect', message: 'spec.externallyProvisioned cleared' };
  return guarded('power-management', async () => reconcilePower(ctx, await ctx.bmc()));
};
