// Asynchronous operations (DSP0266 "Asynchronous operations"): a 202 Accepted carries a task
// monitor URI in Location. GETting the monitor answers 202 while the task runs, then the
// operation's own response; many BMCs instead answer with the Task resource, whose TaskState
// (Task schema) says Completed, Exception, Killed or Cancelled when it is over.
import type { BmcTarget } from '../driver.js';
import { BmcRefused, BmcUnreachable } from '../driver.js';
import { parseRetryAfter, type RedfishResponse } from './redfish-client.js';
import type { RedfishContext } from './redfish-context.js';
import { redfishMessages, refusedError } from './redfish-errors.js';

const RUNNING = new Set(['New', 'Starting', 'Running', 'Suspended', 'Interrupted', 'Pending', 'Stopping', 'Service']);
const FAILED = new Set(['Exception', 'Killed', 'Cancelled']);

/** If `res` is a 202 with a monitor, waits (bounded) for the task to end; throws BmcRefused if it failed. */
export async function awaitCompletion(ctx: RedfishContext, target: BmcTarget, res: RedfishResponse, what: string): Promise<void> {
  if (res.status !== 202) return;
  const monitor = res.headers['location'] ?? (res.body as { '@odata.id'?: unknown } | undefined)?.['@odata.id'];
  if (typeof monitor !== 'string') return; // accepted, nothing to watch: the caller polls state
  const path = ctx.client.resolveLink(target, monitor);
  const deadline = ctx.tasks.now() + ctx.tasks.timeoutMs;
  let wait = parseRetryAfter(res.headers['retry-after']) ?? ctx.tasks.intervalMs;
  for (;;) {
    if (ctx.tasks.now() + wait > deadline) {
      throw new BmcUnreachable(
        `host "${target.hostName}": ${what}: the BMC task at ${path} was still running after ${Math.round(ctx.tasks.timeoutMs / 1000)} s`,
      );
    }
    await ctx.tasks.sleep(wait);
    const poll = await ctx.client.request(target, { method: 'GET', path });
    wait = parseRetryAfter(poll.headers['retry-after']) ?? ctx.tasks.intervalMs;
    if (poll.status === 202) continue;
    // A monitor may be deleted once the task is over and read (DSP0266); the caller verifies state.
    if (poll.status === 404 || poll.status === 410) return;
    if (poll.status >= 400) throw refusedError(target, 'GET', poll.url, poll.status, poll.body, what);
    const state = (poll.body as { TaskState?: unknown } | undefined)?.TaskState;
    if (typeof state !== 'string' || state === 'Completed') return;
    if (FAILED.has(state)) {
      const messages = redfishMessages(poll.body);
      throw new BmcRefused(
        `host "${target.hostName}": ${what}: the BMC task ended in state ${state}${messages.length ? `: ${messages.join('; ')}` : ''}`,
      );
    }
    if (!RUNNING.has(state)) return; // unknown state: not ours to interpret; the caller reads state back
  }
}

/**
 * POSTs a Redfish action (DSP0266 "POST (action)"). Actions are not idempotent at the HTTP
 * level, so the client resends only when the request never left; 2xx or a finished task is
 * success, anything else a refusal carrying the BMC's messages.
 */
export async function runAction(ctx: RedfishContext, target: BmcTarget, path: string, body: Record<string, unknown>, what: string): Promise<RedfishResponse> {
  const res = await ctx.client.request(target, { method: 'POST', path, body });
  if (res.status < 200 || res.status >= 300) throw refusedError(target, 'POST', res.url, res.status, res.body, what);
  await awaitCompletion(ctx, target, res, what);
  return res;
}
