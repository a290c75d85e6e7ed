// `ingot apply -f FILE`: create or update every resource in a manifest file with PUT, after
// checking all of them locally, then optionally wait for the hosts. Platform kinds go to
// /api/v1/<plural>/NAME; Claims and ClaimSets to their project's URL (metadata.project, else
// --project / INGOT_PROJECT / the login default); a Secret with metadata.project to that
// project's secrets, without it to the platform's.
import type { Command } from 'commander';
import { ApiError, type IngotClient, type ResourceClient, type ResourceInput } from '../../client/index.js';
import type { Host, HostInput } from '../../model/host.js';
import type { SecretInput } from '../../model/secret.js';
import { CliError } from '../cli-error.js';
import { MANIFEST_KINDS, parseManifests, PROJECT_KINDS, readManifestSource, type Manifest, type ManifestKind } from '../manifests.js';
import { parseOutputFormat, render } from '../output.js';
import { parseWaitTarget, waitForHosts } from '../wait.js';
import type { CommandContext } from '../context.js';

export type ApplyOutcome = 'created' | 'configured' | 'unchanged';

export interface AppliedResource {
  kind: ManifestKind;
  name: string;
  /** The project a project-scoped object went to. */
  project?: string;
  outcome: ApplyOutcome;
  object: unknown;
  /** The server's warnings (soft quotas exceeded), to show on stderr. */
  warnings?: string[];
}

export interface ApplyFlags {
  file?: string;
  wait?: string;
  timeout?: string;
  output?: string;
  /** Project for Claims and ClaimSets without metadata.project. */
  project?: string;
}

/** Applied first to last: what others refer to comes before them (images before node types, projects before their secrets and claims). */
const APPLY_ORDER: Record<ManifestKind, number> = { OSImage: 0, Project: 1, IPPool: 2, NodeType: 3, Secret: 4, Host: 5, ClaimSet: 6, Claim: 7 };

/** `claim/web-1` or `claim/web-1 (project red)`, for messages. */
export function resourceRef(r: { kind: string; name: string; project?: string }): string {
  return `${r.kind.toLowerCase()}/${r.name}${r.project ? ` (project ${r.project})` : ''}`;
}

export function registerApply(program: Command, ctx: CommandContext): void {
  program
    .command('apply')
    .description(`create or update the resources in a YAML/JSON file: ${MANIFEST_KINDS.join(', ')} (all documents are checked before any is sent)`)
    .requiredOption('-f, --filename <file>', 'manifest file, or - for standard input')
    .option('--project <project>', 'project for Claims and ClaimSets without metadata.project (default INGOT_PROJECT, then the login default)')
    .option('--wait <state>', 'wait until every applied host reaches this state (e.g. available, provisioned)')
    .option('--timeout <duration>', 'how long --wait waits', '30m')
    .option('-o, --output <format>', 'how to print the results: table (default), json, yaml')
    .action(ctx.run(async (opts: { filename: string; project?: string; wait?: string; timeout?: string; output?: string }) => {
      await applyCommand(ctx, { file: opts.filename, wait: opts.wait, timeout: opts.timeout, output: opts.output, ...(opts.project !== undefined ? { project: opts.project } : {}) }, MANIFEST_KINDS);
    }));
}

export async function applyCommand(ctx: CommandContext, flags: ApplyFlags, kinds: readonly ManifestKind[]): Promise<void> {
  const format = parseOutputFormat(flags.output);
  const target = flags.wait ? parseWaitTarget(flags.wait) : undefined;
  if (!flags.file) throw new CliError('-f FILE is required: the manifest file to apply, or - for standard input');
  const text = await readManifestSource(flags.file);
  const manifests = parseManifests(text, flags.file === '-' ? '<stdin>' : flags.file, kinds);
  // Resolved before anything is sent, so a missing project fails the whole file up front.
  const needsDefault = manifests.some((m) => PROJECT_KINDS.includes(m.kind) && !m.project);
  const defaultProject = needsDefault ? ctx.project(flags.project) : undefined;
  const client = ctx.client();
  const results = await applyManifests(
    client,
    manifests,
    (r) => {
      for (const w of r.warnings ?? []) ctx.err.write(`warning: ${resourceRef(r)}: ${w}\n`);
      if (format === 'table') ctx.out.write(`${r.kind.toLowerCase()}/${r.name} ${r.outcome}${r.project ? ` in project ${r.project}` : ''}\n`);
    },
    defaultProject,
  );
  if (format !== 'table') {
    ctx.out.write(render({ items: results.map((r) => ({ kind: r.kind, name: r.name, ...(r.project ? { project: r.project } : {}), outcome: r.outcome, ...(r.warnings?.length ? { warnings: r.warnings } : {}) })) }, format, () => ''));
  }
  const hosts = results.filter((r) => r.kind === 'Host').map((r) => r.name);
  if (target) await waitForHosts(client, hosts, target, { timeout: flags.timeout }, ctx.out);
}

/**
 * Applies in dependency order (APPLY_ORDER; file order within a kind); stops at the first
 * refusal. `defaultProject` is where Claims and ClaimSets without metadata.project go.
 */
export async function applyManifests(client: IngotClient, manifests: Manifest[], onResult?: (r: AppliedResource) => void, defaultProject?: string): Promise<AppliedResource[]> {
  const ordered = manifests.map((m, i) => ({ m, i })).sort((a, b) => APPLY_ORDER[a.m.kind] - APPLY_ORDER[b.m.kind] || a.i - b.i).map((x) => x.m);
  const results: AppliedResource[] = [];
  for (const m of ordered) {
    let r: AppliedResource;
    try {
      r = await applyOne(client, m, defaultProject);
    } catch (err) {
      if (err instanceof ApiError && !err.isConnectionError && err.status < 500 && err.status !== 401) {
        const done = results.length ? ` (already applied: ${results.map((x) => resourceRef(x)).join(', ')})` : '';
        const details = err.details.length && !err.details.every((d) => err.message.includes(d.field)) ? ': ' + err.details.map((d) => `${d.field}: ${d.message}`).join('; ') : '';
        const what = err.code === 'INGOT_ERR_QUOTA_EXCEEDED' ? 'was refused by quota' : 'was refused';
        throw new CliError(`${resourceRef({ kind: m.kind, name: m.name, ...(m.project ?? (PROJECT_KINDS.includes(m.kind) ? defaultProject : undefined) ? { project: m.project ?? defaultProject } : {}) })} (document ${m.index}, line ${m.line}) ${what}: ${err.message}${details}${done}`);
      }
      throw err;
    }
    results.push(r);
    onResult?.(r);
  }
  return results;
}

async function applyOne(client: IngotClient, m: Manifest, defaultProject: string | undefined): Promise<AppliedResource> {
  const body = m.body as ResourceInput<unknown>;
  const inProject = (project: string | undefined): string => {
    if (!project) throw new CliError(`${m.kind.toLowerCase()}/${m.name} (document ${m.index}) names no project: set metadata.project or use --project`);
    return project;
  };
  switch (m.kind) {
    case 'Host':
      return applyHost(client, m.body as HostInput);
    case 'Secret':
      return m.project ? applyProjectSecret(client, m.project, m.body as SecretInput) : applySecret(client, m.body as SecretInput);
    case 'OSImage':
      return applyResource(client.osImages, m.kind, body);
    case 'NodeType':
      return applyResource(client.nodeTypes, m.kind, body);
    case 'Project':
      return applyResource(client.projects, m.kind, body);
    case 'IPPool':
      return applyResource(client.ipPools, m.kind, body);
    case 'Claim': {
      const project = inProject(m.project ?? defaultProject);
      return { ...(await applyResource(bindProject(client.claims, project), m.kind, body)), project };
    }
    case 'ClaimSet': {
      const project = inProject(m.project ?? defaultProject);
      return { ...(await applyResource(bindProject(client.claimSets, project), m.kind, body)), project };
    }
  }
}

type AnyResourceClient = Pick<ResourceClient<unknown, ResourceInput<unknown>>, 'get' | 'apply'>;

function bindProject(rc: { get(project: string, name: string): Promise<unknown>; apply(project: string, input: never): Promise<unknown> }, project: string): AnyResourceClient {
  return {
    get: (name) => rc.get(project, name),
    apply: (input) => rc.apply(project, input as never) as ReturnType<AnyResourceClient['apply']>,
  };
}

/** Any spec-and-status kind: unchanged when spec, labels and annotations already match. */
async function applyResource(rc: AnyResourceClient, kind: ManifestKind, input: ResourceInput<unknown>): Promise<AppliedResource> {
  const name = input.metadata.name;
  type Stored = { metadata: { resourceVersion?: string; labels?: Record<string, string>; annotations?: Record<string, string> }; spec?: unknown };
  const current = (await getOrUndefined(() => rc.get(name))) as Stored | undefined;
  if (
    current &&
    canonical(comparableSpec(current.spec)) === canonical(comparableSpec(input.spec)) &&
    canonical(current.metadata.labels ?? {}) === canonical(input.metadata.labels ?? {}) &&
    canonical(current.metadata.annotations ?? {}) === canonical(input.metadata.annotations ?? {})
  ) {
    return { kind, name, outcome: 'unchanged', object: current };
  }
  const { object, created, warnings } = await rc.apply(input as never);
  const after = object as Stored;
  const outcome: ApplyOutcome = created ? 'created' : current && after.metadata.resourceVersion === current.metadata.resourceVersion ? 'unchanged' : 'configured';
  return { kind, name, outcome, object, ...(warnings.length ? { warnings } : {}) };
}

/** The server answers inline user data as "[sealed]"; compare the manifest's the same way. */
function comparableSpec(spec: unknown): unknown {
  if (!spec || typeof spec !== 'object') return spec;
  const s = spec as Record<string, unknown>;
  const out: Record<string, unknown> = { ...s };
  if (typeof s.userData === 'string') out.userData = '[sealed]';
  const template = s.template as { spec?: Record<string, unknown> } | undefined;
  if (template?.spec && typeof template.spec.userData === 'string') out.template = { ...template, spec: { ...template.spec, userData: '[sealed]' } };
  return out;
}

async function applyProjectSecret(client: IngotClient, project: string, input: SecretInput): Promise<AppliedResource> {
  const name = input.metadata.name;
  const current = await getOrUndefined(() => client.projectSecrets.get(project, name));
  const { object, created } = await client.projectSecrets.apply(project, input);
  const outcome: ApplyOutcome = created || !current ? 'created' : object.status?.version === current.status?.version && object.metadata.resourceVersion === current.metadata.resourceVersion ? 'unchanged' : 'configured';
  return { kind: 'Secret', name, project, outcome, object };
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
