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
  /** The one outstanding power request: { want, mode, at, escalated } (see drivePower). */
  powerRequest: 'powerRequest',
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

/** The power change this host has asked its BMC for and not yet seen happen. */
interface PowerRequest {
  want: PowerState;
  mode: 'soft' | 'hard';
  /** When the current action (the first, or the escalation) was sent. */
  at: number;
  escalated: boolean;
}

function powerRequestOf(state: Record<string, unknown>): PowerRequest | undefined {
  const r = state[STEP.powerRequest] as Partial<PowerRequest> | undefined;
  if (!r || (r.want !== 'on' && r.want !== 'off') || (r.mode !== 'soft' && r.mode !== 'hard') || typeof r.at !== 'number') return undefined;
  return { want: r.want, mode: r.mode, at: r.at, escalated: r.escalated === true };
}

/** Records a power action just sent, so drivePower waits for it rather than sending another. */
export function recordPowerRequest(ctx: HandlerContext, want: PowerState, mode: 'soft' | 'hard'): void {
  step(ctx.host.status)[STEP.powerRequest] = { want, mode, at: ctx.clock.now(), escalated: false } satisfies PowerRequest;
}

/**
 * Honest power: ONE action per requested change, then read the state back until it matches.
 * Returns undefined once power reads `want`, else an outcome (save after sending, wait while
 * polling, failed at the end). The action is never re-sent on each poll (a BMC that accepted
 * a Reset and is slow, or ignores it, would otherwise get a storm of them). A soft request
 * that has not taken effect after `softPowerOffTimeoutMs` is escalated once to a hard one
 * (GracefulShutdown, then ForceOff, as Metal3 and Ironic do); a hard request that has not
 * taken effect after `powerChangeTimeoutMs` is a power-management error naming the power
 * state the BMC last reported. The request lives in stepState, so a restarted conductor waits
 * for the same action rather than sending a second.
 */
export async function drivePower(ctx: HandlerContext, bmc: BmcAccess, want: PowerState, mode: 'soft' | 'hard'): Promise<Outcome | undefined> {
  const state = step(ctx.host.status);
  const actual = await bmc.driver.power.get(bmc.target);
  const request = powerRequestOf(state);
  if (actual === want) {
    if (request) {
      delete state[STEP.powerRequest];
      return { kind: 'save' };
    }
    return undefined;
  }
  if (!request || request.want !== want) {
    await bmc.driver.power.set(bmc.target, { state: want, mode });
    recordPowerRequest(ctx, want, mode);
    return { kind: 'save' };
  }
  const waited = ctx.clock.now() - request.at;
  const seconds = (ms: number) => `${Math.round(ms / 1000)} s`;
  if (request.mode === 'soft' && !request.escalated) {
    if (waited < ctx.config.softPowerOffTimeoutMs) return { kind: 'wait', afterMs: ctx.config.powerPollMs };
    await bmc.driver.power.set(bmc.target, { state: want, mode: 'hard' });
    state[STEP.powerRequest] = { want, mode: 'hard', at: ctx.clock.now(), escalated: true } satisfies PowerRequest;
    const message = `a soft power-${want} did not take effect within ${seconds(waited)} (power still reads ${actual}); sent a hard power-${want} once`;
    ctx.log.warn(message, { host: ctx.host.metadata.name });
    return { kind: 'save', events: [{ type: 'Warning', reason: 'PowerEscalated', message }] };
  }
  if (waited < ctx.config.powerChangeTimeoutMs) return { kind: 'wait', afterMs: ctx.config.powerPollMs };
  delete state[STEP.powerRequest];
  return {
    kind: 'failed',
    errorType: 'power-management',
    message:
      `the BMC accepted a ${request.escalated ? 'soft, then a hard,' : request.mode} power-${want} request but the system still reports power ${actual} ` +
      `${seconds(waited)} after the ${request.escalated ? 'hard one' : 'request'}; check the BMC and the machine (Ingot retries after a backoff)`,
  };
}

/**
 * Drives power to `want` (drivePower). Off is `hard` by default: the agent's ramdisk has
 * nothing to shut down cleanly. Before powering off, the host's agent session (if any) is
 * ended, so its one-boot token dies with the power (DESIGN.md "The agent protocol": tokens are
 * revoked when the operation ends or the host powers off); finish() is idempotent.
 */
export async function powerTo(ctx: HandlerContext, bmc: BmcAccess, want: PowerState, mode: 'soft' | 'hard' = 'hard'): Promise<Outcome | undefined> {
  const status = ctx.host.status;
  if (want === 'off' && ctx.hasAgent()) {
    const actual = await bmc.driver.power.get(bmc.target);
    if (actual !== 'off' || status.poweredOn) await ctx.agent.finish(ctx.host);
  }
  const pending = await drivePower(ctx, bmc, want, mode);
  if (pending) return pending;
  if (status.poweredOn !== (want === 'on')) {
    status.poweredOn = want === 'on';
    return { kind: 'save' };
  }
  return undefined;
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
    recordPowerRequest(ctx, 'on', 'hard');
    state[STEP.agentBootAt] = ctx.clock.now();
    state[STEP.agentBootVia] = viaMedia ? 'virtual-media' : 'network';
    ctx.host.status.poweredOn = true;
    return { kind: 'save' };
  }
  if (state[STEP.agentStarted]) return undefined;
  // Still coming up (or the reboot is between its off and on): wait for the request already
  // sent; drivePower sends nothing new until its timeout says the BMC did not act.
  return drivePower(ctx, bmc, 'on', 'hard');
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
    /** Added to the "agent did not check in" failure: what else the admin can do. */
    noAgentHint?: string;
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
          message: `the agent never checked in: nothing looked up within ${seconds} s of booting the host into the agent; ${check}${opts.noAgentHint ? `; ${opts.noAgentHint}` : ''} (${error.message})`,
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
      const message = poll.message?.slice(0, 200);
      if (status.progress?.step === opts.progressStep && status.progress.percent === percent && status.progress.message === message) {
        return { kind: 'wait', afterMs: ctx.config.agentPollMs };
      }
      status.progress = { step: opts.progressStep, percent, ...(message ? { message } : {}) };
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
 * shut down cleanly) and escalated once to a hard one (drivePower). A successful reconcile
 * clears a power-management error left over from a retry.
 */
export async function reconcilePower(ctx: HandlerContext, bmc: BmcAccess): Promise<Outcome> {
  const status = ctx.host.status;
  const want: PowerState = ctx.host.spec.online ? 'on' : 'off';
  const pending = await drivePower(ctx, bmc, want, want === 'on' ? 'hard' : 'soft');
  if (pending) {
    if (pending.kind === 'save' && want === 'off') status.poweredOn = true;
    return pending;
  }
  // A left-over power-management error, or a count of unreachable retries, ends here: power works.
  const staleErrors = status.errorType === 'power-management' || (status.errorType === '' && status.errorCount > 0);
  const changed = status.poweredOn !== (want === 'on') || staleErrors;
  if (!changed) return { kind: 'wait', afterMs: ctx.config.idleRecheckMs };
  status.poweredOn = want === 'on';
  if (staleErrors) {
    status.errorType = '';
    status.errorMessage = '';
    status.errorCount = 0;
  }
  return { kind: 'save' };
}
