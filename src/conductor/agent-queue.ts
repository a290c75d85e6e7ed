// The real AgentPort: commands for on-host agents go through the database, so any
// server process's agent listener can hand them out and any conductor can poll them.
//
// How the conductor uses it (wiring into the handlers is a later step):
//   1. prepareBoot(host) before powering the host on: ends any earlier session (revoking its
//      token), mints a one-boot agent token (random, stored only as a hash, type 'agent',
//      bound to host.metadata.uid, expiring after tokenTtlMs) and an unguessable boot-medium
//      id, and returns { mediaUrl, token }. For redfish-virtualmedia hosts the handler inserts
//      mediaUrl as virtual CD and boots from it once; the agent listener builds the ISO (boot
//      configuration: agent API URL, CA, token, host uid, boot id) when the BMC fetches it.
//   2. start(host, operationId, request): AgentUnavailable until the agent of the current
//      session has looked up; then enqueues the command once per operation id.
//   3. poll(host, operationId) until done or failed.
//   4. finish(host) when the operation ends or the host powers off: the session ends, its
//      token is revoked and the medium URL answers 404 from then on.
//
// User data: a deploy's config drive carries the tenant's user data, already resolved by the
// conductor. It is sealed with the SecretBox (AES-256-GCM, aad bound to the command id)
// before it is stored, and opened only by the agent listener when it hands the command to
// the host. Storing a reference to the Secret instead would let a rotation or deletion between
// start and dispatch change what the host gets, and would put secret resolution (with its
// scope rules) into the agent listener; sealing keeps exactly what the conductor decided.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { AGENT_TOKEN_PREFIX, commandSealAad, sessionSealAad, type WireDeploy } from '../model/agent-protocol.js';
import type { Host } from '../model/host.js';
import type { SecretBox } from '../store/secret-box.js';
import type { AgentCommand, Store } from '../store/store.js';
import { AgentUnavailable, type AgentPoll, type AgentPort, type AgentStartRequest } from './agent-port.js';
import { systemClock, type Clock } from './clock.js';

const MAX_OPERATION_ID = 128;
export const DEFAULT_AGENT_TOKEN_TTL_MS = 6 * 60 * 60 * 1000;
/** An agent that has not heartbeaten for this long is taken as gone (powered off, crashed). */
export const DEFAULT_AGENT_LOST_AFTER_MS = 5 * 60 * 1000;

export interface AgentQueueOptions {
  store: Store;
  box: SecretBox;
  clock?: Clock;
  /** Lifetime of a one-boot token and its boot medium. */
  tokenTtlMs?: number;
  /** Base URL of the agent API as hosts reach it, e.g. https://10.0.0.1:7386. */
  agentApiUrl: string;
  /** CA (PEM) agents must trust for the agent API and image downloads. */
  caPem?: string;
  agentLostAfterMs?: number;
  /** Image policy passed to agents with each deploy (DESIGN.md "Images"). */
  allowMd5?: boolean;
  requireHttps?: boolean;
}

export interface PreparedBoot {
  /** Agent-listener URL of this boot's ISO: unguessable, dies with the session. */
  mediaUrl: string;
  /** The one-boot token (also inside the medium); never log it. */
  token: string;
  bootId: string;
  expiresAt: number;
}

export interface AgentQueue extends AgentPort {
  prepareBoot(host: Host): Promise<PreparedBoot>;
}

/** SHA-256 hex, the form tokens and boot-medium ids are stored in (src/server/auth/tokens.ts). */
export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

export function generateAgentToken(): string {
  return AGENT_TOKEN_PREFIX + randomBytes(32).toString('base64url');
}


function checkOperationId(operationId: string): void {
  if (typeof operationId !== 'string' || !/^[A-Za-z0-9._:-]{1,128}$/.test(operationId)) {
    throw new RangeError(`agent operation id must be 1-${MAX_OPERATION_ID} characters of A-Z a-z 0-9 . _ : -`);
  }
}

export function createAgentQueue(options: AgentQueueOptions): AgentQueue {
  const { store, box } = options;
  const clock = options.clock ?? systemClock;
  const ttl = options.tokenTtlMs ?? DEFAULT_AGENT_TOKEN_TTL_MS;
  const lostAfter = options.agentLostAfterMs ?? DEFAULT_AGENT_LOST_AFTER_MS;
  const apiUrl = options.agentApiUrl.replace(/\/+$/, '');
  const iso = () => new Date(clock.now()).toISOString();

  function wireRequest(commandId: string, request: AgentStartRequest): Record<string, unknown> {
    switch (request.kind) {
      case 'inspect':
        return {};
      case 'clean':
        if (request.clean.mode !== 'metadata' && request.clean.mode !== 'full') throw new RangeError('clean.mode must be metadata or full');
        return { clean: { mode: request.clean.mode } };
      case 'deploy': {
        const { image, configDrive, rootDeviceHints, eraseFirst } = request.deploy;
        if (!image?.url || !image.checksum) throw new RangeError('a deploy request needs deploy.image with url and checksum');
        const deploy: Omit<WireDeploy, 'configDrive'> & { configDrive?: Record<string, unknown> } = {
          image: { ...image },
          policy: { allowMd5: options.allowMd5 ?? false, requireHttps: options.requireHttps ?? false },
          ...(rootDeviceHints ? { rootDeviceHints } : {}),
          ...(eraseFirst ? { eraseFirst: true } : {}),
        };
        if (configDrive) {
          const { userData, ...rest } = configDrive;
          deploy.configDrive = { ...rest, ...(userData !== undefined ? { userDataSealed: box.seal({ userData }, commandSealAad(commandId)).toString('base64') } : {}) };
        }
        return { deploy };
      }
      default:
        throw new RangeError(`unknown agent operation kind ${JSON.stringify((request as { kind?: unknown }).kind)}`);
    }
  }

  function pollOf(command: AgentCommand, sessionProblem: string | undefined): AgentPoll {
    if (command.state === 'done') {
      const result = command.result ?? {};
      return {
        state: 'done',
        ...(result.inventory ? { inventory: result.inventory as never } : {}),
        ...(typeof result.rootDevice === 'string' ? { rootDevice: result.rootDevice } : {}),
        ...(command.message ? { message: command.message } : {}),
      };
    }
    if (command.state === 'failed') return { state: 'failed', message: command.message || 'the agent reported a failure without a message' };
    if (sessionProblem) return { state: 'failed', message: `the agent was lost before finishing (${sessionProblem}); the operation must start again with a new boot` };
    const message = command.state === 'running' ? command.message : command.state === 'sent' ? 'handed to the agent' : 'waiting for the agent to fetch it';
    return { state: 'running', percent: command.percent, ...(message ? { message } : {}) };
  }

  return {
    async prepareBoot(host) {
      const hostUid = host.metadata.uid;
      const now = clock.now();
      const token = generateAgentToken();
      const mediaId = randomBytes(32).toString('base64url');
      const sessionId = randomUUID();
      const bootId = randomUUID();
      const tokenId = randomUUID();
      const expiresAt = now + ttl;
      await store.transaction(async (tx) => {
        for (const ended of await tx.endAgentSessions(hostUid, new Date(now).toISOString())) await tx.revokeToken(ended.tokenId, new Date(now).toISOString());
        await tx.createToken({
          id: tokenId,
          hash: sha256Hex(token),
          description: `agent token for host ${host.metadata.name}, boot ${bootId}`,
          roles: ['agent'],
          project: '',
          type: 'agent',
          hostUid,
          expiresAt,
          createdAt: new Date(now).toISOString(),
        });
        await tx.createAgentSession({
          id: sessionId,
          hostUid,
          bootId,
          tokenId,
          mediaHash: sha256Hex(mediaId),
          bootConfig: { apiUrl, hostUid, bootId, ...(options.caPem ? { caPem: options.caPem } : {}), ...(host.spec.bootMACAddress ? { bootMacAddress: host.spec.bootMACAddress } : {}) },
          sealedToken: box.seal({ token }, sessionSealAad(sessionId)),
          createdAt: new Date(now).toISOString(),
          expiresAt,
        });
      });
      return { mediaUrl: `${apiUrl}/agent/v1/boot/${mediaId}`, token, bootId, expiresAt };
    },

    async start(host, operationId, request) {
      checkOperationId(operationId);
      const hostUid = host.metadata.uid;
      if (await store.findAgentCommand(hostUid, operationId)) return;
      const session = await store.getActiveAgentSession(hostUid);
      if (!session || session.expiresAt <= clock.now()) throw new AgentUnavailable(`no agent session is open for host ${host.metadata.name}; boot the agent first`);
      if (!session.lookedUpAt) throw new AgentUnavailable(`the agent of host ${host.metadata.name} has not checked in yet`);
      const id = randomUUID();
      await store.createAgentCommand({ id, hostUid, operationId, kind: request.kind, request: wireRequest(id, request), createdAt: iso() });
    },

    async poll(host, operationId) {
      checkOperationId(operationId);
      const command = await store.findAgentCommand(host.metadata.uid, operationId);
      if (!command) return { state: 'failed', message: `agent operation ${operationId} was never started (or was lost with a rebooted agent)` };
      let problem: string | undefined;
      if (command.state !== 'done' && command.state !== 'failed') {
        const session = await store.getActiveAgentSession(host.metadata.uid);
        if (!session) problem = 'its session ended';
        else if (session.expiresAt <= clock.now()) problem = 'its token expired';
        else {
          const seen = Date.parse(session.lastSeenAt ?? session.lookedUpAt ?? session.createdAt);
          if (clock.now() - seen > lostAfter) problem = `no heartbeat for ${Math.round((clock.now() - seen) / 1000)} s`;
        }
      }
      return pollOf(command, problem);
    },

    async finish(host) {
      const at = iso();
      await store.transaction(async (tx) => {
        for (const ended of await tx.endAgentSessions(host.metadata.uid, at)) {
          try {
            await tx.revokeToken(ended.tokenId, at);
          } catch {
            // The token row is gone already: nothing left to revoke.
          }
        }
      });
    },
  };
}
