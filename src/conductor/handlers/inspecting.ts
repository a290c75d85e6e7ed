// inspecting: boot the agent, let it report CPUs, memory, disks, NICs and firmware, store that
// in status.hardware, end the agent session and power the host off again.
import { guarded } from './failures.js';
import { bootAgent, finishAgent, powerTo, runAgentOperation } from './steps.js';
import type { Handler } from './types.js';

export const inspecting: Handler = (ctx) =>
  guarded('inspection', async () => {
    const bmc = await ctx.bmc();
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
      (await finishAgent(ctx)) ??
      (await powerTo(ctx, bmc, 'off')) ?? { kind: 'advance', event: 'inspected', message: 'hardware inventory recorded' }
    );
  });
