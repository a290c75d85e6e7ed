// /api/v1/secrets: write-only values. Values are sealed with the SecretBox (AES-256-GCM, AAD =
// the Secret's uid) and stored in the same transaction as the resource row; every read answers
// metadata, type, key names and version, never a value (DESIGN.md "Security, by design").
//
// Two scopes, the same handlers: platform secrets at /api/v1/secrets (BMC credentials, CA
// bundles; hosts resolve only these) and a project's secrets at /api/v1/projects/P/secrets
// (user data; claims of P resolve only these). A lookup never leaves the scope of its URL.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { IngotError, notFound, validationError, type FieldProblem } from '../../model/errors.js';
import type { HostSpec } from '../../model/host.js';
import { parseLabelSelector } from '../../model/label-selector.js';
import { MAX_SECRET_BYTES, SECRET_KEY_PATTERN, SecretInput } from '../../model/secret.js';
import type { Store, StoredResource } from '../../store/store.js';
import { referencedSecrets } from '../admission/host-admission.js';
import { metadataProblems } from '../admission/metadata-admission.js';
import { checkReservedMetadata } from '../admission/reserved-metadata.js';
import { Name } from '../../model/envelope.js';
import { authorize } from '../auth/policy.js';
import type { ApiContext } from '../api-context.js';
import { parseResourceVersion, toList, toSecretEnvelope } from '../envelope.js';
import { documented, errorResponses, NameParams, PageQuery, SecretList, SecretResource } from '../schemas.js';
import type { FastifyInstance } from 'fastify';
import { registerSecretRekeyRoute } from './secret-rekey.js';

const KIND = 'Secret';
const PLATFORM = '';
const SECRET_KEY = new RegExp(SECRET_KEY_PATTERN);
const DEFAULT_TYPE = 'Opaque';

const ListQuery = Type.Object(
  { ...PageQuery, labelSelector: Type.Optional(Type.String({ maxLength: 4096, description: 'e.g. team=infra,!deprecated' })) },
  { additionalProperties: false },
);

/** Checks the schema cannot make (key names of a Record, total size), naming fields, never values. */
function checkSecretInput(input: SecretInput, project: string): void {
  const problems: FieldProblem[] = metadataProblems(input.metadata, { kind: KIND, platformOnly: project === PLATFORM });
  if (project !== PLATFORM && input.metadata.project !== undefined && input.metadata.project !== project) {
    problems.push({ field: 'metadata.project', message: `is "${input.metadata.project}" but the URL names project "${project}"; they must be equal (or leave metadata.project out)` });
  }
  let total = 0;
  for (const [key, value] of Object.entries(input.stringData)) {
    if (!SECRET_KEY.test(key)) {
      problems.push({ field: `stringData[${JSON.stringify(key)}]`, message: "key must be 1-253 letters, digits, '-', '_' or '.'" });
    }
    total += Buffer.byteLength(key, 'utf8') + Buffer.byteLength(value, 'utf8');
  }
  if (total > MAX_SECRET_BYTES) {
    problems.push({ field: 'stringData', message: `holds ${total} bytes, more than the ${MAX_SECRET_BYTES} a secret may hold` });
  }
  if (problems.length > 0) throw validationError(problems);
}

function secretStatus(input: SecretInput, version: number): Record<string, unknown> {
  return { keys: Object.keys(input.stringData).sort(), version };
}

/** Hosts (for a platform secret) or claims and claim sets (for a project's) that name `secret`. */
async function usersOf(store: Store, project: string, secret: string): Promise<string[]> {
  if (project !== PLATFORM) {
    const users: string[] = [];
    for (const kind of ['Claim', 'ClaimSet']) {
      let cursor: string | undefined;
      do {
        const page = await store.list({ kind, project, limit: 1000, ...(cursor ? { continue: cursor } : {}) });
        for (const r of page.items) {
          const spec = (kind === 'Claim' ? r.spec : (r.spec.template as { spec?: Record<string, unknown> } | undefined)?.spec) ?? {};
          if (spec.userDataSecretName === secret) users.push(`${kind.toLowerCase()} ${r.name}`);
        }
        cursor = page.continue;
      } while (cursor);
    }
    return users;
  }
  const names: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await store.list({ kind: 'Host', project: PLATFORM, limit: 1000, ...(cursor ? { continue: cursor } : {}) });
    for (const host of page.items) if (referencedSecrets(host.spec as HostSpec).includes(secret)) names.push(`host ${host.name}`);
    cursor = page.continue;
  } while (cursor);
  return names;
}

const ProjectParams = Type.Object({ project: Name }, { additionalProperties: false });
const ProjectNameParams = Type.Object({ project: Name, name: Name }, { additionalProperties: false });

/** A project route needs its project; the answer is the same for every caller. */
async function requireScope(store: Store, project: string): Promise<void> {
  if (project === PLATFORM) return;
  if (!(await store.get({ kind: 'Project', project: '', name: project }))) {
    throw new IngotError('INGOT_ERR_NOT_FOUND', `Project "${project}" does not exist (or you are not a member); check the name with \`ingot project list\` or ask a platform admin`);
  }
}

export function secretRoutes(ctx: ApiContext): FastifyPluginAsyncTypebox {
  const { store, secretBox, policy } = ctx;

  async function seal(tx: Store, resource: StoredResource, input: SecretInput, version: number): Promise<void> {
    const values: Record<string, string> = Object.fromEntries(Object.entries(input.stringData));
    await tx.putSecretCiphertext({ uid: resource.uid, version, keyId: secretBox.keyId, ciphertext: secretBox.seal(values, resource.uid) });
  }

  async function create(tx: Store, input: SecretInput, project: string): Promise<StoredResource> {
    const created = await tx.create({
      kind: KIND,
      project,
      name: input.metadata.name,
      labels: input.metadata.labels ?? {},
      annotations: input.metadata.annotations ?? {},
      spec: { type: input.type ?? DEFAULT_TYPE },
      status: secretStatus(input, 1),
    });
    await seal(tx, created, input, 1);
    return created;
  }

  return async function secretRoutesPlugin(app) {
    registerSecretRekeyRoute(app as unknown as FastifyInstance, ctx);
    for (const projectScoped of [false, true]) {
    const base = projectScoped ? '/api/v1/projects/:project/secrets' : '/api/v1/secrets';
    const scopeOf = (request: { params: unknown }): string => (projectScoped ? (request.params as { project: string }).project : PLATFORM);
    const CollectionParams = projectScoped ? { params: ProjectParams } : {};
    const ItemParams = projectScoped ? ProjectNameParams : NameParams;
    const where = projectScoped ? " of a project (user data for its claims)" : ' (platform: BMC credentials, CA bundles)';
    app.route({
      method: 'GET',
      url: base,
      config: { action: 'secret:list' },
      schema: { summary: `List secrets${where} (key names and versions; never values)`, tags: ['secrets'], ...CollectionParams, querystring: ListQuery, response: documented({ 200: SecretList, ...errorResponses() }) },
      handler: async (request) => {
        await requireScope(store, scopeOf(request));
        const page = await store.list({
          kind: KIND,
          project: scopeOf(request),
          labelSelector: request.query.labelSelector ? parseLabelSelector(request.query.labelSelector) : [],
          ...(request.query.limit !== undefined ? { limit: request.query.limit } : {}),
          ...(request.query.continue ? { continue: request.query.continue } : {}),
        });
        return toList(KIND, page.items.map(toSecretEnvelope), page.continue);
      },
    });

    app.route({
      method: 'POST',
      url: base,
      config: { action: 'secret:create' },
      schema: { summary: `Create a secret${where}`, tags: ['secrets'], ...CollectionParams, body: SecretInput, response: documented({ 201: SecretResource, ...errorResponses(409, 413, 415) }) },
      handler: async (request, reply) => {
        const project = scopeOf(request);
        checkSecretInput(request.body, project);
        checkReservedMetadata(request.identity!, { labels: {}, annotations: {} }, { labels: request.body.metadata.labels ?? {}, annotations: request.body.metadata.annotations ?? {} });
        const created = await store.transaction(async (tx) => {
          await requireScope(tx, project);
          return create(tx, request.body, project);
        });
        const location = project ? `/api/v1/projects/${project}/secrets/${created.name}` : `/api/v1/secrets/${created.name}`;
        return reply.code(201).header('location', location).send(toSecretEnvelope(created));
      },
    });

    app.route({
      method: 'GET',
      url: `${base}/:name`,
      config: { action: 'secret:get' },
      schema: { summary: 'Read a secret (key names and version; never values)', tags: ['secrets'], params: ItemParams, response: documented({ 200: SecretResource, ...errorResponses(404) }) },
      handler: async (request) => {
        await requireScope(store, scopeOf(request));
        const secret = await store.get({ kind: KIND, project: scopeOf(request), name: (request.params as { name: string }).name });
        if (!secret) throw notFound(KIND, (request.params as { name: string }).name);
        return toSecretEnvelope(secret);
      },
    });

    // Create-or-replace. Replacing re-encrypts all values and bumps status.version, which
    // hosts compare with status.goodCredentials to notice a rotation.
    app.route({
      method: 'PUT',
      url: `${base}/:name`,
      config: { action: 'secret:update' },
      schema: {
        summary: 'Create or replace a secret (new version; values re-encrypted)',
        tags: ['secrets'],
        params: ItemParams,
        body: SecretInput,
        response: documented({ 200: SecretResource, 201: SecretResource, ...errorResponses(409, 413, 415) }),
      },
      handler: async (request, reply) => {
        const { name } = request.params as { name: string };
        const project = scopeOf(request);
        const input = request.body;
        if (input.metadata.name !== name) {
          throw validationError([{ field: 'metadata.name', message: `is "${input.metadata.name}" but the URL names "${name}"; they must be equal` }]);
        }
        checkSecretInput(input, project);
        const expected = parseResourceVersion(input.metadata.resourceVersion);
        const result = await store.transaction(async (tx) => {
          await requireScope(tx, project);
          const existing = await tx.get({ kind: KIND, project, name });
          const next = { labels: input.metadata.labels ?? {}, annotations: input.metadata.annotations ?? {} };
          checkReservedMetadata(request.identity!, existing ?? { labels: {}, annotations: {} }, next);
          if (!existing) {
            authorize(policy, request.identity!, 'secret:create');
            if (expected !== undefined) {
              throw new IngotError('INGOT_ERR_CONFLICT', `Secret "${name}" does not exist, but metadata.resourceVersion ${expected} was given; remove metadata.resourceVersion to create it`);
            }
            return { created: true, secret: await create(tx, input, project) };
          }
          if (expected !== undefined && expected !== existing.resourceVersion) {
            throw new IngotError(
              'INGOT_ERR_CONFLICT',
              `Secret "${name}" has resourceVersion ${existing.resourceVersion}, not ${expected}: it was changed since you read it; read it again and reapply your change`,
            );
          }
          const version = (typeof existing.status.version === 'number' ? existing.status.version : 0) + 1;
          const updated = await tx.replace({
            ...existing,
            labels: input.metadata.labels ?? {},
            annotations: input.metadata.annotations ?? {},
            spec: { type: input.type ?? DEFAULT_TYPE },
            status: secretStatus(input, version),
          });
          await seal(tx, updated, input, version);
          return { created: false, secret: updated };
        });
        return reply.code(result.created ? 201 : 200).send(toSecretEnvelope(result.secret));
      },
    });

    app.route({
      method: 'DELETE',
      url: `${base}/:name`,
      config: { action: 'secret:delete' },
      schema: { summary: 'Delete a secret that no host references', tags: ['secrets'], params: ItemParams, response: documented({ 200: SecretResource, ...errorResponses(404, 409) }) },
      handler: async (request) => {
        const { name } = request.params as { name: string };
        const project = scopeOf(request);
        return store.transaction(async (tx) => {
          await requireScope(tx, project);
          const existing = await tx.get({ kind: KIND, project, name });
          if (!existing) throw notFound(KIND, name);
          const users = await usersOf(tx, project, name);
          if (users.length > 0) {
            const shown = users.slice(0, 20).join(', ') + (users.length > 20 ? `, and ${users.length - 20} more` : '');
            throw new IngotError(
              'INGOT_ERR_CONFLICT',
              `Secret "${name}" is used by ${shown}; point ${users.length > 1 ? 'them' : 'it'} at another secret (or delete ${users.length > 1 ? 'them' : 'it'}) first`,
            );
          }
          await tx.remove({ kind: KIND, project, name }, existing.resourceVersion);
          await tx.deleteSecretCiphertext(existing.uid);
          return toSecretEnvelope(existing);
        });
      },
    });
    }
  };
}
