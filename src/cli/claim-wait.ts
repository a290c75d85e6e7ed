// `--wait` for claims and claim sets: one progress line per change (state, pending reason,
// host bound), then a last line saying how it ended; failures and timeouts become CliErrors
// (explainError adds what to check next).
import { describeClaimSetProgress, describeClaimState, waitForClaim, waitForClaimSet, waitForClaimSetGone, type Claim, type ClaimSetProgress, type IngotClient } from '../client/index.js';
import { CliError } from './cli-error.js';
import { formatElapsed, parseDuration } from './duration.js';

export interface ClaimWaitFlags {
  timeout?: string;
  /** Poll interval; tests keep the default. */
  pollIntervalMs?: number;
}

type Sink = { write(text: string): unknown };

async function withInterrupt<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const abort = new AbortController();
  const onSignal = () => abort.abort(new CliError('interrupted while waiting; the controller carries on without you', 130));
  process.once('SIGINT', onSignal);
  try {
    return await fn(abort.signal);
  } finally {
    process.removeListener('SIGINT', onSignal);
  }
}

/** One line for a change between two observations of a claim (or its first sighting). */
export function claimProgressLine(ref: string, claim: Claim | undefined, previous: Claim | undefined, elapsed: string): string {
  if (!claim) return `${ref}: ${previous ? `${previous.status?.state ?? 'unknown'} -> ` : ''}gone (${elapsed})`;
  const now = describeClaimState(claim);
  if (!previous) return `${ref}: ${now} (${elapsed})`;
  const before = previous.status?.state ?? 'unknown';
  const after = claim.status?.state ?? 'unknown';
  if (before === after) return `${ref}: still ${now} (${elapsed})`;
  return `${ref}: ${before} -> ${now} (${elapsed})`;
}

export async function waitClaim(client: IngotClient, project: string, name: string, target: 'ready' | 'deleted', flags: ClaimWaitFlags, progress: Sink): Promise<Claim | undefined> {
  const timeoutMs = parseDuration(flags.timeout ?? '30m');
  const started = Date.now();
  const ref = `claim/${name}`;
  const claim = await withInterrupt((signal) =>
    waitForClaim(client, project, name, target, {
      timeoutMs,
      signal,
      ...(flags.pollIntervalMs !== undefined ? { pollIntervalMs: flags.pollIntervalMs } : {}),
      onProgress: (c, prev) => progress.write(claimProgressLine(ref, c, prev, formatElapsed(Date.now() - started)) + '\n'),
    }),
  );
  if (target === 'deleted') {
    progress.write(`${ref} is gone (${formatElapsed(Date.now() - started)})\n`);
    return undefined;
  }
  const addresses = (claim?.status?.addresses ?? []).map((a) => a.address).join(', ');
  progress.write(`${ref} is ready${claim?.status?.hostName ? ` on host ${claim.status.hostName}` : ''}${addresses ? ` (addresses ${addresses})` : ''} (${formatElapsed(Date.now() - started)})\n`);
  return claim;
}

export async function waitClaimSet(client: IngotClient, project: string, name: string, flags: ClaimWaitFlags, progress: Sink): Promise<ClaimSetProgress> {
  const timeoutMs = parseDuration(flags.timeout ?? '30m');
  const started = Date.now();
  const ref = `claimset/${name}`;
  const result = await withInterrupt((signal) =>
    waitForClaimSet(client, project, name, {
      timeoutMs,
      signal,
      ...(flags.pollIntervalMs !== undefined ? { pollIntervalMs: flags.pollIntervalMs } : {}),
      onProgress: (p) => progress.write(`${ref}: ${describeClaimSetProgress(p)} (${formatElapsed(Date.now() - started)})\n`),
    }),
  );
  const n = result.set.spec.replicas;
  progress.write(`${ref} has ${n} ready replica${n === 1 ? '' : 's'} and no extra claims (${formatElapsed(Date.now() - started)})\n`);
  return result;
}

/** `claimset delete --wait`: one line per change in the number of claims still releasing. */
export async function waitClaimSetGone(client: IngotClient, project: string, name: string, flags: ClaimWaitFlags, progress: Sink): Promise<void> {
  const timeoutMs = parseDuration(flags.timeout ?? '30m');
  const started = Date.now();
  const ref = `claimset/${name}`;
  await withInterrupt((signal) =>
    waitForClaimSetGone(client, project, name, {
      timeoutMs,
      signal,
      ...(flags.pollIntervalMs !== undefined ? { pollIntervalMs: flags.pollIntervalMs } : {}),
      onProgress: (left) => progress.write(`${ref}: ${left} claim${left === 1 ? '' : 's'} still releasing (${formatElapsed(Date.now() - started)})\n`),
    }),
  );
  progress.write(`${ref} is gone (${formatElapsed(Date.now() - started)})\n`);
}
