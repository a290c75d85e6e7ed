// The one code path for authorization. Every route declares `config.action`; an onRoute hook
// refuses to register a route without one (so the server fails to start rather than serve an
// unguarded route), and one onRequest hook authenticates and authorizes every request against
// that action. Routes marked `public` (health checks) are the only ones skipped.
import type { FastifyInstance } from 'fastify';
import { IngotError } from '../../model/errors.js';
import type { StoredToken } from '../../store/store.js';
import type { Authenticator } from './authenticate.js';
import { authorize, CAPABILITY_URL_ACTIONS, isRouteAction, PUBLIC, type Identity, type Policy, type RouteAction } from './policy.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The policy action this route enforces, or 'public' for the few unauthenticated routes. */
    action?: RouteAction;
  }
  interface FastifyRequest {
    /** Set by the access-control hook on every authenticated request. */
    identity?: Identity;
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
  options: { authenticator: Authenticator; policy: Policy; tokenType: StoredToken['type'] },
): RegisteredRoute[] {
  const routes: RegisteredRoute[] = [];
  registered.set(app, routes);
  app.addHook('onRoute', (route) => {
    const action = (route.config as { action?: unknown } | undefined)?.action;
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    if (!isRouteAction(action)) throw new MissingRouteActionError(methods.join(','), route.url, action);
    for (const method of methods) routes.push({ method, url: route.url, action });
  });

  app.addHook('onRequest', async (request) => {
    // Unknown paths answer 404 without asking for credentials: they reveal nothing.
    if (request.is404) return;
    const action = request.routeOptions.config.action;
    if (action === PUBLIC) return;
    if (action !== undefined && CAPABILITY_URL_ACTIONS.has(action as never)) return;
    if (!isRouteAction(action)) {
      // Unreachable while the onRoute check holds; fail closed if it ever does not.
      throw new IngotError('INGOT_ERR_INTERNAL', 'route without a policy action');
    }
    const identity = await options.authenticator.authenticate(request.headers.authorization, options.tokenType);
    authorize(options.policy, identity, action);
    request.identity = identity;
  });
  return routes;
}
