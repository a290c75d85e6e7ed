// The public API: one Fastify instance with the model's TypeBox schemas for validation and the
// OpenAPI document, one access-control hook, one error handler. Agent routes live on their own
// instance (agent-server.ts) and are not registered here at all.
import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import type { SecureContextOptions, TlsOptions } from 'node:tls';
import swagger from '@fastify/swagger';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { SecretBox } from '../store/secret-box.js';
import type { Store } from '../store/store.js';
import { installAccessControl } from './auth/access-control.js';
export { registeredRoutes } from './auth/access-control.js';
import { createAuthenticator } from './auth/authenticate.js';
import type { OidcVerifier } from './auth/oidc.js';
import { ACTIONS, type Policy } from './auth/policy.js';
import type { ApiContext } from './api-context.js';
import { registerBodyParsers } from './body-parsers.js';
import { DEFAULT_BODY_BOUNDS, type BodyBounds } from './body-scan-error.js';
import { errorHandler, notFoundHandler } from './error-handler.js';
import { hostRoutes } from './routes/hosts.js';
import { metaRoutes } from './routes/meta.js';
import { secretRoutes } from './routes/secrets.js';
import { secretRevealRoutes } from './routes/secret-reveal.js';
import { tokenRoutes } from './routes/tokens.js';
import { auditRoutes } from './routes/audit.js';
import type { AuditWriter } from './audit/audit-writer.js';
import { installRequestAudit } from './audit/request-audit.js';
import { createRateLimiter, type RateLimitConfig } from './limits/rate-limit.js';
import { WatchRegistry } from './watch-stream.js';
import { ApprovalGate, type ApprovalConfig } from './approvals/approval-gate.js';
import { approvalRoutes } from './routes/approvals.js';
import { claimRoutes } from './routes/claims.js';
import { claimSetRoutes } from './routes/claim-sets.js';
import { ipAddressRoutes, ipPoolRoutes } from './routes/ip-pools.js';
import { nodeTypeRoutes } from './routes/node-types.js';
import { osImageRoutes } from './routes/os-images.js';
import { projectRoutes } from './routes/projects.js';

export const DEFAULT_BODY_LIMIT = 1024 * 1024;

export interface ApiServerOptions {
  store: Store;
  secretBox: SecretBox;
  policy: Policy;
  log: Logger;
  /** Largest request body in bytes; default 1 MiB (413 INGOT_ERR_BODY_TOO_LARGE beyond). */
  bodyLimit?: number;
  /** Depth, value and alias bounds of bodies (DEFAULT_BODY_BOUNDS for what is not given). */
  bodyBounds?: Partial<BodyBounds>;
  /** Watch stream heartbeat comment interval; default 15 s. */
  watchHeartbeatMs?: number;
  /** Watch stream poll interval for changes by other processes; default 1 s. */
  watchPollMs?: number;
  /** Records writes, denials and authentication failures; without it nothing is audited. */
  audit?: AuditWriter;
  /** Request limits (rate-limit.ts defaults when absent); `false` turns them off. */
  rateLimits?: RateLimitConfig | false;
  /** Longest lifetime of an API token created through the API; default 90 days. */
  maxTokenLifetimeSeconds?: number;
  /** Clock for token expiry (tests). */
  now?: () => number;
  /** Serve HTTPS with these options (tls/api-tls.ts); plain HTTP without. */
  https?: TlsOptions & SecureContextOptions;
  /** Accept OIDC bearer JWTs besides Ingot tokens (auth/oidc.ts). */
  oidc?: OidcVerifier;
  /** Two-person rule (approvals/approval-gate.ts); defaults apply when absent, `false` turns it off. */
  approvals?: Partial<ApprovalConfig> | false;
}

/**
 * Ajv settings for every schema: unknown fields are rejected rather than stripped (a typo like
 * `spec.onlin` must not silently do nothing), no type coercion or defaults (the stored document
 * is exactly what was sent), all errors at once, and `verbose` so messages can name allowed fields.
 */
export const AJV_OPTIONS = { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: true, verbose: true } as const;

/** Shared by both listeners: request ids, error handling, x-request-id on every answer. */
export function createBaseServer(options: { log: Logger; bodyLimit: number; bodyBounds?: Partial<BodyBounds>; https?: TlsOptions & SecureContextOptions }): FastifyInstance {
  const app = Fastify({
    ...(options.https ? { https: options.https } : {}),
    loggerInstance: options.log,
    bodyLimit: options.bodyLimit,
    // Our own ids: a client-chosen id would let one forge log correlation.
    genReqId: () => randomUUID(),
    requestIdHeader: false,
    exposeHeadRoutes: false,
    ajv: { customOptions: AJV_OPTIONS },
    return503OnClosing: true,
  }) as unknown as FastifyInstance;
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler(notFoundHandler);
  // Response schemas document the API (OpenAPI); serialize with JSON.stringify so a schema
  // that lags behind the code can never silently drop a field.
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  app.addHook('onSend', async (request, reply, payload) => {
    void reply.header('x-request-id', request.id);
    return payload;
  });
  // Query strings are text; coerce declared integer/boolean parameters before validation so
  // bodies can keep `coerceTypes: false` (a JSON "5" is not 5) while `?limit=5` still works.
  app.addHook('preValidation', async (request) => {
    const schema = request.routeOptions.schema?.querystring as { properties?: Record<string, { type?: unknown }> } | undefined;
    const query = request.query as Record<string, unknown> | undefined;
    if (!schema?.properties || !query) return;
    for (const [key, property] of Object.entries(schema.properties)) {
      const value = query[key];
      if (typeof value !== 'string') continue;
      if (property.type === 'integer' && /^-?[0-9]{1,15}$/.test(value)) query[key] = Number(value);
      else if (property.type === 'boolean' && (value === 'true' || value === 'false')) query[key] = value === 'true';
    }
  });
  registerBodyParsers(app, options.bodyLimit, { ...DEFAULT_BODY_BOUNDS, ...options.bodyBounds });
  closeUnusedConnectionsOnClose(app);
  return app;
}

/**
 * HTTP clients (undici among them) open spare connections that may never carry a request.
 * Node's server.close() waits for those until headersTimeout (a minute), and Fastify's
 * idle-connection closing does not count them as idle; so on close, destroy every connection
 * that has not sent a byte. Connections with a request in flight are left to finish.
 */
function closeUnusedConnectionsOnClose(app: FastifyInstance): void {
  const sockets = new Set<Socket>();
  app.server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  app.addHook('preClose', async () => {
    for (const socket of sockets) if (socket.bytesRead === 0) socket.destroy();
  });
}

export function buildApiServer(options: ApiServerOptions): FastifyInstance {
  const bodyLimit = options.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const app = createBaseServer({ log: options.log, bodyLimit, ...(options.bodyBounds ? { bodyBounds: options.bodyBounds } : {}), ...(options.https ? { https: options.https } : {}) });
  const authenticator = createAuthenticator({
    store: options.store,
    ...(options.oidc ? { oidc: options.oidc } : {}),
    onTouchError: (err) => options.log.warn({ err }, 'could not record token lastUsedAt'),
  });
  installAccessControl(app, {
    authenticator,
    policy: options.policy,
    tokenType: 'api',
    store: options.store,
    ...(options.rateLimits === false ? {} : { limits: createRateLimiter(options.rateLimits ?? {}) }),
    ...(options.audit ? { audit: options.audit } : {}),
    approvals: options.approvals !== false,
    ...(options.now ? { now: options.now } : {}),
  });
  if (options.audit) installRequestAudit(app, { audit: options.audit });
  const gate =
    options.approvals === false
      ? undefined
      : new ApprovalGate({
          store: options.store,
          config: options.approvals ?? {},
          allowMd5Checksums: options.policy.allowMd5Checksums,
          ...(options.now ? { now: options.now } : {}),
          ...(options.audit ? { audit: options.audit } : {}),
        });
  gate?.install(app);

  const ctx: ApiContext = {
    store: options.store,
    secretBox: options.secretBox,
    policy: options.policy,
    watches: new WatchRegistry(),
    watchHeartbeatMs: options.watchHeartbeatMs ?? 15_000,
    watchPollMs: options.watchPollMs ?? 1_000,
    ...(options.audit ? { audit: options.audit } : {}),
  };
  app.addHook('preClose', async () => ctx.watches.closeAll());

  void app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Ingot API',
        version: '1',
        description:
          'Bare-metal provisioning control plane. Every route but /healthz and /readyz needs `Authorization: Bearer <token>`; ' +
          `each names its policy action (x-ingot-action). Actions: ${Object.keys(ACTIONS).filter((a) => !a.startsWith('agent:')).join(', ')}.`,
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'an Ingot API token (ingot_…)' } } },
      security: [{ bearer: [] }],
    },
    transform: ({ schema, url, route }) => {
      const action = (route.config as { action?: string } | undefined)?.action;
      return { schema: { ...schema, ...(action ? { 'x-ingot-action': action } : {}) } as typeof schema, url };
    },
  });
  void app.register(metaRoutes({ store: options.store, openapi: () => app.swagger() }));
  void app.register(hostRoutes(ctx));
  void app.register(secretRoutes(ctx));
  void app.register(secretRevealRoutes(ctx));
  void app.register(
    tokenRoutes({
      store: options.store,
      policy: options.policy,
      ...(options.maxTokenLifetimeSeconds ? { maxLifetimeSeconds: options.maxTokenLifetimeSeconds } : {}),
      ...(options.now ? { now: options.now } : {}),
    }),
  );
  void app.register(auditRoutes({ store: options.store }));
  void app.register(osImageRoutes(ctx));
  void app.register(nodeTypeRoutes(ctx));
  void app.register(projectRoutes(ctx));
  void app.register(ipPoolRoutes(ctx));
  void app.register(ipAddressRoutes(ctx));
  void app.register(claimRoutes(ctx));
  void app.register(claimSetRoutes(ctx));
  if (gate) void app.register(approvalRoutes({ store: options.store, policy: options.policy, gate }));
  return app;
}
