// deleting: end any agent session (revoking its boot token), then the engine removes the row
// and releases the lease in one go.
import type { Handler } from './types.js';

export const deleting: Handler = async (ctx) => {
  // A host no agent can serve (e.g. redfish without the agent API) never had a session.
  if (ctx.host.spec.bmc && ctx.hasAgent()) await ctx.agent.finish(ctx.host);
  return { kind: 'advance', event: 'deleted', message: 'deleted' };
};
