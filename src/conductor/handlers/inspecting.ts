// inspecting, per spec.inspection (default: the server's `defaultInspection`):
// - agent: boot the agent, let it report CPUs, memory, disks, NICs and firmware, store that in
//   status.hardware, end the agent session and power the host off again (or, when preparing
//   will clean, leave the agent running for it). A host no agent can serve (no agent API in
//   this server) is inspected out-of-band instead, unless its spec asks for the agent by name,
//   which is then an inspection error.
// - bmc: read the inventory out-of-band through the BMC (no-agent.ts); nothing is booted.
// - disabled: skip; status.hardware stays as it is.
// Either way the capabilities node types select on are derived from the inventory as the step ends.
import { deriveCapabilities } from '../../model/capabilities.js';
import type { Outcome } from '../outcome.js';
import { guarded } from './failures.js';
import { inspectOutOfBand } from './no-agent.js';
import { cleaningMode } from './cleaning.js';
import { bootAgent, finishAgent, powerTo, runAgentOperation, step, STEP } from './steps.js';
import type { Handler, HandlerContext } from './types.js';

export const inspecting: Handler = async (ctx) => withCapabilities(ctx, await inspect(ctx));

function withCapabilities(ctx: HandlerContext, outcome: Outcome): Outcome {
  if (outcome.kind === 'advance' && outcome.event === 'inspected') ctx.host.status.capabilities = deriveCapabilities(ctx.host.status.hardware);
  return outcome;
}

const inspect: Handler = (ctx) =>
  guarded('inspection', async () => {
    const mode = ctx.host.spec.inspection ?? ctx.config.defaultInspection;
    if (mode === 'disabled') return { kind: 'advance', event: 'inspected', message: 'inspection disabled (spec.inspection or the server default)' };
    const bmc = await ctx.bmc();
    if (mode === 'bmc') return inspectOutOfBand(ctx, bmc);
    if (!ctx.hasAgent()) {
      if (ctx.host.spec.inspection === 'agent') {
        return { kind: 'failed', errorType: 'inspection', message: 'spec.inspection is agent but this server has no agent API for this host; configure the agent API or set spec.inspection: bmc' };
      }
      return inspectOutOfBand(ctx, bmc);
    }
    return (
      (await bootAgent(ctx, bmc)) ??
      (await runAgentOperation(ctx, {
        errorType: 'inspection',
        progressStep: 'inspect',
        noAgentHint: 'or, if this BMC cannot boot the agent, set spec.inspection: bmc to read the hardware from the BMC instead',
        request: async () => ({ kind: 'inspect' }),
        onDone: (result) => {
          if (result.inventory) ctx.host.status.hardware = result.inventory;
        },
      })) ??
      keepAgentForCleaning(ctx) ??
      (await finishAgent(ctx, bmc)) ??
      (await powerTo(ctx, bmc, 'off')) ?? { kind: 'advance', event: 'inspected', message: 'hardware inventory recorded' }
    );
  });

/**
 * preparing cleans next (cleaning.ts): the agent that inspected stays up and runs the clean,
 * saving a second boot. Its session is handed over in stepState; preparing ends it.
 */
function keepAgentForCleaning(ctx: HandlerContext): Outcome | undefined {
  if (cleaningMode(ctx) === 'disabled' || ctx.host.metadata.deletionTimestamp) return undefined;
  const state = step(ctx.host.status);
  return {
    kind: 'advance',
    event: 'inspected',
    message: 'hardware inventory recorded; the agent stays up to clean the disks',
    carry: { [STEP.agentBootAt]: ctx.clock.now(), [STEP.agentBootVia]: state[STEP.agentBootVia] },
  };
}
