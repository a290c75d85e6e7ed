// The one code path for authorization. Every route declares `config.action`; an onRoute hook
// refuses to register a route without one (so the server fails to start rather than serve an
// unguarded route), and one onRequest hook authenticates and authorizes every request against
// that action. Routes marked `public` (health checks) are the only ones skipped.
import type { FastifyInstance } from 'fastify';
import { IngotError } from '../../model/errors.js';
import type { Store, StoredToken } from '../../store/store.js';
import { platformScopeRoles, projectScopeRoles } from './project-scope.js';
import { UnauthenticatedError, type Authenticator } from './authenticate.js';
import type { AuditWriter } from '../audit/audit-writer.js';
import { createRefusalCoalescer } from '../audit/refusal-coalescer.js';
import { RateLimitedError, type RateLimiter } from '../limits/rate-limit.js';
import { authorize, CAPABILITY_URL_ACTIONS, isRouteAction, PUBLIC, type Action, type Identity, type Policy, type RouteAction } from './policy.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The policy action this route enforces, or 'public' for the few unauthenticated routes. */
    action?: RouteAction;
  }
  interface FastifyRequest {
    /** Set by the access-control hook on every authenticated request. */
    identity?: Identity;
    /**
     * Set when the policy allows the action only with approval:required; the approval gate
     * (src/server/approvals/approval-gate.ts) then holds the request unless it is the
     * execution of an approved one.
     */
    approvalRequired?: boolean;
  }
}

export interface RegisteredRoute {
  method: string;
  url: string;
  action: RouteAction;
}

export class MissingRouteActionError extends Error {
  constructor(method: string, url: string, value: unknown) {
    super(
      `route ${method} ${url} has ${value === undefined ? 'no config.action' : `an unknown config.action ${JSON.stringify(value)}`}; ` +
        `every route must name a policy action from src/server/auth/policy.ts ACTIONS (or 'public')`,
    );
    this.name = 'MissingRouteActionError';
  }
}

const registered = new WeakMap<FastifyInstance, RegisteredRoute[]>();

/** Routes registered so far on `app` (a server with access control installed), with their actions. */
export function registeredRoutes(app: FastifyInstance): readonly RegisteredRoute[] {
  return registered.get(app) ?? [];
}

/**
 * Installs the route check and the request hook on `app`. Must be called before any route is
 * registered. Returns the list of routes as they register, for the route x role test and docs.
 */
export function installAccessControl(
  app: FastifyInstance,
  options: {
    authenticator: Authenticator;
    policy: Policy;
    tokenType: StoredToken['type'];
    /** Throttles failed authentication (per known credential, or per address for unknown ones) and requests per identity. */
    limits?: RateLimiter;
    /** Records every authentication failure and every denied request. */
    audit?: AuditWriter;
    /**
     * Scopes roles to the route (project-scope.ts): project roles apply only on routes of their
     * own project (`:project` in the URL). Without a store (the agent listener) roles are taken
     * as they are.
     */
    store?: Store;
    /**
     * An approval gate is installed (approvals/approval-gate.ts): rules with approval:required
     * mark the request instead of refusing it. Without one they refuse (fail closed).
     */
    approvals?: boolean;
    /** Clock of the refusal coalescer (tests). */
    now?: () => number;
  },
): RegisteredRoute[] {
  const routes: RegisteredRoute[] = [];
  registered.set(app, routes);
  // Repeated identical refusals become one audit event with a count (refusal-coalescer.ts).
  const refusals = options.audit ? createRefusalCoalescer({ audit: options.audit, ...(options.now ? { now: options.now } : {}), onError: (err) => app.log.error({ err }, 'could not record repeated refusals in the audit trail') }) : undefined;
  if (refusals) app.addHook('onClose', async () => refusals.close());
  app.addHook('onRoute', (route) => {
    const action = (route.config as { action?: unknown } | undefined)?.action;
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    if (!isRouteAction(action)) throw new MissingRouteActionError(methods.join(','), route.url, action);
    for (const method of methods) routes.push({ method, url: route.url, action });
  });

  app.addHook('onRequest', async (request, reply) => {
    // Unknown paths answer 404 without asking for credentials: they reveal nothing.
    if (request.is404) return;
    const action = request.routeOptions.config.action;
    if (action === PUBLIC) return;
    if (action !== undefined && CAPABILITY_URL_ACTIONS.has(action as never)) return;
    if (!isRouteAction(action)) {
      // Unreachable while the onRoute check holds; fail closed if it ever does not.
      throw new IngotError('INGOT_ERR_INTERNAL', 'route without a policy action');
    }
    const { limits } = options;
    const address = request.ip;
    const refuse = async (actor: string, roles: readonly string[], auditAction: string, err: IngotError): Promise<never> => {
      if (err instanceof RateLimitedError) void reply.header('retry-after', String(err.retryAfterSeconds));
      if (refusals) {
        await refusals.record({
          actor,
          roles,
          sourceAddress: address,
          requestId: request.id,
          action: auditAction,
          target: auditTarget(action, request),
          outcome: 'denied',
          reason: `${err.code}: ${err.message.slice(0, 300)}`,
        });
      }
      throw err;
    };
    let identity: Identity;
    try {
      identity = await options.authenticator.authenticate(request.headers.authorization, options.tokenType);
    } catch (err) {
      if (!(err instanceof IngotError)) throw err;
      const credentialId = err instanceof UnauthenticatedError ? err.credentialId : undefined;
      if (limits) {
        try {
          limits.recordAuthFailure(credentialId ? { credentialId } : { address });
        } catch (limited) {
          // Not audited: each refused attempt would be another write for the attacker to
          // cause; the failures that led here were recorded.
          if (limited instanceof RateLimitedError) void reply.header('retry-after', String(limited.retryAfterSeconds));
          throw limited;
        }
      }
      return refuse(credentialId ?? 'anonymous', [], 'auth:failed', err);
    }
    // Project roles the identity holds but that do not count on this route (project-scope.ts),
    // named in a refusal so a tenant learns where their roles do apply.
    let outOfScope = '';
    const project = (request.params as { project?: unknown } | undefined)?.project;
    if (options.store) {
      const roles = typeof project === 'string' ? await projectScopeRoles(options.store, identity, project) : platformScopeRoles(identity);
      const dropped = identity.roles.filter((r) => !roles.includes(r));
      if (dropped.length > 0) {
        const where = identity.project ? `on project ${identity.project}'s routes (/api/v1/projects/${identity.project}/…)` : 'on the routes of projects that list you as a member';
        outOfScope = ` (your ${dropped.join(', ')} role${dropped.length > 1 ? 's apply' : ' applies'} only ${where})`;
      }
      identity = { ...identity, roles };
    }
    const actor = actorOf(identity);
    // Every authenticated request costs the identity, allowed or refused: refusals must not
    // be a free way to load the server and the audit trail. The bucket is the principal's, so
    // minting more tokens does not buy more requests.
    if (limits) {
      try {
        limits.take(identity.principal, identity.roles);
      } catch (err) {
        if (err instanceof RateLimitedError) void reply.header('retry-after', String(err.retryAfterSeconds));
        throw err;
      }
    }
    try {
      const platformRoute = options.store !== undefined && typeof project !== 'string';
      if (authorize(options.policy, identity, action, { approvals: options.approvals === true, platformRoute }) === 'approval-required') request.approvalRequired = true;
    } catch (err) {
      if (!(err instanceof IngotError)) throw err;
      return refuse(actor, identity.roles, action, outOfScope ? new IngotError(err.code, `${err.message}${outOfScope}`, err.details ? { details: err.details } : {}) : err);
    }
    request.identity = identity;
  });
  return routes;
}

/** How an identity appears in audit events: the token id, and its description when it has one. */
export function actorOf(identity: Identity): string {
  return identity.description ? `${identity.tokenId} (${identity.description.slice(0, 100)})` : identity.tokenId;
}

/** The resource a request acts on, from the action's resource and the URL (`:name` or `:id`). */
export function auditTarget(action: Action, request: { params: unknown }): { kind: string; name: string; project: string } {
  const params = (request.params ?? {}) as { name?: unknown; id?: unknown; project?: unknown };
  const name = typeof params.name === 'string' ? params.name : typeof params.id === 'string' ? params.id : '';
  const resource = action.split(':')[0]!;
  const kind =
    {
      host: 'Host', secret: 'Secret', token: 'Token', audit: 'Audit', api: 'Api', agent: 'Agent', approval: 'Approval',
      osimage: 'OSImage', nodetype: 'NodeType', project: 'Project', claim: 'Claim', claimset: 'ClaimSet', ippool: 'IPPool',
    }[resource] ?? resource;
  const project = typeof params.project === 'string' ? params.project.slice(0, 63) : '';
  // GET /api/v1/projects/:project names the project itself.
  if (resource === 'project' && name === '') return { kind, name: project, project: '' };
  return { kind, name: name.slice(0, 253), project };
}
