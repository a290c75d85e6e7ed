// The cleaning a host goes through before anyone is given it: on first enrolment (preparing,
// as Ironic's `provide` runs automated cleaning) and after every tenant (deprovisioning). The
// agent erases the disks (spec.automatedCleaningMode: metadata by default, or full) and
// verifies by reading back; then BIOS settings go back to the baseline and firmware is checked
// against the approved inventory. `disabled` skips it all: the admin says the disks are known
// clean (the host write that set it is in the audit log).
import type { ErrorType } from '../../model/host.js';
import type { Outcome } from '../outcome.js';
import { unapprovedFirmware } from './firmware-check.js';
import { noAgentMessage } from './no-agent.js';
import { bootAgent, finishAgent, runAgentOperation, step, STEP } from './steps.js';
import type { BmcAccess, HandlerContext } from './types.js';

export function cleaningMode(ctx: HandlerContext): 'metadata' | 'full' | 'disabled' {
  return ctx.host.spec.automatedCleaningMode ?? 'metadata';
}

/** A `failed` outcome when cleaning is asked for but no agent can run it on this host. */
export function cannotClean(ctx: HandlerContext, bmc: BmcAccess, errorType: ErrorType): Outcome | undefined {
  const mode = cleaningMode(ctx);
  if (mode !== 'disabled' && !ctx.hasAgent()) {
    return {
      kind: 'failed',
      errorType,
      message: noAgentMessage(
        bmc.driver.name,
        'cleaning',
        `the disks were not erased; erase them another way and set spec.automatedCleaningMode: disabled to return the host to available (spec.automatedCleaningMode is ${mode})`,
      ),
    };
  }
  return undefined;
}

/**
 * Runs the host's cleaning; undefined once done (or disabled), an Outcome while it still has
 * work. A failure is `failed` with `errorType`, so the host stays out of the pool.
 */
export async function cleanHost(ctx: HandlerContext, bmc: BmcAccess, errorType: ErrorType): Promise<Outcome | undefined> {
  const { host } = ctx;
  const mode = cleaningMode(ctx);
  if (mode === 'disabled') return undefined;
  const impossible = cannotClean(ctx, bmc, errorType);
  if (impossible) return impossible;
  const pending =
    (await bootAgent(ctx, bmc)) ??
    (await runAgentOperation(ctx, {
      errorType,
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
        errorType,
        message: `the ${bmc.driver.name} driver cannot read firmware versions, so the approved firmware inventory cannot be checked; check this machine by hand`,
      };
    }
    const problems = unapprovedFirmware(await bmc.driver.firmware.list(bmc.target), ctx.config.approvedFirmware);
    if (problems.length > 0) {
      return {
        kind: 'failed',
        errorType,
        message: `firmware is not in the approved inventory: ${problems.join('; ')}. Flash an approved version (or approve this one in the server config) and the next retry finishes cleaning`,
      };
    }
  }
  return undefined;
}

/** What the host's event says about a finished clean. */
export function cleanedMessage(ctx: HandlerContext): string {
  const mode = cleaningMode(ctx);
  if (mode === 'disabled') return 'cleaning disabled by spec.automatedCleaningMode';
  const report = step(ctx.host.status)[STEP.cleanReport];
  return `cleaned (${mode})${typeof report === 'string' ? `: ${report}` : ''}`;
}
