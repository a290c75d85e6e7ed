// The on-host agent's main loop (DESIGN.md "The agent protocol"): look itself up, heartbeat in
// the background, long-poll for commands, run them one at a time, report progress and results.
// Nothing listens on the host. Server errors and unreachable servers are retried with capped
// exponential backoff (a restarting server is survived); a refused token (401) means the
// session is over (finish() revoked it, or it expired) and the agent stops. A command naming
// another host is never acted on.
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request, type Dispatcher } from 'undici';
import { ImageRefused } from '../images/image-refused.js';
import type { BootConfig, LookupResponse, WireCommand } from '../model/agent-protocol.js';
import { cleanDisks } from './clean.js';
import { deployImage, type DeployOptions } from './deploy.js';
import type { MachineAccess } from './machine.js';

export interface AgentLog {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
}

export interface RunAgentOptions {
  bootConfig: BootConfig;
  machine: MachineAccess;
  log: AgentLog;
  signal?: AbortSignal;
  /** Backoff after a failed call: starts here, doubles, capped (defaults 1 s and 60 s). */
  backoff?: { initialMs: number; maxMs: number };
  /** Long-poll wait asked of the server (default: what lookup says). */
  commandWaitSeconds?: number;
  minRootDiskBytes?: number;
  conversion?: DeployOptions['conversion'];
}

export type AgentExit = { reason: 'session-ended' | 'aborted' | 'refused'; message: string };

class Refused extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export async function runAgent(opts: RunAgentOptions): Promise<AgentExit> {
  const { bootConfig, machine, log } = opts;
  const base = bootConfig.apiUrl.replace(/\/+$/, '');
  const dispatcher: Dispatcher | undefined = bootConfig.caPem && base.startsWith('https:') ? new Agent({ connect: { ca: bootConfig.caPem } }) : undefined;
  const initial = opts.backoff?.initialMs ?? 1000;
  const cap = opts.backoff?.maxMs ?? 60_000;
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  const seen = new Set<string>();

  /** One call; 401/403/404/409 become Refused (not retried), others throw to be retried. */
  async function call(method: 'GET' | 'POST', path: string, body?: unknown): Promise<any> {
    const res = await request(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${bootConfig.token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      ...(dispatcher ? { dispatcher } : {}),
      signal: stop.signal,
      headersTimeout: 120_000,
    });
    const text = await res.body.text();
    if (res.statusCode >= 200 && res.statusCode < 300) return text ? JSON.parse(text) : {};
    let message = `HTTP ${res.statusCode}`;
    try {
      message = (JSON.parse(text) as { message?: string }).message ?? message;
    } catch {
      // not JSON
    }
    if ([400, 401, 403, 404, 409, 413, 422].includes(res.statusCode)) throw new Refused(res.statusCode, message);
    throw new Error(message);
  }

  /** Retries `fn` on server errors and network failures until it succeeds, is refused, or we stop. */
  async function retrying<T>(what: string, fn: () => Promise<T>): Promise<T> {
    let delay = initial;
    for (;;) {
      try {
        return await fn();
      } catch (err) {
        if (err instanceof Refused || stop.signal.aborted) throw err;
        log.warn(`${what} failed, retrying in ${delay} ms`, { error: (err as Error).message });
        await sleep(delay * (0.75 + Math.random() * 0.5), undefined, { signal: stop.signal }).catch(() => {});
        if (stop.signal.aborted) throw err;
        delay = Math.min(cap, delay * 2);
      }
    }
  }

  const report = (commandId: string, state: 'running' | 'done' | 'failed', extra: Record<string, unknown> = {}) =>
    retrying('reporting a result', () => call('POST', '/agent/v1/results', { commandId, state, ...extra }));

  async function runCommand(command: WireCommand): Promise<void> {
    await report(command.id, 'running', { percent: 0, message: `${command.kind} started` });
    let lastSent = 0;
    let lastMessage = '';
    // Every new step is reported (operators watch them in `host show`); within a step, every 5 %.
    const progress = (percent: number, message: string) => {
      const p = Math.floor(percent);
      if (p - lastSent < 5 && p !== 100 && message === lastMessage) return;
      lastSent = p;
      lastMessage = message;
      void report(command.id, 'running', { percent: p, message: message.slice(0, 1000) }).catch(() => {});
    };
    try {
      if (command.kind === 'inspect') {
        await report(command.id, 'done', { inventory: await machine.inventory(), message: 'inspected' });
      } else if (command.kind === 'deploy') {
        const result = await deployImage({
          machine,
          deploy: command.deploy,
          ...(bootConfig.caPem ? { caPem: bootConfig.caPem } : {}),
          imageAuth: { urlPrefix: new URL(`${base}/agent/v1/images/`).href, token: bootConfig.token, commandId: command.id },
          onProgress: progress,
          signal: stop.signal,
          ...(opts.minRootDiskBytes !== undefined ? { minRootDiskBytes: opts.minRootDiskBytes } : {}),
          ...(opts.conversion ? { conversion: opts.conversion } : {}),
        });
        await report(command.id, 'done', { rootDevice: result.rootDevice, message: `wrote the ${result.format} image to ${result.rootDevice}` });
      } else if (command.kind === 'clean') {
        const result = await cleanDisks(machine, { mode: command.clean.mode, onProgress: progress, signal: stop.signal });
        await report(command.id, 'done', { message: `${command.clean.mode} clean done: ${result.methods.join('; ')}` });
      } else {
        const unknown = command as { id: string; kind: string };
        await report(unknown.id, 'failed', { message: `unknown command kind ${unknown.kind}` });
      }
    } catch (err) {
      if (err instanceof Refused) throw err;
      const message = err instanceof ImageRefused ? `${err.reason}: ${err.message}` : (err as Error).message;
      log.warn(`${command.kind} failed`, { commandId: command.id, error: message });
      await report(command.id, 'failed', { message: message.slice(0, 4000) });
    }
  }

  let heartbeat: Promise<void> | undefined;
  try {
    const macs = ((await machine.inventory()).nics ?? []).map((n) => n.mac);
    const inventory = await machine.inventory();
    const lookup = (await retrying('lookup', () => call('POST', '/agent/v1/lookup', { hostUid: bootConfig.hostUid, bootId: bootConfig.bootId, macs, inventory }))) as LookupResponse;
    log.info('looked up', { hostName: lookup.hostName });
    const wait = opts.commandWaitSeconds ?? lookup.commandWaitSeconds;
    heartbeat = (async () => {
      while (!stop.signal.aborted) {
        await sleep(lookup.heartbeatIntervalMs, undefined, { signal: stop.signal }).catch(() => {});
        if (stop.signal.aborted) return;
        try {
          await call('POST', '/agent/v1/heartbeat', { bootId: bootConfig.bootId });
        } catch (err) {
          if (err instanceof Refused && err.status === 401) {
            log.warn('the server refused this boot\'s token on a heartbeat (session ended or token revoked); the agent stops', { status: err.status, error: err.message });
            stop.abort();
          } else log.warn('heartbeat failed', { error: (err as Error).message });
        }
      }
    })();

    while (!stop.signal.aborted) {
      const { command } = (await retrying('polling for commands', () => call('GET', `/agent/v1/commands?wait=${wait}`))) as { command: WireCommand | null };
      if (!command) continue;
      if (command.hostUid !== bootConfig.hostUid) {
        log.warn('ignoring a command for another host', { commandId: command.id });
        continue;
      }
      if (seen.has(command.id)) continue;
      seen.add(command.id);
      log.info('running command', { commandId: command.id, kind: command.kind });
      await runCommand(command);
    }
    return opts.signal?.aborted ? { reason: 'aborted', message: 'stopped' } : { reason: 'session-ended', message: 'the agent session ended' };
  } catch (err) {
    if (err instanceof Refused) {
      // Not retried: a 401 is the server saying this boot's token is revoked or expired (the
      // session ended); other refusals would fail the same way again.
      if (err.status === 401) log.warn('the server refused this boot\'s token (session ended or token revoked); the agent stops', { status: err.status, error: err.message });
      else log.warn('the server refused a call; the agent stops', { status: err.status, error: err.message });
      return err.status === 401 ? { reason: 'session-ended', message: err.message } : { reason: 'refused', message: err.message };
    }
    if (stop.signal.aborted) return { reason: opts.signal?.aborted ? 'aborted' : 'session-ended', message: 'stopped' };
    throw err;
  } finally {
    stop.abort();
    opts.signal?.removeEventListener('abort', onAbort);
    await heartbeat;
    await dispatcher?.close();
  }
}
