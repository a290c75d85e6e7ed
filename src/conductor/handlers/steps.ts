// Sub-steps several handlers share: driving power to a state, booting the agent, and running
// one agent operation. Each returns an Outcome while it still has work to do and undefined
// once its part is done, so a handler reads as a list of steps:
//
//   return (await bootAgent(ctx, bmc)) ?? (await runAgentOperation(...)) ?? finish();
//
// Their progress lives in status.stepState (keys below), which the engine clears on every
// state change, so a step restarted after a crash resumes where the dead conductor stopped.
import { AgentUnavailable, type AgentPoll, type AgentStartRequest } from '../agent-port.js';
import type { PowerState } from '../../drivers/driver.js';
import type { ErrorType, HostStatus } from '../../model/host.js';
import type { Outcome } from '../outcome.js';
import type { BmcAccess, HandlerContext } from './types.js';

/** stepState keys; one place so handlers cannot disagree on spelling. */
export const STEP = {
  operationId: 'operationId',
  agentBootAt: 'agentBootRequestedAt',
  /** 'virtual-media' or 'network': how the agent was booted, so finishAgent knows to eject. */
  agentBootVia: 'agentBootVia',
  agentStarted: 'agentStarted',
  agentDone: 'agentDone',
  agentFinished: 'agentFinished',
  softOffAt: 'softPowerOffRequestedAt',
  rebootAt: 'rebootRequestedAt',
  image: 'image',
  /** The agent's account of a finished clean (which method erased which disk). */
  cleanReport: 'cleanReport',
} as const;

export function step(status: HostStatus): Record<string, unknown> {
  status.stepState ??= {};
  return status.stepState;
}

export function bootModeOf(ctx: HandlerContext): 'UEFI' | 'legacy' {
  return ctx.host.spec.bootMode === 'legacy' ? 'legacy' : 'UEFI';
}

/**
 * Asks for `want` until power reads back as `want`. Off is `hard` by default: the agent's
 * ramdisk has nothing to shut down cleanly. Before powering off, the host's agent session (if
 * any) is ended, so its one-boot token dies with the power (DESIGN.md "The agent protocol":
 * tokens are revoked when the operation ends or the host powers off); finish() is idempotent.
 */
export async function powerTo(ctx: HandlerContext, bmc: BmcAccess, want: PowerState, mode: 'soft' | 'hard' = 'hard'): Promise<Outcome | undefined> {
  const status = ctx.host.status;
  const actual = await bmc.driver.power.get(bmc.target);
  if (want === 'off' && (actual !== 'off' || status.poweredOn) && ctx.hasAgent()) await ctx.agent.finish(ctx.host);
  if (actual === want) {
    if (status.poweredOn !== (want === 'on')) {
      status.poweredOn = want === 'on';
      return { kind: 'save' };
    }
    return undefined;
  }
  await bmc.driver.power.set(bmc.target, { state: want, mode });
  return { kind: 'wait', afterMs: ctx.config.powerPollMs };
}

/** Whether this host's agent boots from virtual media (a redfish-virtualmedia address on a driver that has it). */
export function bootsFromVirtualMedia(ctx: HandlerContext, bmc: BmcAccess): boolean {
  return bmc.target.address.virtualMedia && bmc.driver.media !== undefined && ctx.agent.prepareBoot !== undefined;
}

/**
 * Boots the host into the agent, then power on (or a hard reboot if it was already on, since a
 * running OS would not load the agent). Network-boot hosts get a one-time PXE boot.
 * Virtual-media hosts (redfish-virtualmedia) get a fresh agent session whose boot ISO is
 * inserted as virtual CD and booted once (Redfish BootSourceOverrideTarget Cd, Once).
 *
 * The medium's URL carries the session's token, so it is never saved in status; instead the
 * whole boot request is repeated when a conductor died before saving: prepareBoot ends the
 * earlier session (revoking its token, so an agent booted from the old medium stops at its
 * next call), and inserting and booting again converge on one live agent.
 * Done once the request is recorded and power reads on; the agent then needs time to check in
 * (runAgentOperation waits).
 */
export async function bootAgent(ctx: HandlerContext, bmc: BmcAccess): Promise<Outcome | undefined> {
  const state = step(ctx.host.status);
  if (state[STEP.agentBootAt] === undefined) {
    const viaMedia = bootsFromVirtualMedia(ctx, bmc);
    if (viaMedia) {
      const { mediaUrl } = await ctx.agent.prepareBoot!(ctx.host);
      await bmc.driver.media!.insert(bmc.target, { url: mediaUrl });
      await bmc.driver.boot.setBootDevice(bmc.target, { device: 'cd', persistent: false, mode: bootModeOf(ctx) });
    } else {
      await bmc.driver.boot.setBootDevice(bmc.target, { device: 'pxe', persistent: false, mode: bootModeOf(ctx) });
    }
    const power = await bmc.driver.power.get(bmc.target);
    if (power === 'on') await bmc.driver.power.reboot(bmc.target, { mode: 'hard' });
    else await bmc.driver.power.set(bmc.target, { state: 'on', mode: 'hard' });
    state[STEP.agentBootAt] = ctx.clock.now();
    state[STEP.agentBootVia] = viaMedia ? 'virtual-media' : 'network';
    ctx.host.status.poweredOn = true;
    return { kind: 'save' };
  }
  if (state[STEP.agentStarted]) return undefined;
  const power = await bmc.driver.power.get(bmc.target);
  if (power !== 'on') {
    // Still coming up (or the reboot is between its off and on): ask again, it is idempotent.
    await bmc.driver.power.set(bmc.target, { state: 'on', mode: 'hard' });
    return { kind: 'wait', afterMs: ctx.config.powerPollMs };
  }
  return undefined;
}

/**
 * Starts (once) and polls an agent operation. The operation id is generated and SAVED before
 * start() is called, so a conductor restarted mid-step polls the same operation rather than
 * starting a second one (agent-port.ts). `onDone` records the result in status; the step is
 * then marked done and later calls return undefined at once.
 */
export async function runAgentOperation(
  ctx: HandlerContext,
  opts: {
    errorType: ErrorType;
    progressStep: string;
    request: () => Promise<AgentStartRequest>;
    onDone?: (result: Extract<AgentPoll, { state: 'done' }>) => void;
  },
): Promise<Outcome | undefined> {
  const status = ctx.host.status;
  const state = step(status);
  if (state[STEP.agentDone]) return undefined;
  const operationId = state[STEP.operationId];
  if (typeof operationId !== 'string') {
    state[STEP.operationId] = ctx.newOperationId();
    return { kind: 'save' };
  }
  if (!state[STEP.agentStarted]) {
    try {
      await ctx.agent.start(ctx.host, operationId, await opts.request());
    } catch (error) {
      if (!(error instanceof AgentUnavailable)) throw error;
      const bootAt = Number(state[STEP.agentBootAt] ?? ctx.clock.now());
      if (ctx.clock.now() - bootAt > ctx.config.agentBootTimeoutMs) {
        const seconds = Math.round(ctx.config.agentBootTimeoutMs / 1000);
        const check =
          state[STEP.agentBootVia] === 'virtual-media'
            ? 'check that the host boots from the virtual CD (the BMC honours the one-time boot override; no boot order or boot password puts the disk or the network first), that the BMC can fetch the boot medium from the agent API URL (the ISO is served by the agent listener: the BMC network must reach it), and that the booted host reaches the agent API (its console shows the agent\'s log)'
            : 'check that the host network-boots from its boot MAC (boot order, PXE enabled on that NIC) and that it reaches the agent API';
        return {
          kind: 'failed',
          errorType: opts.errorType,
          message: `the agent never checked in: nothing looked up within ${seconds} s of booting the host into the agent; ${check} (${error.message})`,
        };
      }
      return { kind: 'wait', afterMs: ctx.config.agentPollMs };
    }
    state[STEP.agentStarted] = true;
    status.progress = { step: opts.progressStep, percent: 0 };
    return { kind: 'save' };
  }
  const poll = await ctx.agent.poll(ctx.host, operationId);
  switch (poll.state) {
    case 'running': {
      const percent = Math.max(0, Math.min(100, Math.round(poll.percent ?? 0)));
      if (status.progress?.step === opts.progressStep && status.progress.percent === percent) {
        return { kind: 'wait', afterMs: ctx.config.agentPollMs };
      }
      status.progress = { step: opts.progressStep, percent };
      return { kind: 'save' };
    }
    case 'failed':
      return { kind: 'failed', errorType: opts.errorType, message: `${opts.progressStep} failed on the host: ${poll.message}` };
    case 'done':
      opts.onDone?.(poll);
      state[STEP.agentDone] = true;
      delete status.progress;
      return { kind: 'save' };
  }
}

/**
 * Ends the agent session (revokes its boot token) and, for a virtual-media boot, ejects the
 * medium; once (recorded to save calls), each part safe to repeat.
 */
export async function finishAgent(ctx: HandlerContext, bmc?: BmcAccess): Promise<Outcome | undefined> {
  const state = step(ctx.host.status);
  if (state[STEP.agentFinished]) return undefined;
  await ctx.agent.finish(ctx.host);
  if (state[STEP.agentBootVia] === 'virtual-media' && bmc?.driver.media) await bmc.driver.media.eject(bmc.target);
  state[STEP.agentFinished] = true;
  return { kind: 'save' };
}

/**
 * Drives power to spec.online for a resting host. A power-off is first asked softly (the OS may
 * shut down cleanly) and becomes hard after `softOffTimeoutMs`, as Metal3 does. A successful
 * reconcile clears a power-management error left over from a retry.
 */
export async function reconcilePower(ctx: HandlerContext, bmc: BmcAccess, softOffTimeoutMs = 3 * 60_000): Promise<Outcome> {
  const status = ctx.host.status;
  const state = step(status);
  const want: PowerState = ctx.host.spec.online ? 'on' : 'off';
  const actual = await bmc.driver.power.get(bmc.target);
  if (actual === want) {
    // A left-over power-management error, or a count of unreachable retries, ends here: power works.
    const staleErrors = status.errorType === 'power-management' || (status.errorType === '' && status.errorCount > 0);
    const changed = status.poweredOn !== (want === 'on') || staleErrors || state[STEP.softOffAt] !== undefined;
    if (!changed) return { kind: 'wait', afterMs: ctx.config.idleRecheckMs };
    status.poweredOn = want === 'on';
    delete state[STEP.softOffAt];
    if (staleErrors) {
      status.errorType = '';
      status.errorMessage = '';
      status.errorCount = 0;
    }
    return { kind: 'save' };
  }
  if (want === 'on') {
    await bmc.driver.power.set(bmc.target, { state: 'on', mode: 'hard' });
    return { kind: 'wait', afterMs: ctx.config.powerPollMs };
  }
  const softAt = state[STEP.softOffAt];
  if (typeof softAt !== 'number') {
    await bmc.driver.power.set(bmc.target, { state: 'off', mode: 'soft' });
    state[STEP.softOffAt] = ctx.clock.now();
    status.poweredOn = true;
    return { kind: 'save' };
  }
  await bmc.driver.power.set(bmc.target, { state: 'off', mode: ctx.clock.now() - softAt > softOffTimeoutMs ? 'hard' : 'soft' });
  return { kind: 'wait', afterMs: ctx.config.powerPollMs };
}
