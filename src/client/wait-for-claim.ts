// Waits for a claim to become ready or to be gone, and for a claim set to settle at its
// replicas, for `--wait` and for tests. Claims change rarely and slowly (a host is cleaned and
// provisioned), so a plain poll is enough; every change of state, reason or host is reported.
import { CLAIM_SET_LABEL } from '../model/claim.js';
import { ApiError } from './api-error.js';
import type { IngotClient } from './client.js';
import type { Claim, ClaimSet } from './tenancy-types.js';

export type ClaimWaitTarget = 'ready' | 'deleted';

export interface ClaimWaitOptions {
  /** Give up after this long; default 30 minutes. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** How often to read the claim; default 1000 ms. */
  pollIntervalMs?: number;
  /** Called with the first observation and whenever state, reason or host changes; undefined once gone. */
  onProgress?: (claim: Claim | undefined, previous: Claim | undefined) => void;
}

/** The claim went to `failed` (or vanished) instead of becoming ready. */
export class ClaimFailedError extends Error {
  readonly project: string;
  readonly claimName: string;
  readonly reason: string;
  constructor(project: string, claimName: string, reason: string, message?: string) {
    super(message ?? `claim ${claimName} failed: ${reason || 'no reason given'}`);
    this.name = 'ClaimFailedError';
    this.project = project;
    this.claimName = claimName;
    this.reason = reason;
  }
}

/** The wait ran out; says what the object was doing when it did. */
export class ClaimWaitTimeoutError extends Error {
  readonly kind: 'claim' | 'claimset';
  readonly project: string;
  readonly objectName: string;
  readonly target: string;
  /** e.g. `pending (no available host matches node type "metal.small")`, or `2/3 ready`. */
  readonly lastSeen: string;
  constructor(init: { kind: 'claim' | 'claimset'; project: string; name: string; target: string; timeoutMs: number; lastSeen: string }) {
    super(`${init.kind} ${init.name} did not ${init.target === 'deleted' ? 'go away' : `become ${init.target}`} within ${formatMs(init.timeoutMs)}; it is ${init.lastSeen}`);
    this.name = 'ClaimWaitTimeoutError';
    this.kind = init.kind;
    this.project = init.project;
    this.objectName = init.name;
    this.target = init.target;
    this.lastSeen = init.lastSeen;
  }
}

export function formatMs(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  return `${Math.round(ms / 100) / 10}s`;
}

/** `pending (reason)`, `ready on host r1-n07`, `releasing (deletion asked)`: a claim in a few words. */
export function describeClaimState(claim: Claim): string {
  const s = claim.status ?? ({} as Claim['status']);
  let text = s.state ?? 'unknown';
  if (claim.metadata.deletionTimestamp && text !== 'releasing') text += ' (deletion asked)';
  if (s.hostName) text += ` on host ${s.hostName}`;
  if (s.reason && (s.state === 'pending' || s.state === 'failed' || s.state === 'releasing')) text += ` (${s.reason})`;
  return text;
}

const signature = (c: Claim | undefined) => (c ? `${c.status?.state}|${c.status?.reason ?? ''}|${c.status?.hostName ?? ''}|${c.metadata.deletionTimestamp ?? ''}` : 'gone');

async function getOrGone<T>(fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return undefined;
    throw err;
  }
}

/** Resolves with the ready claim (or undefined once deleted); rejects with ClaimFailedError or ClaimWaitTimeoutError. */
export async function waitForClaim(client: IngotClient, project: string, name: string, target: ClaimWaitTarget, options: ClaimWaitOptions = {}): Promise<Claim | undefined> {
  const timeoutMs = options.timeoutMs ?? 30 * 60_000;
  const deadline = Date.now() + timeoutMs;
  const interval = options.pollIntervalMs ?? 1000;
  let last: Claim | undefined;
  let seen = false;
  for (;;) {
    options.signal?.throwIfAborted();
    const claim = await getOrGone(() => client.claims.get(project, name));
    if (!seen || signature(claim) !== signature(last)) options.onProgress?.(claim, last);
    const previous = last;
    seen = true;
    last = claim;
    if (!claim) {
      if (target === 'deleted') return undefined;
      throw new ClaimFailedError(project, name, 'it was deleted', `claim ${name} was deleted while waiting for it to become ready${previous ? ` (last seen ${describeClaimState(previous)})` : ''}`);
    }
    if (target === 'ready') {
      if (claim.status?.state === 'ready') return claim;
      if (claim.status?.state === 'failed') throw new ClaimFailedError(project, name, claim.status.reason ?? '');
      if (claim.metadata.deletionTimestamp) throw new ClaimFailedError(project, name, 'its deletion was asked for', `claim ${name} is being deleted; it will not become ready`);
    }
    if (Date.now() >= deadline) throw new ClaimWaitTimeoutError({ kind: 'claim', project, name, target, timeoutMs, lastSeen: describeClaimState(claim) });
    await sleep(Math.min(interval, Math.max(0, deadline - Date.now())), options.signal);
  }
}

export interface ClaimSetProgress {
  set: ClaimSet;
  /** The claims carrying the set's label (ingot.dev/claimset=NAME), deleting ones included. */
  claims: Claim[];
}

export interface ClaimSetWaitOptions extends Omit<ClaimWaitOptions, 'onProgress'> {
  onProgress?: (progress: ClaimSetProgress, previous: ClaimSetProgress | undefined) => void;
}

/** `2/3 ready, 1 pending (no available host …)`: a set in a few words. */
export function describeClaimSetProgress(p: ClaimSetProgress): string {
  const want = p.set.spec.replicas;
  const counts = new Map<string, number>();
  for (const c of p.claims) {
    const key = c.metadata.deletionTimestamp ? 'releasing' : (c.status?.state ?? 'unknown');
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  const ready = counts.get('ready') ?? 0;
  const parts = [`${ready}/${want} ready`];
  for (const [state, n] of [...counts.entries()].sort()) if (state !== 'ready') parts.push(`${n} ${state}`);
  const pendingReason = p.claims.find((c) => c.status?.state === 'pending' && c.status.reason)?.status.reason;
  if (pendingReason) parts.push(`pending because: ${pendingReason}`);
  if (p.claims.length > want) parts.push(`${p.claims.length - want} extra claim${p.claims.length - want > 1 ? 's' : ''} still to go`);
  return parts.join(', ');
}

/** True when the set holds exactly spec.replicas claims, all ready (the status agreeing). */
export function claimSetSettled(p: ClaimSetProgress): boolean {
  const want = p.set.spec.replicas;
  return p.claims.length === want && p.claims.every((c) => c.status?.state === 'ready' && !c.metadata.deletionTimestamp) && (p.set.status?.ready ?? 0) === want;
}

/** Waits until the set is settled (claimSetSettled); a failed claim of the set rejects with ClaimFailedError. */
export async function waitForClaimSet(client: IngotClient, project: string, name: string, options: ClaimSetWaitOptions = {}): Promise<ClaimSetProgress> {
  const timeoutMs = options.timeoutMs ?? 30 * 60_000;
  const deadline = Date.now() + timeoutMs;
  const interval = options.pollIntervalMs ?? 1000;
  let last: ClaimSetProgress | undefined;
  for (;;) {
    options.signal?.throwIfAborted();
    const set = await client.claimSets.get(project, name);
    const claims = await client.claims.listAll(project, { labelSelector: `${CLAIM_SET_LABEL}=${name}` });
    const now: ClaimSetProgress = { set, claims };
    if (!last || describeClaimSetProgress(now) !== describeClaimSetProgress(last)) options.onProgress?.(now, last);
    last = now;
    if (claimSetSettled(now)) return now;
    const failed = claims.find((c) => c.status?.state === 'failed' && !c.metadata.deletionTimestamp);
    if (failed) throw new ClaimFailedError(project, failed.metadata.name, failed.status.reason ?? '', `claim ${failed.metadata.name} of claim set ${name} failed: ${failed.status.reason || 'no reason given'}`);
    if (Date.now() >= deadline) {
      throw new ClaimWaitTimeoutError({ kind: 'claimset', project, name, target: `settled at ${set.spec.replicas} ready replica${set.spec.replicas === 1 ? '' : 's'}`, timeoutMs, lastSeen: describeClaimSetProgress(now) });
    }
    await sleep(Math.min(interval, Math.max(0, deadline - Date.now())), options.signal);
  }
}

/**
 * Waits until a deleted claim set is gone: its claims released (each host cleaned) and then the
 * set itself removed. Reports the number of claims left whenever it changes.
 */
export async function waitForClaimSetGone(
  client: IngotClient,
  project: string,
  name: string,
  options: Omit<ClaimWaitOptions, 'onProgress'> & { onProgress?: (claimsLeft: number) => void } = {},
): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 30 * 60_000;
  const deadline = Date.now() + timeoutMs;
  const interval = options.pollIntervalMs ?? 1000;
  let last: number | undefined;
  for (;;) {
    options.signal?.throwIfAborted();
    const set = await getOrGone(() => client.claimSets.get(project, name));
    if (set === undefined) return;
    const left = (await client.claims.listAll(project, { labelSelector: `${CLAIM_SET_LABEL}=${name}` })).length;
    if (left !== last) options.onProgress?.(left);
    last = left;
    if (Date.now() >= deadline) {
      throw new ClaimWaitTimeoutError({ kind: 'claimset', project, name, target: 'deleted', timeoutMs, lastSeen: `being deleted with ${left} claim${left === 1 ? '' : 's'} still releasing` });
    }
    await sleep(Math.min(interval, Math.max(0, deadline - Date.now())), options.signal);
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      if (signal?.aborted) reject(signal.reason);
      else resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
