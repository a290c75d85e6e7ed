// deprovisioning: clean what the last tenant left (spec.automatedCleaningMode: metadata by
// default, full, or disabled), end the agent session and power off. A failed clean is an error
// of type deprovisioning whose retry comes back HERE (error.ts): the host never reaches
// available until a clean succeeds. An admin who fixes the cause (replaces a disk, heals the
// BMC) does nothing else: the next retry after the backoff cleans and the host resumes.
import { guarded } from './failures.js';
import { noAgentMessage } from './no-agent.js';
import { bootAgent, finishAgent, powerTo, runAgentOperation } from './steps.js';
import type { Handler } from './types.js';

export const deprovisioning: Handler = (ctx) =>
  guarded('deprovisioning', async () => {
    const { host } = ctx;
    const mode = host.spec.automatedCleaningMode ?? 'metadata';
    const bmc = await ctx.bmc();
    if (mode !== 'disabled') {
      if (!ctx.hasAgent()) {
        return {
          kind: 'failed',
          errorType: 'deprovisioning',
          message: noAgentMessage(
            bmc.driver.name,
            'cleaning',
            `the disks were not erased; erase them another way and set spec.automatedCleaningMode: disabled to return the host to available (spec.automatedCleaningMode is ${mode})`,
          ),
        };
      }
      const pending =
        (await bootAgent(ctx, bmc)) ??
        (await runAgentOperation(ctx, {
          errorType: 'deprovisioning',
          progressStep: 'clean',
          request: async () => ({ kind: 'clean', clean: { mode } }),
        })) ??
        (await finishAgent(ctx, bmc));
      if (pending) return pending;
    }
    const powering = await powerTo(ctx, bmc, 'off');
    if (powering) return powering;
    delete host.status.provisioning.image;
    return { kind: 'advance', event: 'deprovisioned', message: mode === 'disabled' ? 'cleaning disabled by spec.automatedCleaningMode' : `cleaned (${mode})` };
  });
