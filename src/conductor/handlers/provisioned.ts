// provisioned: the host runs the image Ingot wrote. Removing spec.image deprovisions it;
// changing it deprovisions first (cleaning what the old image left) and then, from available,
// provisions the new one. Otherwise power follows spec.online.
import { isDeepStrictEqual } from 'node:util';
import { guarded } from './failures.js';
import { reconcilePower } from './steps.js';
import type { Handler } from './types.js';

export const provisioned: Handler = async (ctx) => {
  const { spec, status } = ctx.host;
  if (!spec.image) return { kind: 'advance', event: 'deprovision', message: 'spec.image removed' };
  if (status.provisioning.image && !isDeepStrictEqual(spec.image, status.provisioning.image)) {
    return { kind: 'advance', event: 'deprovision', message: `spec.image changed to ${spec.image.url}: cleaning before provisioning it` };
  }
  return guarded('power-management', async () => reconcilePower(ctx, await ctx.bmc()));
};
