// deleting: end any agent session (revoking its boot token), then the engine removes the row
// and releases the lease in one go.
import type { Handler } from './types.js';

export const deleting: Handler = async (ctx) => {
  if (ctx.host.spec.bmc) await ctx.agent.finish(ctx.host);
  return { kind: 'advance', event: 'deleted', message: 'deleted' };
};
