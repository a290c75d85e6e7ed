// Power through ComputerSystem.PowerState and the #ComputerSystem.Reset action (Redfish
// ComputerSystem schema). ResetType values are checked against what the BMC allows, since
// vendors differ: some lack On (use ForceOn or PowerCycle), some lack GracefulShutdown.
import type { BmcTarget, PowerInterface, PowerState } from '../driver.js';
import { BmcRefused } from '../driver.js';
import { choose, describeAction } from './actions.js';
import type { RedfishContext } from './redfish-context.js';
import { pickString } from './redfish-context.js';
import { runAction } from './tasks.js';

const RESET = 'ComputerSystem.Reset';

/** PoweringOn counts as off and PoweringOff as on, so a poller waits until the change is done. */
export function toPowerState(redfish: string | undefined): PowerState {
  return redfish === 'On' || redfish === 'PoweringOff' || redfish === 'Paused' ? 'on' : 'off';
}

const PREFERENCES = {
  on: ['On', 'ForceOn', 'PowerCycle'],
  'off-soft': ['GracefulShutdown', 'ForceOff'],
  'off-hard': ['ForceOff'],
  'reboot-soft': ['GracefulRestart', 'ForceRestart', 'PowerCycle'],
  'reboot-hard': ['ForceRestart', 'PowerCycle'],
} as const;

async function reset(ctx: RedfishContext, target: BmcTarget, kind: keyof typeof PREFERENCES, desired?: PowerState): Promise<void> {
  const path = await ctx.locator.locate(target);
  const system = await ctx.client.get(target, path, 'reading the system');
  if (desired && toPowerState(pickString(system, 'PowerState')) === desired) return;
  const action = await describeAction(ctx, target, system, path, RESET, 'ResetType');
  const resetType = choose(action, [...PREFERENCES[kind]]);
  if (!resetType) {
    throw new BmcRefused(
      `host "${target.hostName}": the BMC allows ResetType ${action.allowed!.join(', ') || '(none)'}, none of ${PREFERENCES[kind].join(', ')} needed to ${kind.replace('-', ' ')}`,
    );
  }
  try {
    await runAction(ctx, target, action.target, { ResetType: resetType }, `${RESET} ${resetType}`);
  } catch (err) {
    // Some BMCs answer 409/400 to "On" when already on (a race with another actor): if the
    // system has reached the wanted state, the request is satisfied.
    if (desired && err instanceof BmcRefused) {
      const again = await ctx.client.get(target, path, 'reading the system');
      if (toPowerState(pickString(again, 'PowerState')) === desired) return;
    }
    throw err;
  }
}

export function redfishPower(ctx: RedfishContext): PowerInterface {
  return {
    async get(target) {
      const system = await ctx.client.get(target, await ctx.locator.locate(target), 'reading the power state');
      return toPowerState(pickString(system, 'PowerState'));
    },
    async set(target, request) {
      const kind = request.state === 'on' ? 'on' : request.mode === 'soft' ? 'off-soft' : 'off-hard';
      await reset(ctx, target, kind, request.state);
    },
    async reboot(target, request) {
      const system = await ctx.client.get(target, await ctx.locator.locate(target), 'reading the power state');
      if (toPowerState(pickString(system, 'PowerState')) === 'off') return reset(ctx, target, 'on', 'on');
      await reset(ctx, target, request.mode === 'soft' ? 'reboot-soft' : 'reboot-hard');
    },
  };
}
