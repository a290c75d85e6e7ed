// deprovisioning: clean what the last tenant left (spec.automatedCleaningMode: metadata by
// default, full, or disabled), end the agent session, reset the BIOS to its baseline, check the
// firmware against the approved inventory, and power off. Secure boot goes back to the
// disabled baseline first, before the cleaning ramdisk boots (secure-boot.ts), whatever the
// cleaning mode. A failed clean is an error
// of type deprovisioning whose retry comes back HERE (error.ts): the host never reaches
// available until a clean succeeds. An admin who fixes the cause (replaces a disk, heals the
// BMC) does nothing else: the next retry after the backoff cleans and the host resumes.
import { guarded } from './failures.js';
import { noAgentMessage } from './no-agent.js';
import { unapprovedFirmware } from './firmware-check.js';
import { resetSecureBoot } from './secure-boot.js';
import { bootAgent, finishAgent, powerTo, runAgentOperation, step, STEP } from './steps.js';
import type { Handler } from './types.js';

export const deprovisioning: Handler = (ctx) =>
  guarded('deprovisioning', async () => {
    const { host } = ctx;
    const mode = host.spec.automatedCleaningMode ?? 'metadata';
    const bmc = await ctx.bmc();
    if (mode !== 'disabled' && !ctx.hasAgent()) {
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
    const secureBootReset = await resetSecureBoot(ctx, bmc);
    if (secureBootReset) return secureBootReset;
    if (mode !== 'disabled') {
      const pending =
        (await bootAgent(ctx, bmc)) ??
        (await runAgentOperation(ctx, {
          errorType: 'deprovisioning',
          progressStep: 'clean',
          request: async () => ({ kind: 'clean', clean: { mode } }),
          // The agent says which method erased which disk; the host's event keeps it.
          onDone: (result) => {
            if (result.message) step(host.status)[STEP.cleanReport] = result.message.slice(0, 2000);
          },
        })) ??
        (await finishAgent(ctx, bmc));
      if (pending) return pending;
      // Settings a tenant changed must not follow the machine to the next one. Staged now, they
      // apply at the next power-on, before anyone else boots it. Recorded so a retry skips it.
      const state = step(host.status);
      if (ctx.config.resetBiosOnClean && bmc.driver.bios && !state.biosReset) {
        await bmc.driver.bios.resetToDefaults(bmc.target);
        state.biosReset = true;
        return { kind: 'save' };
      }
      if (Object.keys(ctx.config.approvedFirmware).length > 0) {
        if (!bmc.driver.firmware) {
          return {
            kind: 'failed',
            errorType: 'deprovisioning',
            message: `the ${bmc.driver.name} driver cannot read firmware versions, so the approved firmware inventory cannot be checked; check this machine by hand`,
          };
        }
        const problems = unapprovedFirmware(await bmc.driver.firmware.list(bmc.target), ctx.config.approvedFirmware);
        if (problems.length > 0) {
          return {
            kind: 'failed',
            errorType: 'deprovisioning',
            message: `firmware is not in the approved inventory: ${problems.join('; ')}. Flash an approved version (or approve this one in the server config) and the next retry finishes cleaning`,
          };
        }
      }
    }
    const powering = await powerTo(ctx, bmc, 'off');
    if (powering) return powering;
    delete host.status.provisioning.image;
    delete host.status.provisioning.secureBoot;
    const report = step(host.status)[STEP.cleanReport];
    return {
      kind: 'advance',
      event: 'deprovisioned',
      message: mode === 'disabled' ? 'cleaning disabled by spec.automatedCleaningMode' : `cleaned (${mode})${typeof report === 'string' ? `: ${report}` : ''}`,
    };
  });
