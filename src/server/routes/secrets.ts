// /api/v1/secrets: write-only values. Values are sealed with the SecretBox (AES-256-GCM, AAD =
// the Secret's uid) and stored in the same transaction as the resource row; every read answers
// metadata, type, key names and version, never a value (DESIGN.md "Security, by design").
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { IngotError, notFound, validationError, type FieldProblem } from '../../model/errors.js';
import type { HostSpec } from '../../model/host.js';
import { parseLabelSelector } from '../../model/label-selector.js';
import { MAX_SECRET_BYTES, SECRET_KEY_PATTERN, SecretInput } from '../../model/secret.js';
import type { Store, StoredResource } from '../../store/store.js';
import { referencedSecrets } from '../admission/host-admission.js';
import { metadataProblems } from '../admission/metadata-admission.js';
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
function checkSecretInput(input: SecretInput): void {
  const problems: FieldProblem[] = metadataProblems(input.metadata, { kind: KIND, platformOnly: true });
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

/** Hosts whose spec names `secret` (credentials, CA bundle or user data). Hosts are platform-scoped. */
async function hostsReferencing(store: Store, secret: string): Promise<string[]> {
  const names: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await store.list({ kind: 'Host', project: PLATFORM, limit: 1000, ...(cursor ? { continue: cursor } : {}) });
    for (const host of page.items) if (referencedSecrets(host.spec as HostSpec).includes(secret)) names.push(host.name);
    cursor = page.continue;
  } while (cursor);
  return names;
}

export function secretRoutes(ctx: ApiContext): FastifyPluginAsyncTypebox {
  const { store, secretBox, policy } = ctx;

  async function seal(tx: Store, resource: StoredResource, input: SecretInput, version: number): Promise<void> {
    const values: Record<string, string> = Object.fromEntries(Object.entries(input.stringData));
    await tx.putSecretCiphertext({ uid: resource.uid, version, keyId: secretBox.keyId, ciphertext: secretBox.seal(values, resource.uid) });
  }

  async function create(tx: Store, input: SecretInput): Promise<StoredResource> {
    const created = await tx.create({
      kind: KIND,
      project: PLATFORM,
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
    app.route({
      method: 'GET',
      url: '/api/v1/secrets',
      config: { action: 'secret:list' },
      schema: { summary: 'List secrets (key names and versions; never values)', tags: ['secrets'], querystring: ListQuery, response: documented({ 200: SecretList, ...errorResponses() }) },
      handler: async (request) => {
        const page = await store.list({
          kind: KIND,
          project: PLATFORM,
          labelSelector: request.query.labelSelector ? parseLabelSelector(request.query.labelSelector) : [],
          ...(request.query.limit !== undefined ? { limit: request.query.limit } : {}),
          ...(request.query.continue ? { continue: request.query.continue } : {}),
        });
        return toList(KIND, page.items.map(toSecretEnvelope), page.continue);
      },
    });

    app.route({
      method: 'POST',
      url: '/api/v1/secrets',
      config: { action: 'secret:create' },
      schema: { summary: 'Create a secret', tags: ['secrets'], body: SecretInput, response: documented({ 201: SecretResource, ...errorResponses(409, 413, 415) }) },
      handler: async (request, reply) => {
        checkSecretInput(request.body);
        const created = await store.transaction((tx) => create(tx, request.body));
        return reply.code(201).header('location', `/api/v1/secrets/${created.name}`).send(toSecretEnvelope(created));
      },
    });

    app.route({
      method: 'GET',
      url: '/api/v1/secrets/:name',
      config: { action: 'secret:get' },
      schema: { summary: 'Read a secret (key names and version; never values)', tags: ['secrets'], params: NameParams, response: documented({ 200: SecretResource, ...errorResponses(404) }) },
      handler: async (request) => {
        const secret = await store.get({ kind: KIND, project: PLATFORM, name: request.params.name });
        if (!secret) throw notFound(KIND, request.params.name);
        return toSecretEnvelope(secret);
      },
    });

    // Create-or-replace. Replacing re-encrypts all values and bumps status.version, which
    // hosts compare with status.goodCredentials to notice a rotation.
    app.route({
      method: 'PUT',
      url: '/api/v1/secrets/:name',
      config: { action: 'secret:update' },
      schema: {
        summary: 'Create or replace a secret (new version; values re-encrypted)',
        tags: ['secrets'],
        params: NameParams,
        body: SecretInput,
        response: documented({ 200: SecretResource, 201: SecretResource, ...errorResponses(409, 413, 415) }),
      },
      handler: async (request, reply) => {
        const { name } = request.params;
        const input = request.body;
        if (input.metadata.name !== name) {
          throw validationError([{ field: 'metadata.name', message: `is "${input.metadata.name}" but the URL names "${name}"; they must be equal` }]);
        }
        checkSecretInput(input);
        const expected = parseResourceVersion(input.metadata.resourceVersion);
        const result = await store.transaction(async (tx) => {
          const existing = await tx.get({ kind: KIND, project: PLATFORM, name });
          if (!existing) {
            authorize(policy, request.identity!, 'secret:create');
            if (expected !== undefined) {
              throw new IngotError('INGOT_ERR_CONFLICT', `Secret "${name}" does not exist, but metadata.resourceVersion ${expected} was given; remove metadata.resourceVersion to create it`);
            }
            return { created: true, secret: await create(tx, input) };
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
      url: '/api/v1/secrets/:name',
      config: { action: 'secret:delete' },
      schema: { summary: 'Delete a secret that no host references', tags: ['secrets'], params: NameParams, response: documented({ 200: SecretResource, ...errorResponses(404, 409) }) },
      handler: async (request) => {
        const { name } = request.params;
        return store.transaction(async (tx) => {
          const existing = await tx.get({ kind: KIND, project: PLATFORM, name });
          if (!existing) throw notFound(KIND, name);
          const users = await hostsReferencing(tx, name);
          if (users.length > 0) {
            const shown = users.slice(0, 20).join(', ') + (users.length > 20 ? `, and ${users.length - 20} more` : '');
            throw new IngotError(
              'INGOT_ERR_CONFLICT',
              `Secret "${name}" is used by host${users.length > 1 ? 's' : ''} ${shown}; point ${users.length > 1 ? 'them' : 'it'} at another secret (or delete ${users.length > 1 ? 'them' : 'it'}) first`,
            );
          }
          await tx.remove({ kind: KIND, project: PLATFORM, name }, existing.resourceVersion);
          await tx.deleteSecretCiphertext(existing.uid);
          return toSecretEnvelope(existing);
        });
      },
    });
  };
}
