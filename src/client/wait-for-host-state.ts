// Waits until a host reaches a provisioning state, for `--wait` and for tests. It listens on
// the watch stream for prompt updates and also polls now and then, because a watch can miss
// a change made between our first read and the stream opening, and may not be available at
// all (a proxy that buffers event streams): whichever sees the change first wins.
import type { Host, HostState } from '../model/host.js';
import { ApiError } from './api-error.js';
import type { IngotClient } from './client.js';

export type WaitTarget = HostState | 'deleted';

export interface WaitOptions {
  /** Called whenever the observed state, step or percent changes (and once at the start). */
  onProgress?: (host: Host, previous: Host | undefined) => void;
  /** Give up after this long; default 30 minutes. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** How often to poll besides the watch; default 2000 ms. */
  pollIntervalMs?: number;
  /**
   * An error state seen this early after the start is not yet taken as final: right after a
   * fix is applied (new credentials, say) the conductor has not yet moved the host out of
   * its old error. Default 3000 ms.
   */
  errorGraceMs?: number;
  /**
   * An extra condition for the target to count, e.g. "provisioned WITH the image I just asked
   * for" (a host already provisioned with the old image is in the target state too).
   */
  accept?: (host: Host) => boolean;
}

/** The host went to `error` (or vanished) instead of reaching the target. */
export class HostFailedError extends Error {
  readonly host: Host | undefined;
  readonly hostName: string;
  /** The last state seen before the failure, e.g. 'inspecting'; 'deleted' when it vanished. */
  readonly failedIn: string;
  readonly errorType: string;
  readonly errorMessage: string;

  constructor(init: { hostName: string; host?: Host; failedIn: string; errorType: string; errorMessage: string; message: string }) {
    super(init.message);
    this.name = 'HostFailedError';
    this.hostName = init.hostName;
    this.host = init.host;
    this.failedIn = init.failedIn;
    this.errorType = init.errorType;
    this.errorMessage = init.errorMessage;
  }
}

export class WaitTimeoutError extends Error {
  readonly hostName: string;
  readonly lastState: string | undefined;
  constructor(hostName: string, target: string, timeoutMs: number, lastState: string | undefined) {
    super(`host ${hostName} did not reach ${target} within ${formatMs(timeoutMs)} (last state: ${lastState ?? 'unknown'})`);
    this.name = 'WaitTimeoutError';
    this.hostName = hostName;
    this.lastState = lastState;
  }
}

function formatMs(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  return `${Math.round(ms / 100) / 10}s`;
}

/** Resolves with the host once in `target` (undefined for 'deleted'); rejects with HostFailedError or WaitTimeoutError. */
export async function waitForHostState(client: IngotClient, name: string, target: WaitTarget, options: WaitOptions = {}): Promise<Host | undefined> {
  const [result] = await waitForHostStates(client, [name], target, options);
  if (result!.status === 'rejected') throw result!.reason;
  return result!.value;
}

/**
 * Waits for several hosts at once over ONE watch stream and one poll loop (a watch per host
 * would make every stream carry the whole fleet). Settles when every host has reached the
 * target, failed or timed out; results are in the order of `names`. An aborted `signal`
 * rejects the whole call.
 */
export function waitForHostStates(
  client: IngotClient,
  names: string[],
  target: WaitTarget,
  options: WaitOptions = {},
): Promise<PromiseSettledResult<Host | undefined>[]> {
  const timeoutMs = options.timeoutMs ?? 30 * 60_000;
  const pollMs = options.pollIntervalMs ?? 2000;
  const graceMs = options.errorGraceMs ?? 3000;
  const started = Date.now();
  const stop = new AbortController();
  const signals = options.signal ? AbortSignal.any([stop.signal, options.signal]) : stop.signal;

  interface Tracker {
    name: string;
    last?: Host;
    lastStableState?: string;
    result?: PromiseSettledResult<Host | undefined>;
  }
  const trackers = new Map<string, Tracker>(names.map((n) => [n, { name: n }]));

  return new Promise((resolve, reject) => {
    let finished = false;
    let pollTimer: NodeJS.Timeout | undefined;
    let consecutivePollFailures = 0;

    const end = (err?: unknown) => {
      if (finished) return;
      finished = true;
      clearTimeout(timeout);
      clearTimeout(pollTimer);
      options.signal?.removeEventListener('abort', onAbort);
      stop.abort();
      if (err) reject(err);
      else resolve(names.map((n) => trackers.get(n)!.result!));
    };
    const settle = (t: Tracker, result: PromiseSettledResult<Host | undefined>) => {
      if (t.result || finished) return;
      t.result = result;
      if ([...trackers.values()].every((x) => x.result)) end();
    };
    const fail = (t: Tracker, err: unknown) => settle(t, { status: 'rejected', reason: err });

    const timeout = setTimeout(() => {
      for (const t of trackers.values()) fail(t, new WaitTimeoutError(t.name, target, timeoutMs, t.last?.status?.provisioning?.state));
    }, timeoutMs);
    const onAbort = () => end(options.signal?.reason ?? new Error('aborted'));
    options.signal?.addEventListener('abort', onAbort, { once: true });

    const observe = (host: Host) => {
      const t = trackers.get(host.metadata?.name);
      if (!t || t.result || finished) return;
      // Watch and poll may deliver out of order: never step back to an older version.
      if (t.last && Number(host.metadata.resourceVersion) < Number(t.last.metadata.resourceVersion)) return;
      const prev = t.last;
      t.last = host;
      const state = host.status?.provisioning?.state;
      if (!prev || changed(prev, host)) options.onProgress?.(host, prev);
      if (state !== 'error') t.lastStableState = state;
      if (target !== 'deleted' && state === target && (options.accept?.(host) ?? true)) return settle(t, { status: 'fulfilled', value: host });
      if (state === 'error' && target !== 'error' && Date.now() - started >= graceMs) {
        const errorType = host.status.errorType || 'unknown';
        const errorMessage = host.status.errorMessage || 'no message recorded';
        const failedIn = t.lastStableState ?? 'error';
        fail(t, new HostFailedError({ hostName: t.name, host, failedIn, errorType, errorMessage, message: `host ${t.name} failed in ${failedIn}: ${errorType}: ${errorMessage}` }));
      }
    };

    const gone = (name: string) => {
      const t = trackers.get(name);
      if (!t || t.result) return;
      if (target === 'deleted') return settle(t, { status: 'fulfilled', value: undefined });
      fail(
        t,
        new HostFailedError({
          hostName: name,
          ...(t.last ? { host: t.last } : {}),
          failedIn: 'deleted',
          errorType: 'deleted',
          errorMessage: 'the host was deleted while waiting',
          message: `host ${name} was deleted before it reached ${target}`,
        }),
      );
    };

    const pollOnce = async () => {
      const open = [...trackers.values()].filter((t) => !t.result);
      if (open.length > 10) {
        // One list beats many GETs for big batches; a name missing from it is gone.
        const hosts = await client.hosts.listAll();
        const seen = new Set<string>();
        for (const h of hosts) {
          seen.add(h.metadata.name);
          observe(h);
        }
        for (const t of open) if (!seen.has(t.name)) gone(t.name);
        return;
      }
      for (const t of open) {
        try {
          observe(await client.hosts.get(t.name));
        } catch (err) {
          if (err instanceof ApiError && err.status === 404) gone(t.name);
          else throw err;
        }
      }
    };

    const poll = async () => {
      try {
        await pollOnce();
        consecutivePollFailures = 0;
      } catch (err) {
        // A server restart should not end a long wait; a server gone for good will.
        if (!(err instanceof ApiError && err.isConnectionError && ++consecutivePollFailures < 15)) {
          for (const t of trackers.values()) fail(t, err);
        }
      } finally {
        if (!finished) pollTimer = setTimeout(poll, pollMs);
      }
    };

    const watch = async () => {
      try {
        for await (const ev of client.hosts.watch({ signal: signals })) {
          if (finished) return;
          if (!trackers.has(ev.object?.metadata?.name)) continue;
          if (ev.type === 'DELETED') gone(ev.object.metadata.name);
          else observe(ev.object);
        }
      } catch {
        // the poll carries on alone
      }
    };

    if (names.length === 0) return end();
    void watch();
    void poll();
  });
}

function changed(a: Host, b: Host): boolean {
  return (
    a.status?.provisioning?.state !== b.status?.provisioning?.state ||
    a.status?.progress?.step !== b.status?.progress?.step ||
    a.status?.progress?.percent !== b.status?.progress?.percent ||
    a.status?.waitingFor !== b.status?.waitingFor ||
    a.status?.poweredOn !== b.status?.poweredOn
  );
}
