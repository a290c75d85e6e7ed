// The agent API: a separate Fastify instance on its own address (the provisioning network),
// serving only /agent/v1/* and /healthz. It accepts agent tokens only (one-boot tokens bound to
// a host); API tokens are refused here and agent tokens on the public listener, so neither
// network can reach the other's routes (DESIGN.md "The agent protocol").
//
// Every call acts for the host the token is bound to, never for a host named in the request:
// a body naming another host, a command id of another host, a token of an ended session or a
// deleted host is refused, logged as a security warning and recorded as an audit event
// (authentication failures are audited by the shared access-control hook).
import { setTimeout as sleep } from 'node:timers/promises';
import { createHash } from 'node:crypto';
import { open, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { cacheKeyOfHex } from '../images/image-cache.js';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { Type } from 'typebox';
import { buildBootConfigIso } from '../images/boot-config-iso.js';
import { hostBootIso } from '../boot/agent-boot-iso.js';
import type { StoredRamdisk } from '../boot/ramdisk-store.js';
import { commandSealAad, HeartbeatRequest, LookupRequest, ResultRequest, sessionSealAad, type BootConfig, type WireCommand } from '../model/agent-protocol.js';
import { IngotError } from '../model/errors.js';
import type { SecretBox } from '../store/secret-box.js';
import type { AgentCommand, AgentSession, Store, StoredResource } from '../store/store.js';
import { DEFAULT_BODY_LIMIT, createBaseServer } from './api-server.js';
import type { BodyBounds } from './body-scan-error.js';
import { installAccessControl } from './auth/access-control.js';
import { createAuthenticator } from './auth/authenticate.js';
import type { Policy } from './auth/policy.js';
import type { AuditWriter } from './audit/audit-writer.js';
import { createRefusalCoalescer } from './audit/refusal-coalescer.js';
import { createRateLimiter, DEFAULT_AGENT_RATE_LIMITS, type RateLimitConfig } from './limits/rate-limit.js';
import { registerHealthz } from './routes/meta.js';
import { errorResponses } from './schemas.js';

export interface AgentServerOptions {
  store: Store;
  policy: Policy;
  log: Logger;
  /** Records refused calls: bad or replayed tokens, ended sessions, cross-host attempts. */
  audit?: AuditWriter;
  bodyLimit?: number;
  /** Depth, value and alias bounds of bodies, as on the public listener. */
  bodyBounds?: Partial<BodyBounds>;
  /** Failed-authentication throttling and per-token request limits, as on the public listener (DEFAULT_AGENT_RATE_LIMITS when absent); `false` turns them off. */
  rateLimits?: RateLimitConfig | false;
  /** Opens sealed user data and boot-medium tokens; without it, deploys with user data and boot media answer 503. */
  secretBox?: SecretBox;
  /** Told to agents at lookup (default 30 s). */
  heartbeatIntervalMs?: number;
  /** How often a long poll re-reads the queue (default 250 ms); commands may be queued by another process. */
  commandPollMs?: number;
  now?: () => number;
  /**
   * The conductor's image cache directory (images.downloadSource: local); files there are
   * verified images named <algo>-<hex>. Without it, the images route answers 404.
   */
  imageCacheDir?: string;
  /**
   * The agent ramdisk to boot hosts with (`ingot ramdisk build`), read at each boot-medium
   * request so a new build takes effect without a restart. Without one, boot media carry only
   * the configuration file (enough for the lab's simulated systems, which boot nothing).
   */
  ramdisk?: () => StoredRamdisk | undefined;
}

/** Header in which the agent names the deploy command an image fetch is for. */
export const IMAGE_COMMAND_HEADER = 'x-ingot-command-id';

/** Agent bodies are small (an inventory of a big server is a few tens of KB). */
const AGENT_BODY_LIMIT = 256 * 1024;
const MAX_WAIT_SECONDS = 60;
const DEFAULT_WAIT_SECONDS = 25;

interface AgentContext {
  hostUid: string;
  tokenId: string;
  host: StoredResource;
  session: AgentSession;
}

function refused(message: string): IngotError {
  return new IngotError('INGOT_ERR_UNAUTHENTICATED', message);
}

/** The agent listener's limits: the given settings over DEFAULT_AGENT_RATE_LIMITS, field by field. */
function agentRateLimits(config: RateLimitConfig = {}): RateLimitConfig {
  return {
    ...config,
    authFailures: { ...DEFAULT_AGENT_RATE_LIMITS.authFailures, ...config.authFailures },
    perRole: { ...DEFAULT_AGENT_RATE_LIMITS.perRole, ...config.perRole },
    default: config.default ?? DEFAULT_AGENT_RATE_LIMITS.default!,
  };
}

export function buildAgentServer(options: AgentServerOptions): FastifyInstance {
  const { store, log } = options;
  const now = options.now ?? Date.now;
  const heartbeatIntervalMs = options.heartbeatIntervalMs ?? 30_000;
  const commandPollMs = options.commandPollMs ?? 250;
  const app = createBaseServer({ log, bodyLimit: Math.min(options.bodyLimit ?? DEFAULT_BODY_LIMIT, AGENT_BODY_LIMIT), ...(options.bodyBounds ? { bodyBounds: options.bodyBounds } : {}) });
  const authenticator = createAuthenticator({ store, onTouchError: (err) => log.warn({ err }, 'could not record token lastUsedAt') });
  installAccessControl(app, {
    authenticator,
    policy: options.policy,
    tokenType: 'agent',
    ...(options.rateLimits === false ? {} : { limits: createRateLimiter(agentRateLimits(options.rateLimits)) }),
    ...(options.audit ? { audit: options.audit } : {}),
  });
  registerHealthz(app);
  // A looping agent with an ended session would otherwise write one audit row per call.
  const refusals = options.audit ? createRefusalCoalescer({ audit: options.audit, onError: (err) => log.error({ err }, 'could not record repeated refusals in the audit trail') }) : undefined;
  if (refusals) app.addHook('onClose', async () => refusals.close());

  app.addHook('onResponse', async (request, reply) => {
    if (reply.statusCode === 401 || reply.statusCode === 403) {
      // No token in the line: only where from and what for.
      log.warn({ remoteAddress: request.ip, url: request.routeOptions.url ?? request.url, status: reply.statusCode, tokenHost: request.identity?.hostUid }, 'agent API refused a call');
      // A token that authenticated but was refused afterwards (ended session, another boot,
      // another host): the access-control hook did not see it, so it is recorded here.
      if (refusals && request.identity) {
        await refusals
          .record({
            actor: `agent-token:${request.identity.tokenId}`,
            roles: request.identity.roles,
            sourceAddress: request.ip,
            requestId: request.id,
            action: String(request.routeOptions.config.action ?? 'agent:unknown'),
            target: { kind: 'Host', name: request.identity.hostUid ?? '' },
            outcome: 'denied',
            reason: `${reply.statusCode}: ${(request as FastifyRequest & { refusalReason?: string }).refusalReason ?? 'refused'}`,
          })
          .catch((err: unknown) => log.error({ err }, 'could not record a refused agent call in the audit trail'));
      }
    }
  });

  function securityWarning(request: FastifyRequest, what: string, fields: Record<string, unknown> = {}): void {
    log.warn({ security: true, remoteAddress: request.ip, tokenHost: request.identity?.hostUid, ...fields }, what);
    (request as FastifyRequest & { refusalReason?: string }).refusalReason = what;
  }

  /** The caller's host and session; refuses tokens of ended sessions and of hosts that no longer exist. */
  async function agentContext(request: FastifyRequest): Promise<AgentContext> {
    const identity = request.identity;
    if (!identity || identity.type !== 'agent' || !identity.hostUid) throw refused('this call needs an agent token bound to a host');
    const [host, session] = await Promise.all([store.getByUid(identity.hostUid), store.getAgentSessionByTokenId(identity.tokenId)]);
    if (!host || host.kind !== 'Host') throw refused('the host this agent token was issued for no longer exists');
    if (!session || session.hostUid !== identity.hostUid || session.endedAt || session.expiresAt <= now()) {
      throw refused('the agent session of this token has ended; the host must boot the agent again');
    }
    return { hostUid: identity.hostUid, tokenId: identity.tokenId, host, session };
  }

  function toWire(command: AgentCommand): WireCommand {
    const base = { id: command.id, hostUid: command.hostUid, operationId: command.operationId };
    const request = command.request as Record<string, any>;
    if (command.kind === 'inspect') return { ...base, kind: 'inspect' };
    if (command.kind === 'clean') return { ...base, kind: 'clean', clean: request.clean };
    if (command.kind === 'deploy') {
      const deploy = structuredClone(request.deploy) as Record<string, any>;
      const sealed = deploy.configDrive?.userDataSealed;
      if (typeof sealed === 'string') {
        if (!options.secretBox) throw new IngotError('INGOT_ERR_UNAVAILABLE', 'this agent listener has no secret key, so it cannot hand out deploys with user data; start it with the server key');
        deploy.configDrive.userData = options.secretBox.open(Buffer.from(sealed, 'base64'), commandSealAad(command.id)).userData;
        delete deploy.configDrive.userDataSealed;
      }
      return { ...base, kind: 'deploy', deploy: deploy as never };
    }
    throw new IngotError('INGOT_ERR_INTERNAL', `command ${command.id} has unknown kind ${command.kind}`);
  }

  const sessionFields = (ctx: AgentContext) => ({ hostUid: ctx.hostUid, hostName: ctx.host.name });

  app.route({
    method: 'POST',
    url: '/agent/v1/lookup',
    config: { action: 'agent:lookup' },
    schema: { summary: 'find the host this boot belongs to', body: LookupRequest, response: errorResponses(400, 401, 403) },
    handler: async (request) => {
      const ctx = await agentContext(request);
      const body = request.body as LookupRequest;
      if (body.hostUid !== ctx.hostUid) {
        securityWarning(request, 'agent lookup names another host than its token', { claimedHost: body.hostUid });
        throw refused('this token belongs to another host');
      }
      if (body.bootId !== ctx.session.bootId) {
        securityWarning(request, 'agent lookup with a token from another boot', sessionFields(ctx));
        throw refused('this token belongs to another boot of the agent');
      }
      const bootMac = (ctx.host.spec as { bootMACAddress?: string }).bootMACAddress?.toLowerCase();
      if (bootMac && !body.macs.some((m) => m.toLowerCase() === bootMac)) {
        securityWarning(request, 'agent lookup from a machine without the host\'s boot MAC', sessionFields(ctx));
        throw new IngotError(
          'INGOT_ERR_FORBIDDEN',
          'none of the MAC addresses this machine reports is the host\'s spec.bootMACAddress: the boot medium is in the wrong machine, or spec.bootMACAddress is wrong',
        );
      }
      const at = new Date(now()).toISOString();
      await store.touchAgentSession(ctx.session.id, { lookedUpAt: at, lastSeenAt: at });
      log.info(sessionFields(ctx), 'agent looked up');
      return { hostUid: ctx.hostUid, hostName: ctx.host.name, heartbeatIntervalMs, commandWaitSeconds: DEFAULT_WAIT_SECONDS };
    },
  });

  app.route({
    method: 'POST',
    url: '/agent/v1/heartbeat',
    config: { action: 'agent:heartbeat' },
    schema: { summary: 'report that the agent is alive', body: HeartbeatRequest, response: errorResponses(400, 401) },
    handler: async (request) => {
      const ctx = await agentContext(request);
      const body = request.body as HeartbeatRequest;
      if (body.bootId !== ctx.session.bootId) throw refused('this token belongs to another boot of the agent');
      await store.touchAgentSession(ctx.session.id, { lastSeenAt: new Date(now()).toISOString() });
      return { heartbeatIntervalMs };
    },
  });

  app.route({
    method: 'GET',
    url: '/agent/v1/commands',
    config: { action: 'agent:commands' },
    schema: {
      summary: 'long-poll for the next command of this host',
      querystring: Type.Object({ wait: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_WAIT_SECONDS })) }, { additionalProperties: false }),
      response: errorResponses(400, 401),
    },
    handler: async (request, reply: FastifyReply) => {
      const ctx = await agentContext(request);
      const wait = (request.query as { wait?: number }).wait ?? DEFAULT_WAIT_SECONDS;
      const deadline = now() + wait * 1000;
      const gone = new AbortController();
      reply.raw.once('close', () => gone.abort());
      for (;;) {
        const at = new Date(now()).toISOString();
        const command = await store.claimNextAgentCommand(ctx.hostUid, at);
        await store.touchAgentSession(ctx.session.id, { lastSeenAt: at });
        if (command) {
          // Belt and braces: the query is by host, but never hand out another host's command.
          if (command.hostUid !== ctx.hostUid) throw new IngotError('INGOT_ERR_INTERNAL', 'command queue returned another host\'s command');
          log.info({ ...sessionFields(ctx), commandId: command.id, kind: command.kind }, 'command handed to agent');
          return { command: toWire(command) };
        }
        if (now() >= deadline || gone.signal.aborted) return { command: null };
        try {
          await sleep(Math.min(commandPollMs, Math.max(0, deadline - now())), undefined, { signal: gone.signal });
        } catch {
          return { command: null };
        }
        // Re-check the session: finish() during a long poll ends it.
        const session = await store.getAgentSessionByTokenId(ctx.tokenId);
        if (!session || session.endedAt) throw refused('the agent session of this token has ended');
      }
    },
  });

  app.route({
    method: 'POST',
    url: '/agent/v1/results',
    config: { action: 'agent:results' },
    schema: { summary: 'report progress or the outcome of a command', body: ResultRequest, response: errorResponses(400, 401, 404) },
    handler: async (request) => {
      const ctx = await agentContext(request);
      const body = request.body as ResultRequest;
      const command = await store.getAgentCommand(body.commandId);
      if (!command || command.hostUid !== ctx.hostUid) {
        if (command) securityWarning(request, 'agent reported a result for another host\'s command', { ...sessionFields(ctx), commandHost: command.hostUid });
        throw new IngotError('INGOT_ERR_NOT_FOUND', `command ${body.commandId} does not exist for this host`);
      }
      const result: Record<string, unknown> = {};
      if (body.inventory) result.inventory = body.inventory;
      if (body.rootDevice) result.rootDevice = body.rootDevice;
      const updated = await store.updateAgentCommand(
        command.id,
        {
          state: body.state,
          ...(body.percent !== undefined ? { percent: body.percent } : {}),
          ...(body.message !== undefined ? { message: body.message } : {}),
          ...(Object.keys(result).length > 0 ? { result } : {}),
        },
        new Date(now()).toISOString(),
      );
      await store.touchAgentSession(ctx.session.id, { lastSeenAt: new Date(now()).toISOString() });
      if (body.state !== 'running') log.info({ ...sessionFields(ctx), commandId: command.id, state: updated?.state }, 'agent command ended');
      return { commandId: command.id, state: updated?.state ?? command.state };
    },
  });

  app.route({
    method: 'GET',
    url: '/agent/v1/boot/:mediaId',
    config: { action: 'agent:boot-media' },
    schema: {
      summary: 'the agent boot medium (ISO 9660) of one session; the URL is the credential',
      params: Type.Object({ mediaId: Type.String({ pattern: '^[A-Za-z0-9_-]{43}$' }) }),
      response: errorResponses(404, 503),
    },
    handler: async (request, reply) => {
      const { mediaId } = request.params as { mediaId: string };
      const session = await store.getAgentSessionByMediaHash(createHash('sha256').update(mediaId, 'utf8').digest('hex'));
      // One answer for unknown, ended and expired media: the URL reveals nothing once dead.
      if (!session || session.endedAt || session.expiresAt <= now()) {
        if (session) log.warn({ security: true, remoteAddress: request.ip, hostUid: session.hostUid }, 'boot medium of an ended session requested');
        throw new IngotError('INGOT_ERR_NOT_FOUND', 'no such boot medium (it may have expired with its agent session)');
      }
      if (!options.secretBox) throw new IngotError('INGOT_ERR_UNAVAILABLE', 'this agent listener has no secret key, so it cannot build boot media');
      const { token } = options.secretBox.open(session.sealedToken, sessionSealAad(session.id));
      const config = { ...(session.bootConfig as Omit<BootConfig, 'token'>), token } as BootConfig;
      void reply.header('content-type', 'application/x-iso9660-image').header('cache-control', 'no-store');
      const ramdisk = options.ramdisk?.();
      if (!ramdisk) return buildBootConfigIso(config);
      void reply.header('content-length', String(ramdisk.bootIso.size));
      return reply.send(hostBootIso(ramdisk.bootIso, ramdisk.bootIso.size, config));
    },
  });

  app.route({
    method: 'GET',
    url: '/agent/v1/images/:digest',
    config: { action: 'agent:image' },
    schema: {
      summary: 'a verified image from the conductor\'s caching proxy (images.downloadSource: local); only for a host with a live agent session',
      params: Type.Object({ digest: Type.String({ pattern: '^([0-9a-f]{64}|[0-9a-f]{128})$' }) }),
      response: errorResponses(401, 403, 404),
    },
    handler: async (request, reply) => {
      // The session check is the point: only a host that booted the agent may read images.
      const ctx = await agentContext(request);
      const { digest } = request.params as { digest: string };
      // Bound to a deploy: the agent names the command it runs, which must be this host's
      // unfinished deploy of this very image. A live agent of another host (another tenant)
      // cannot read images it was not asked to deploy.
      const commandId = request.headers[IMAGE_COMMAND_HEADER];
      const command = typeof commandId === 'string' && commandId.length <= 128 ? await store.getAgentCommand(commandId) : undefined;
      if (!command || command.hostUid !== ctx.hostUid) {
        if (command) securityWarning(request, 'agent asked for an image with another host\'s command', { ...sessionFields(ctx), commandHost: command.hostUid });
        throw new IngotError('INGOT_ERR_FORBIDDEN', `images are served only for a deploy command of this host: send the command id in the ${IMAGE_COMMAND_HEADER} header`);
      }
      const deployed = (command.request as { deploy?: { image?: { checksum?: string } } }).deploy?.image?.checksum?.toLowerCase();
      if (command.kind !== 'deploy' || command.state === 'done' || command.state === 'failed' || deployed !== digest) {
        securityWarning(request, 'agent asked for an image its command does not deploy', { ...sessionFields(ctx), commandId: command.id });
        throw new IngotError('INGOT_ERR_FORBIDDEN', 'this command is not an unfinished deploy of that image');
      }
      const key = cacheKeyOfHex(digest);
      const path = key && options.imageCacheDir ? join(options.imageCacheDir, key) : undefined;
      const handle = path ? await open(path, 'r').catch(() => undefined) : undefined;
      if (!handle) throw new IngotError('INGOT_ERR_NOT_FOUND', `image ${digest.slice(0, 16)}… is not in the conductor's image cache (it may have been evicted); the conductor fetches it again when the deploy is retried`);
      let size: number;
      try {
        size = (await handle.stat()).size;
      } catch (err) {
        await handle.close();
        throw err;
      }
      const t = new Date(now());
      await utimes(path!, t, t).catch(() => {}); // a use, for the cache's LRU order
      let start = 0;
      let end = size - 1;
      const range = request.headers.range;
      if (typeof range === 'string') {
        // RFC 9110 §14.2: one bytes range; anything else is served whole.
        const m = /^bytes=(\d*)-(\d*)$/.exec(range.trim());
        if (m && (m[1] !== '' || m[2] !== '')) {
          if (m[1] === '') start = Math.max(0, size - Number(m[2]));
          else {
            start = Number(m[1]);
            if (m[2] !== '') end = Math.min(end, Number(m[2]));
          }
          if (start >= size || start > end) {
            // Unsatisfiable: a server may ignore Range (RFC 9110 §14.2), so send the whole image.
            start = 0;
            end = size - 1;
          } else void reply.code(206).header('content-range', `bytes ${start}-${end}/${size}`);
        }
      }
      log.info({ ...sessionFields(ctx), image: key, bytes: end - start + 1 }, 'image served to agent');
      void reply
        .header('content-type', 'application/octet-stream')
        .header('content-length', String(end - start + 1))
        .header('accept-ranges', 'bytes')
        .header('cache-control', 'no-store');
      return reply.send(handle.createReadStream({ start, end, autoClose: true }));
    },
  });
  return app;
}
