// Reading manifests for `ingot apply`: one or many YAML (or JSON) documents. Everything is
// parsed and checked here before anything is sent, so a mistake in document 3 never leaves
// documents 1 and 2 applied: a file is applied whole or not at all (as far as validation can
// tell; the server may still refuse what only it can judge).
import { readFileSync, statSync } from 'node:fs';
import { LineCounter, parseAllDocuments, type Document } from 'yaml';
import { Type, type TSchema } from 'typebox';
import { Compile } from 'typebox/compile';
import { ClaimSetSpec } from '../model/claim-set.js';
import { ClaimSpec, NODE_TYPE_NAME_PATTERN, NodeTypeName } from '../model/claim.js';
import { API_VERSION, DNS_LABEL, InputMetadata, Name } from '../model/envelope.js';
import { HostInput } from '../model/host.js';
import { IpPoolSpec } from '../model/ip-pool.js';
import { NodeTypeSpec } from '../model/node-type.js';
import { OSImageSpec } from '../model/os-image.js';
import { ProjectSpec } from '../model/project.js';
import { SecretInput } from '../model/secret.js';
import type { ResourceInput } from '../client/tenancy-types.js';
import { CliError } from './cli-error.js';

export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
export const MAX_DOCUMENTS = 1000;

export const MANIFEST_KINDS = ['Host', 'Secret', 'OSImage', 'NodeType', 'Project', 'IPPool', 'Claim', 'ClaimSet'] as const;
export type ManifestKind = (typeof MANIFEST_KINDS)[number];
/** Kinds that live in a project (/api/v1/projects/P/…): they take metadata.project or the default project. */
export const PROJECT_KINDS: readonly ManifestKind[] = ['Claim', 'ClaimSet'];
/** Kinds that live either on the platform or in a project, by metadata.project (no default applies). */
export const EITHER_SCOPE_KINDS: readonly ManifestKind[] = ['Secret'];

export interface Manifest {
  kind: ManifestKind;
  name: string;
  /** metadata.project as written (project kinds without it go to the default project). */
  project?: string;
  /** The object to send (Secret `data` already decoded into `stringData`). */
  body: HostInput | SecretInput | ResourceInput<unknown>;
  /** 1-based position in the file, and the line it starts on, for messages. */
  index: number;
  line: number;
}

/** The body the shared resource routes accept (src/server/routes/resource-routes.ts `Input`). */
function resourceInput(kind: string, spec: TSchema, name: TSchema = Name): TSchema {
  return Type.Object(
    {
      apiVersion: Type.Optional(Type.Literal(API_VERSION)),
      kind: Type.Optional(Type.Literal(kind)),
      metadata: Type.Object({ ...InputMetadata.properties, name }, { additionalProperties: false }),
      spec,
      status: Type.Optional(Type.Unknown()),
    },
    { additionalProperties: false },
  );
}

const schemas: Record<ManifestKind, TSchema> = {
  Host: HostInput,
  Secret: SecretInput,
  OSImage: resourceInput('OSImage', OSImageSpec),
  NodeType: resourceInput('NodeType', NodeTypeSpec, NodeTypeName),
  Project: resourceInput('Project', ProjectSpec),
  IPPool: resourceInput('IPPool', IpPoolSpec),
  Claim: resourceInput('Claim', ClaimSpec),
  ClaimSet: resourceInput('ClaimSet', ClaimSetSpec),
};
const validators = Object.fromEntries(Object.entries(schemas).map(([k, v]) => [k, Compile(v)])) as unknown as Record<ManifestKind, ReturnType<typeof Compile>>;
const NODE_TYPE_NAME = new RegExp(NODE_TYPE_NAME_PATTERN);

/** Reads a file (or standard input for '-') with a size bound. */
export async function readManifestSource(file: string): Promise<string> {
  if (file === '-') {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of process.stdin) {
      size += (chunk as Buffer).byteLength;
      if (size > MAX_MANIFEST_BYTES) throw new CliError(`standard input is larger than ${MAX_MANIFEST_BYTES} bytes; split the manifests into several files`);
      chunks.push(chunk as Buffer);
    }
    return Buffer.concat(chunks).toString('utf8');
  }
  let size: number;
  try {
    size = statSync(file).size;
  } catch (err) {
    throw new CliError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}; check the path given to -f`);
  }
  if (size > MAX_MANIFEST_BYTES) throw new CliError(`${file} is larger than ${MAX_MANIFEST_BYTES} bytes; split the manifests into several files`);
  return readFileSync(file, 'utf8');
}

/** Parses and validates every document; throws one CliError listing every problem found. */
export function parseManifests(text: string, source: string, allowedKinds: readonly ManifestKind[] = MANIFEST_KINDS): Manifest[] {
  const lineCounter = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (!Array.isArray(docs)) {
    // parseAllDocuments returns an EmptyStream for empty input
    throw new CliError(`${source} contains no documents; nothing was applied`);
  }
  const problems: string[] = [];
  for (const doc of docs) {
    for (const e of doc.errors) {
      const pos = lineCounter.linePos(e.pos[0]);
      problems.push(`${source}: invalid YAML at line ${pos.line}, column ${pos.col}: ${firstLine(e.message)}`);
    }
  }
  if (problems.length > 0) throw new CliError(problems.join('\n') + '\nnothing was applied; fix the YAML and run the command again');

  const manifests: Manifest[] = [];
  const seen = new Map<string, number>();
  let index = 0;
  for (const doc of docs) {
    const value = doc.toJS({ maxAliasCount: 100 }) as unknown;
    if (doc.contents === null || value === null || value === undefined) continue; // an empty document (e.g. a trailing ---)
    index++;
    if (index > MAX_DOCUMENTS) {
      problems.push(`${source}: more than ${MAX_DOCUMENTS} documents; split the file`);
      break;
    }
    const line = lineCounter.linePos(doc.contents?.range?.[0] ?? 0).line;
    const where = `${source}: document ${index} (line ${line})`;
    const result = checkDocument(value, doc, lineCounter, allowedKinds);
    if (typeof result === 'string') {
      problems.push(`${where}: ${result}`);
      continue;
    }
    if (result.problems.length > 0) {
      problems.push(...result.problems.map((p) => `${where}, ${result.kind.toLowerCase()}/${result.name}: ${p}`));
      continue;
    }
    const key = `${result.kind}/${result.project ? `${result.project}/` : ''}${result.name}`;
    if (seen.has(key)) {
      problems.push(`${where}: ${key.toLowerCase()} is also defined in document ${seen.get(key)}; keep one`);
      continue;
    }
    seen.set(key, index);
    manifests.push({ kind: result.kind, name: result.name, ...(result.project ? { project: result.project } : {}), body: result.body, index, line });
  }
  if (problems.length > 0) throw new CliError(problems.join('\n') + '\nnothing was applied; fix the manifests and run the command again');
  if (manifests.length === 0) throw new CliError(`${source} contains no documents; nothing was applied`);
  return manifests;
}

type Checked = { kind: ManifestKind; name: string; project?: string; body: Manifest['body']; problems: string[] };

function checkDocument(value: unknown, doc: Document, lc: LineCounter, allowedKinds: readonly ManifestKind[]): Checked | string {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return 'expected a mapping with apiVersion, kind, metadata and spec';
  const v = value as Record<string, unknown>;
  if (v.apiVersion === undefined) return `apiVersion is missing; set apiVersion: ${API_VERSION}`;
  if (v.apiVersion !== API_VERSION) return `apiVersion "${String(v.apiVersion)}" is not supported; use ${API_VERSION}`;
  if (typeof v.kind !== 'string') return `kind is missing; set kind to one of ${allowedKinds.join(', ')}`;
  if (!(allowedKinds as readonly string[]).includes(v.kind)) {
    return `kind "${v.kind}" cannot be applied here; use one of ${allowedKinds.join(', ')}`;
  }
  const kind = v.kind as ManifestKind;
  const metadata = v.metadata as Record<string, unknown> | undefined;
  const name = metadata && typeof metadata === 'object' ? metadata.name : undefined;
  if (typeof name !== 'string' || name.length === 0) return 'metadata.name is missing; every resource needs a name';
  if (kind === 'NodeType') {
    if (!NODE_TYPE_NAME.test(name) || name.length > 253) return `metadata.name "${name}" is not a node type name: use lower-case letters, digits, "-" and ".", starting and ending with a letter or digit`;
  } else if (!DNS_LABEL.test(name) || name.length > 63) {
    return `metadata.name "${name}" is not a DNS label: use lower-case letters, digits and "-", at most 63 characters, starting and ending with a letter or digit`;
  }
  let body = v;
  const problems: string[] = [];
  const project = metadata?.project;
  if (project !== undefined && !PROJECT_KINDS.includes(kind) && !EITHER_SCOPE_KINDS.includes(kind)) {
    problems.push(`metadata.project: ${kind} objects belong to the platform, not to a project; remove metadata.project`);
  }
  const scopeProblems = problems.length;
  if (kind === 'Secret' && v.data !== undefined) {
    // Kubernetes users write `data` (base64); the API takes `stringData`.
    const decoded = decodeSecretData(v.data, problems);
    const { data: _ignored, ...rest } = v;
    body = { ...rest, stringData: { ...(decoded ?? {}), ...((v.stringData as Record<string, string>) ?? {}) } };
  }
  if (problems.length === scopeProblems) {
    const validator = validators[kind];
    if (!validator.Check(body)) problems.push(...schemaProblems(validator.Errors(body), schemas[kind], doc, lc));
  }
  return { kind, name, ...(typeof project === 'string' && project !== '' ? { project } : {}), body: body as unknown as Manifest['body'], problems };
}

function decodeSecretData(data: unknown, problems: string[]): Record<string, string> | undefined {
  if (!data || typeof data !== 'object' || Array.isArray(data)) {
    problems.push('data: must be a mapping of key to base64 value (or use stringData with plain values)');
    return undefined;
  }
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(data)) {
    if (typeof val !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(val.replace(/\s+/g, ''))) {
      problems.push(`data.${k}: is not base64; encode the value, or move it to stringData as plain text`);
      continue;
    }
    out[k] = Buffer.from(val, 'base64').toString('utf8');
  }
  return out;
}

interface SchemaError {
  keyword: string;
  schemaPath: string;
  instancePath: string;
  params: Record<string, unknown>;
  message: string;
}

/** Turns JSON-schema errors into `field: problem; what to do`, with the line of the field. */
export function schemaProblems(errors: readonly SchemaError[], schema: unknown, doc?: Document, lc?: LineCounter): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const e of errors) {
    if (e.keyword === 'boolean') continue; // repeats an additionalProperties error
    const path = e.instancePath.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
    let field = path.join('.') || '(document)';
    let text: string;
    switch (e.keyword) {
      case 'additionalProperties': {
        const extra = (e.params.additionalProperties as string[] | undefined) ?? [];
        const allowed = Object.keys(schemaAt(schema, e.schemaPath)?.properties ?? {});
        for (const x of extra) {
          const f = [...path, x].join('.');
          const msg = `${f}: unknown field "${x}"; remove it or check its spelling${allowed.length ? ` (allowed here: ${allowed.join(', ')})` : ''}`;
          if (!seen.has(msg)) out.push(withLine(msg, [...path, x], doc, lc));
          seen.add(msg);
        }
        continue;
      }
      case 'required': {
        const missing = (e.params.requiredProperties as string[] | undefined) ?? [];
        text = missing.length ? '' : e.message;
        for (const m of missing) {
          const f = [...path, m].join('.');
          const msg = `${f}: is required`;
          if (!seen.has(msg)) out.push(withLine(msg, path, doc, lc));
          seen.add(msg);
        }
        if (!text) continue;
        break;
      }
      case 'enum':
        text = `must be one of ${((e.params.allowedValues as unknown[]) ?? []).map(String).join(', ')}`;
        break;
      case 'pattern': {
        const sub = schemaAt(schema, e.schemaPath) as { description?: string } | undefined;
        text = sub?.description ? `must be ${sub.description}` : e.message;
        break;
      }
      default:
        text = e.message;
    }
    if (field === '') field = '(document)';
    const msg = `${field}: ${text}`;
    if (!seen.has(msg)) out.push(withLine(msg, path, doc, lc));
    seen.add(msg);
  }
  return out;
}

function withLine(msg: string, path: string[], doc?: Document, lc?: LineCounter): string {
  if (!doc || !lc) return msg;
  // Point at the value if there is one, else at the nearest parent that exists.
  for (let n = path.length; n > 0; n--) {
    const node = doc.getIn(path.slice(0, n), true) as { range?: [number, number, number] } | undefined;
    if (node?.range) return `${msg} (line ${lc.linePos(node.range[0]).line})`;
    if (n === path.length) {
      // an unknown key has no node of its own via getIn when its value is null; try the parent
      continue;
    }
  }
  return msg;
}

function schemaAt(schema: unknown, schemaPath: string): { properties?: Record<string, unknown> } | undefined {
  let node = schema as Record<string, unknown> | undefined;
  for (const part of schemaPath.replace(/^#\/?/, '').split('/').filter(Boolean)) {
    node = node?.[part.replace(/~1/g, '/').replace(/~0/g, '~')] as Record<string, unknown> | undefined;
  }
  return node as { properties?: Record<string, unknown> } | undefined;
}

function firstLine(s: string): string {
  return s.split('\n')[0]!.trim();
}
