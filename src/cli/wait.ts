// `--wait STATE` for any command: wait for every named host in parallel, report progress,
// and fail (exit 1) naming each host that failed and what to do about it.
import { HostFailedError, waitForHostStates, type IngotClient, type WaitTarget } from '../client/index.js';
import { HOST_STATES, type Host } from '../model/host.js';
import { CliError, explainError } from './cli-error.js';
import { parseDuration } from './duration.js';
import { ProgressReporter } from './progress.js';

export const WAIT_TARGETS: readonly string[] = [...HOST_STATES, 'deleted'];

export function parseWaitTarget(value: string): WaitTarget {
  if (WAIT_TARGETS.includes(value)) return value as WaitTarget;
  throw new CliError(`--wait ${value}: not a host state; use one of ${WAIT_TARGETS.join(', ')}`);
}

export interface WaitFlags {
  timeout?: string;
  /** Extra condition for the target state to count (see WaitOptions.accept). */
  accept?: (host: Host) => boolean;
}

/** Waits for all hosts; resolves when every one reached `target`, throws CliError otherwise. */
export async function waitForHosts(client: IngotClient, names: string[], target: WaitTarget, flags: WaitFlags, out: NodeJS.WriteStream = process.stdout): Promise<void> {
  if (names.length === 0) return;
  const timeoutMs = parseDuration(flags.timeout ?? '30m');
  const progress = new ProgressReporter(out);
  const abort = new AbortController();
  const onSignal = () => abort.abort(new CliError('interrupted while waiting; the hosts carry on without you', 130));
  process.once('SIGINT', onSignal);
  try {
    const results: PromiseSettledResult<unknown>[] = await waitForHostStates(client, names, target, {
      timeoutMs,
      signal: abort.signal,
      onProgress: (host) => progress.update(host),
      ...(flags.accept ? { accept: flags.accept } : {}),
    }).catch((err: unknown) => [{ status: 'rejected' as const, reason: err } satisfies PromiseRejectedResult]);
    if (target === 'deleted') names.forEach((name, i) => results[i]?.status === 'fulfilled' && progress.deleted(name));
    progress.stop();
    const failures = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as unknown);
    if (failures.length === 0) {
      out.write(names.length === 1 ? `host/${names[0]} is ${target}\n` : `all ${names.length} hosts are ${target}\n`);
      return;
    }
    const interrupted = failures.find((f) => f instanceof CliError && f.exitCode === 130);
    if (interrupted) throw interrupted;
    const lines = failures.map((f) => explainError(f));
    const failed = failures.filter((f) => f instanceof HostFailedError).length;
    throw new CliError(lines.join('\n') + (names.length > 1 ? `\n${names.length - failures.length} of ${names.length} hosts reached ${target}${failed ? `, ${failed} failed` : ''}` : ''));
  } finally {
    progress.stop();
    process.removeListener('SIGINT', onSignal);
  }
}
