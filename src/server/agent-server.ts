// The agent API: a separate Fastify instance on its own address (the provisioning network),
// serving only /agent/v1/* and /healthz. It accepts agent tokens only (one-boot tokens bound to
// a host); API tokens are refused here and agent tokens on the public listener, so neither
// network can reach the other's routes (DESIGN.md "The agent protocol"). The handlers arrive
// with issue 4; until then each route exists, is guarded, and answers 501.
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { Type } from 'typebox';
import { IngotError } from '../model/errors.js';
import type { Store } from '../store/store.js';
import { DEFAULT_BODY_LIMIT, createBaseServer } from './api-server.js';
import { installAccessControl } from './auth/access-control.js';
import { createAuthenticator } from './auth/authenticate.js';
import type { Action, Policy } from './auth/policy.js';
import { registerHealthz } from './routes/meta.js';
import { errorResponses } from './schemas.js';

export interface AgentServerOptions {
  store: Store;
  policy: Policy;
  log: Logger;
  bodyLimit?: number;
}

const AGENT_ROUTES: { method: 'GET' | 'POST'; url: string; action: Action; summary: string }[] = [
  { method: 'POST', url: '/agent/v1/lookup', action: 'agent:lookup', summary: 'find the host this boot belongs to' },
  { method: 'POST', url: '/agent/v1/heartbeat', action: 'agent:heartbeat', summary: 'report that the agent is alive' },
  { method: 'GET', url: '/agent/v1/commands', action: 'agent:commands', summary: 'long-poll for commands to run' },
  { method: 'POST', url: '/agent/v1/results', action: 'agent:results', summary: 'report command results' },
];

export function buildAgentServer(options: AgentServerOptions): FastifyInstance {
  const app = createBaseServer({ log: options.log, bodyLimit: options.bodyLimit ?? DEFAULT_BODY_LIMIT });
  const authenticator = createAuthenticator({ store: options.store, onTouchError: (err) => options.log.warn({ err }, 'could not record token lastUsedAt') });
  installAccessControl(app, { authenticator, policy: options.policy, tokenType: 'agent' });
  registerHealthz(app);
  for (const route of AGENT_ROUTES) {
    app.route({
      method: route.method,
      url: route.url,
      config: { action: route.action },
      schema: {
        summary: route.summary,
        ...(route.method === 'POST' ? { body: Type.Optional(Type.Record(Type.String(), Type.Unknown())) } : {}),
        response: errorResponses(501),
      },
      handler: async () => {
        throw new IngotError('INGOT_ERR_NOT_IMPLEMENTED', `${route.method} ${route.url} (${route.action}) is not implemented yet; the agent protocol arrives with issue 4`);
      },
    });
  }
  return app;
}
