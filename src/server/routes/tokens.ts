// /api/v1/tokens: API tokens. A token is `ingot_` + 32 random bytes, stored only as its
// SHA-256 (tokens.ts) and shown once, in the create answer. Every token expires, at most
// `maxLifetimeSeconds` after creation. No privilege escalation: a new token may only carry a
// set of roles that allows nothing its creator's roles do not (checked against the live
// policy, action by action), and a project-bound creator can only create tokens for its project.
import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { DNS_LABEL } from '../../model/envelope.js';
import { IngotError, notFound, validationError } from '../../model/errors.js';
import type { Store, StoredToken } from '../../store/store.js';
import { ACTIONS, API_ROLES, isAllowed, type Action, type Identity, type Policy } from '../auth/policy.js';
import { generateToken, hashToken } from '../auth/tokens.js';
import { documented, errorResponses } from '../schemas.js';

export const DEFAULT_MAX_TOKEN_LIFETIME_SECONDS = 90 * 24 * 3600;
const PROJECT_ROLES = API_ROLES.filter((r) => r.startsWith('project-'));

const TokenInput = Type.Object(
  {
    roles: Type.Array(Type.Enum([...API_ROLES] as string[]), { minItems: 1, maxItems: 8, uniqueItems: true, description: 'roles the token carries' }),
    project: Type.Optional(Type.String({ maxLength: 63, description: 'the project, for project-* roles' })),
    description: Type.String({ minLength: 1, maxLength: 200, description: 'what the token is for (shown in lists and the audit trail)' }),
    expiresInSeconds: Type.Integer({ minimum: 60, description: 'lifetime; at most the server maximum (default 90 days)' }),
  },
  { additionalProperties: false },
);
const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64, pattern: '^[0-9a-f-]+$' }) }, { additionalProperties: false });

export interface TokenView {
  id: string;
  description: string;
  roles: string[];
  project: string;
  createdAt: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

export function tokenView(t: StoredToken): TokenView {
  return {
    id: t.id,
    description: t.description,
    roles: t.roles,
    project: t.project,
    createdAt: t.createdAt,
    expiresAt: t.expiresAt > 0 ? new Date(t.expiresAt).toISOString() : null,
    lastUsedAt: t.lastUsedAt ?? null,
    revokedAt: t.revokedAt ?? null,
  };
}

/** Actions the requested roles would allow that the creator's roles do not. */
export function escalatedActions(policy: Policy, creator: Identity, roles: readonly string[]): Action[] {
  return (Object.keys(ACTIONS) as Action[]).filter((a) => isAllowed(policy, roles, a) && !isAllowed(policy, creator.roles, a));
}

export function tokenRoutes(options: { store: Store; policy: Policy; maxLifetimeSeconds?: number; now?: () => number }): FastifyPluginAsyncTypebox {
  const { store, policy } = options;
  const maxLifetime = options.maxLifetimeSeconds ?? DEFAULT_MAX_TOKEN_LIFETIME_SECONDS;
  const now = options.now ?? Date.now;

  return async function tokenRoutesPlugin(app) {
    app.route({
      method: 'POST',
      url: '/api/v1/tokens',
      config: { action: 'token:create' },
      schema: { summary: 'Create an API token (its value is in this answer only)', tags: ['tokens'], body: TokenInput, response: documented({ ...errorResponses(409) }) },
      handler: async (request, reply) => {
        const creator = request.identity!;
        const input = request.body;
        const problems = [];
        if (input.expiresInSeconds > maxLifetime) {
          problems.push({ field: 'expiresInSeconds', message: `is ${input.expiresInSeconds}, more than the server maximum of ${maxLifetime} (${Math.floor(maxLifetime / 86400)} days); ask for a shorter lifetime` });
        }
        const project = input.project ?? '';
        const projectRoles = input.roles.filter((r) => PROJECT_ROLES.includes(r));
        if (projectRoles.length > 0 && project === '') problems.push({ field: 'project', message: `is required for ${projectRoles.join(', ')}` });
        if (projectRoles.length > 0 && projectRoles.length !== input.roles.length) {
          problems.push({ field: 'roles', message: 'mixes platform and project roles; create one token per scope' });
        }
        if (project !== '' && projectRoles.length === 0) problems.push({ field: 'project', message: 'is only for project-* roles; remove it for platform roles' });
        if (project !== '' && !DNS_LABEL.test(project)) problems.push({ field: 'project', message: 'must be a DNS label (lower-case letters, digits and -)' });
        if (problems.length > 0) throw validationError(problems);
        const escalated = escalatedActions(policy, creator, input.roles);
        if (escalated.length > 0) {
          throw new IngotError(
            'INGOT_ERR_FORBIDDEN',
            `roles ${input.roles.join(', ')} would allow ${escalated.slice(0, 8).join(', ')}${escalated.length > 8 ? ', …' : ''}, which your token does not; a token can only grant what its creator holds`,
          );
        }
        if (creator.project !== '' && project !== creator.project) {
          throw new IngotError('INGOT_ERR_FORBIDDEN', `your token belongs to project "${creator.project}"; it can only create tokens for that project (field project)`);
        }
        const token = generateToken();
        const at = now();
        const stored: StoredToken = {
          id: randomUUID(),
          hash: hashToken(token),
          description: input.description,
          roles: [...input.roles],
          project,
          type: 'api',
          hostUid: '',
          expiresAt: at + input.expiresInSeconds * 1000,
          createdAt: new Date(at).toISOString(),
          // The minted token acts for whoever minted it, so a second token is not a second person.
          principal: creator.principal,
        };
        await store.createToken(stored);
        void reply.header('cache-control', 'no-store');
        return reply.code(201).send({ ...tokenView(stored), token });
      },
    });

    app.route({
      method: 'GET',
      url: '/api/v1/tokens',
      config: { action: 'token:list' },
      schema: { summary: 'List API tokens (never their values)', tags: ['tokens'], response: documented({ ...errorResponses() }) },
      handler: async () => {
        const items = (await store.listTokens()).filter((t) => t.type === 'api').map(tokenView);
        return { items };
      },
    });

    app.route({
      method: 'DELETE',
      url: '/api/v1/tokens/:id',
      config: { action: 'token:revoke' },
      schema: { summary: 'Revoke an API token', tags: ['tokens'], params: IdParams, response: documented({ ...errorResponses(404) }) },
      handler: async (request) => {
        const found = (await store.listTokens()).find((t) => t.id === request.params.id && t.type === 'api');
        if (!found) throw notFound('Token', request.params.id);
        const at = found.revokedAt ?? new Date(now()).toISOString();
        if (!found.revokedAt) await store.revokeToken(found.id, at);
        return tokenView({ ...found, revokedAt: at });
      },
    });
  };
}
