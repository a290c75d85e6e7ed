// inspecting: boot the agent, let it report CPUs, memory, disks, NICs and firmware, store that
// in status.hardware, end the agent session and power the host off again. A host no agent can
// serve is inspected out-of-band through its BMC instead (no-agent.ts). Either way the
// capabilities node types select on are derived from the inventory as the step ends.
import { deriveCapabilities } from '../../model/capabilities.js';
import type { Outcome } from '../outcome.js';
import { guarded } from './failures.js';
import { inspectOutOfBand } from './no-agent.js';
import { bootAgent, finishAgent, powerTo, runAgentOperation } from './steps.js';
import type { Handler, HandlerContext } from './types.js';

export const inspecting: Handler = async (ctx) => withCapabilities(ctx, await inspect(ctx));

function withCapabilities(ctx: HandlerContext, outcome: Outcome): Outcome {
  if (outcome.kind === 'advance' && outcome.event === 'inspected') ctx.host.status.capabilities = deriveCapabilities(ctx.host.status.hardware);
  return outcome;
}

const inspect: Handler = (ctx) =>
  guarded('inspection', async () => {
    const bmc = await ctx.bmc();
    if (!ctx.hasAgent()) return inspectOutOfBand(ctx, bmc);
    return (
      (await bootAgent(ctx, bmc)) ??
      (await runAgentOperation(ctx, {
        errorType: 'inspection',
        progressStep: 'inspect',
        request: async () => ({ kind: 'inspect' }),
        onDone: (result) => {
          if (result.inventory) ctx.host.status.hardware = result.inventory;
        },
      })) ??
      (await finishAgent(ctx, bmc)) ??
      (await powerTo(ctx, bmc, 'off')) ?? { kind: 'advance', event: 'inspected', message: 'hardware inventory recorded' }
    );
  });
