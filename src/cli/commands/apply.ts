// `ingot apply -f FILE`: create or update every resource in a manifest file with PUT, after
// checking all of them locally, then optionally wait for the hosts.
import type { Command } from 'commander';
import { ApiError, type IngotClient } from '../../client/index.js';
import type { Host, HostInput } from '../../model/host.js';
import type { SecretInput } from '../../model/secret.js';
import { CliError } from '../cli-error.js';
import { parseManifests, readManifestSource, type Manifest, type ManifestKind } from '../manifests.js';
import { parseOutputFormat, render } from '../output.js';
import { parseWaitTarget, waitForHosts } from '../wait.js';
import type { CommandContext } from '../context.js';

export type ApplyOutcome = 'created' | 'configured' | 'unchanged';

export interface AppliedResource {
  kind: ManifestKind;
  name: string;
  outcome: ApplyOutcome;
  object: unknown;
}

export interface ApplyFlags {
  file?: string;
  wait?: string;
  timeout?: string;
  output?: string;
}

export function registerApply(program: Command, ctx: CommandContext): void {
  program
    .command('apply')
    .description('create or update the Hosts and Secrets in a YAML/JSON file (all documents are checked before any is sent)')
    .requiredOption('-f, --filename <file>', 'manifest file, or - for standard input')
    .option('--wait <state>', 'wait until every applied host reaches this state (e.g. available, provisioned)')
    .option('--timeout <duration>', 'how long --wait waits', '30m')
    .option('-o, --output <format>', 'how to print the results: table (default), json, yaml')
    .action(ctx.run(async (opts: { filename: string; wait?: string; timeout?: string; output?: string }) => {
      await applyCommand(ctx, { file: opts.filename, wait: opts.wait, timeout: opts.timeout, output: opts.output }, ['Host', 'Secret']);
    }));
}

export async function applyCommand(ctx: CommandContext, flags: ApplyFlags, kinds: readonly ManifestKind[]): Promise<void> {
  const format = parseOutputFormat(flags.output);
  const target = flags.wait ? parseWaitTarget(flags.wait) : undefined;
  if (!flags.file) throw new CliError('-f FILE is required: the manifest file to apply, or - for standard input');
  const text = await readManifestSource(flags.file);
  const manifests = parseManifests(text, flags.file === '-' ? '<stdin>' : flags.file, kinds);
  const client = ctx.client();
  const results = await applyManifests(client, manifests, (r) => {
    if (format === 'table') ctx.out.write(`${r.kind.toLowerCase()}/${r.name} ${r.outcome}\n`);
  });
  if (format !== 'table') ctx.out.write(render({ items: results.map((r) => ({ kind: r.kind, name: r.name, outcome: r.outcome })) }, format, () => ''));
  const hosts = results.filter((r) => r.kind === 'Host').map((r) => r.name);
  if (target) await waitForHosts(client, hosts, target, { timeout: flags.timeout }, ctx.out);
}

/** Applies in order, Secrets first (hosts refer to them); stops at the first refusal. */
export async function applyManifests(client: IngotClient, manifests: Manifest[], onResult?: (r: AppliedResource) => void): Promise<AppliedResource[]> {
  const ordered = [...manifests.filter((m) => m.kind === 'Secret'), ...manifests.filter((m) => m.kind !== 'Secret')];
  const results: AppliedResource[] = [];
  for (const m of ordered) {
    let r: AppliedResource;
    try {
      r = m.kind === 'Host' ? await applyHost(client, m.body as HostInput) : await applySecret(client, m.body as SecretInput);
    } catch (err) {
      if (err instanceof ApiError && !err.isConnectionError && err.status < 500 && err.status !== 401) {
        const done = results.length ? ` (already applied: ${results.map((x) => `${x.kind.toLowerCase()}/${x.name}`).join(', ')})` : '';
        const details = err.details.length && !err.details.every((d) => err.message.includes(d.field)) ? ': ' + err.details.map((d) => `${d.field}: ${d.message}`).join('; ') : '';
        throw new CliError(`${m.kind.toLowerCase()}/${m.name} (document ${m.index}, line ${m.line}) was refused: ${err.message}${details}${done}`);
      }
      throw err;
    }
    results.push(r);
    onResult?.(r);
  }
  return results;
}

async function getOrUndefined<T>(fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return undefined;
    throw err;
  }
}

async function applyHost(client: IngotClient, input: HostInput): Promise<AppliedResource> {
  const name = input.metadata.name;
  const current = await getOrUndefined(() => client.hosts.get(name));
  if (current && sameHost(current, input)) return { kind: 'Host', name, outcome: 'unchanged', object: current };
  const { object, created } = await client.hosts.apply(input);
  const outcome: ApplyOutcome = created ? 'created' : current && object.metadata.resourceVersion === current.metadata.resourceVersion ? 'unchanged' : 'configured';
  return { kind: 'Host', name, outcome, object };
}

async function applySecret(client: IngotClient, input: SecretInput): Promise<AppliedResource> {
  const name = input.metadata.name;
  // Values are write-only, so "unchanged" can only be told by the server keeping the version.
  const current = await getOrUndefined(() => client.secrets.get(name));
  const { object, created } = await client.secrets.apply(input);
  const outcome: ApplyOutcome = created || !current ? 'created' : object.status?.version === current.status?.version && object.metadata.resourceVersion === current.metadata.resourceVersion ? 'unchanged' : 'configured';
  return { kind: 'Secret', name, outcome, object };
}

function sameHost(current: Host, input: HostInput): boolean {
  return (
    canonical(current.spec) === canonical(input.spec) &&
    canonical(current.metadata.labels ?? {}) === canonical(input.metadata.labels ?? {}) &&
    canonical(current.metadata.annotations ?? {}) === canonical(input.metadata.annotations ?? {})
  );
}

/** JSON with sorted keys, so key order in a YAML file does not count as a change. */
export function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v,
  );
}
