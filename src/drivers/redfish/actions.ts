// Finding an action's target URI and the values it accepts. DSP0266 "Allowable values":
// either `Param@Redfish.AllowableValues` beside the action, or an ActionInfo resource
// (`@Redfish.ActionInfo`) listing Parameters[].AllowableValues. Neither present means the
// service does not say, and we try the value and let the BMC answer.
import type { BmcTarget } from '../driver.js';
import type { RedfishContext } from './redfish-context.js';
import { pick } from './redfish-context.js';

export interface ActionDescription {
  /** Where to POST. */
  target: string;
  /** Values the parameter accepts; undefined when the BMC does not say. */
  allowed?: string[];
  /** Whether the resource advertises the action at all. */
  advertised: boolean;
}

function strings(v: unknown): string[] | undefined {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : undefined;
}

export async function describeAction(
  ctx: RedfishContext,
  target: BmcTarget,
  resource: Record<string, unknown>,
  resourcePath: string,
  action: string,
  parameter?: string,
): Promise<ActionDescription> {
  const entry = pick(resource, 'Actions', `#${action}`);
  const shortName = action.replace(/^#/, '');
  const fallbackTarget = `${resourcePath.replace(/\/$/, '')}/Actions/${shortName}`;
  if (!entry || typeof entry !== 'object') return { target: fallbackTarget, advertised: false };
  const t = pick(entry, 'target');
  const description: ActionDescription = { target: typeof t === 'string' ? t : fallbackTarget, advertised: true };
  if (!parameter) return description;
  const inline = strings(pick(entry, `${parameter}@Redfish.AllowableValues`));
  if (inline) return { ...description, allowed: inline };
  const infoLink = pick(entry, '@Redfish.ActionInfo');
  if (typeof infoLink === 'string') {
    const info = await ctx.client.getOptional(target, infoLink);
    const params = pick(info, 'Parameters');
    if (Array.isArray(params)) {
      const p = params.find((x) => pick(x, 'Name') === parameter);
      const allowed = strings(pick(p, 'AllowableValues'));
      if (allowed) return { ...description, allowed };
    }
  }
  return description;
}

/** The first of `preferred` the action allows (all are allowed when the BMC does not say). */
export function choose(description: ActionDescription, preferred: string[]): string | undefined {
  if (!description.allowed) return preferred[0];
  return preferred.find((p) => description.allowed!.includes(p));
}
