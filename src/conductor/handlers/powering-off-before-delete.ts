// powering-off-before-delete: a deleted host must not keep running a tenant's OS unmanaged,
// so power it off (hard: the host is leaving) and wait until it reads off. If the BMC cannot be
// reached, retry with backoff (status.errorCount counts the attempts; it was reset when the host
// entered this state) and after `deletePowerOffAttempts` failures proceed anyway with a Warning
// event: a dead BMC must not make a host undeletable. The warning tells the admin to check the
// machine's power by hand.
import type { Outcome } from '../outcome.js';
import { outcomeOfError } from './failures.js';
import { bootsFromVirtualMedia, powerTo, step } from './steps.js';
import type { Handler } from './types.js';

export const poweringOffBeforeDelete: Handler = async (ctx) => {
  const { host, config } = ctx;
  if (!host.spec.bmc) return { kind: 'advance', event: 'powered-off', message: 'no BMC: nothing to power off' };
  let outcome: Outcome;
  try {
    const bmc = await ctx.bmc();
    // A host deleted mid-operation may still have the agent's medium inserted: it goes before
    // power does (powering off ends the agent session; deleting.ts ends any left).
    const state = step(host.status);
    if (bootsFromVirtualMedia(ctx, bmc) && !state.mediaEjected) {
      await bmc.driver.media!.eject(bmc.target);
      state.mediaEjected = true;
      return { kind: 'save' };
    }
    outcome = (await powerTo(ctx, bmc, 'off')) ?? { kind: 'advance', event: 'powered-off', message: 'powered off for deletion' };
  } catch (error) {
    outcome = outcomeOfError(error, 'power-management');
  }
  if (outcome.kind !== 'failed' && outcome.kind !== 'retry') return outcome;
  const cause = outcome.kind === 'failed' ? outcome.message : outcome.cause;
  if (host.status.errorCount + 1 >= config.deletePowerOffAttempts) {
    const message = `could not power off before deletion after ${config.deletePowerOffAttempts} attempts (${cause}); deleting anyway: check the machine's power by hand`;
    return { kind: 'advance', event: 'powered-off', message, events: [{ type: 'Warning', reason: 'PowerOffFailed', message }] };
  }
  // The host is leaving: no error state, just back off and try again.
  return { kind: 'retry', cause: `powering off before deletion: ${cause}` };
};
