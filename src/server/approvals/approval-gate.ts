// The two-person rule (issue 5). A preHandler hook (after authentication, authorization and
// body validation) holds a host change instead of running it when either
//   - the policy allows the action only with approval:required (access-control.ts marks the
//     request), or
//   - it is destructive (host delete; a PATCH/PUT that removes spec.image, i.e. deprovisions,
//     or powers off a provisioned host) and `destructiveThreshold` destructive changes, from
//     any identity, already ran in the last `windowSeconds`.
// A held change is stored as a pending Approval (method, path, body: host bodies hold no
// secret values, only references) and answered 202 {kind: 'Approval'}. Another identity
// approves it (routes/approvals.ts); the gate then lets exactly that one replay through,
// recognised by a single-use 256-bit nonce that only this process knows (a client header
// cannot forge it). Approvals are limited to host routes: anything else whose rule says
// approval:required is refused, as before approvals existed.
//
// The destructive-action window is counted in the database (Store.admitWindowedAction, one
// row per change let through), so every server process on one database shares it: N
// processes together allow `destructiveThreshold` per window, not N times that, and a restart
// does not reset it. Times come from the gate's `now` clock.
import { randomBytes, randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { API_VERSION } from '../../model/envelope.js';
import { IngotError } from '../../model/errors.js';
import type { Store, StoredApproval } from '../../store/store.js';
import { actorOf, auditTarget } from '../auth/access-control.js';
import { isRouteAction, PUBLIC, type Action } from '../auth/policy.js';
import type { AuditWriter } from '../audit/audit-writer.js';
import { applyMergePatch } from '../merge-patch.js';

export interface ApprovalConfig {
  /** Destructive changes allowed per window before each further one needs an approval. */
  destructiveThreshold: number;
  windowSeconds: number;
  /** How long a pending approval waits for a decision. */
  ttlSeconds: number;
}

export const DEFAULT_APPROVAL_CONFIG: ApprovalConfig = { destructiveThreshold: 10, windowSeconds: 300, ttlSeconds: 3600 };

/** Internal header carrying the execution nonce of an approved request (never honoured unless this process issued it). */
export const APPROVAL_EXECUTION_HEADER = 'x-ingot-approval-execution';

declare module 'fastify' {
  interface FastifyRequest {
    /** The approval whose execution this request is (set by the gate). */
    approvalExecution?: string;
    /** The approval this request was held for (set by the gate; the request did not run). */
    heldForApproval?: string;
  }
}

/** The Store.admitWindowedAction window shared by every gate on the database. */
export const DESTRUCTIVE_WINDOW_KIND = 'destructive-host-change';

const HOST_WRITE_ACTIONS: ReadonlySet<Action> = new Set<Action>(['host:create', 'host:update', 'host:delete', 'host:force-delete']);

/** Held for a second person every time, whatever the rate and the policy: taking a machine from a tenant. */
const ALWAYS_HELD: ReadonlySet<Action> = new Set<Action>(['host:force-delete']);

export function approvalResource(a: StoredApproval): Record<string, unknown> {
  return {
    apiVersion: API_VERSION,
    kind: 'Approval',
    id: a.id,
    action: a.action,
    target: { kind: a.targetKind, name: a.targetName },
    request: { method: a.request.method, path: a.request.path },
    cause: a.cause,
    state: a.state,
    requestedBy: a.requestedBy,
    requestedAt: a.requestedAt,
    expiresAt: a.expiresAt,
    ...(a.decidedBy !== undefined ? { decidedBy: a.decidedBy } : {}),
    ...(a.decidedAt !== undefined ? { decidedAt: a.decidedAt } : {}),
    ...(a.reason !== undefined ? { reason: a.reason } : {}),
  };
}

export class ApprovalGate {
  readonly config: ApprovalConfig;
  readonly #store: Store;
  readonly #now: () => number;
  readonly #audit: AuditWriter | undefined;
  /** nonce -> approval id, for the one replay each approval gets. */
  readonly #nonces = new Map<string, string>();

  constructor(options: { store: Store; config?: Partial<ApprovalConfig>; now?: () => number; audit?: AuditWriter }) {
    this.config = { ...DEFAULT_APPROVAL_CONFIG, ...(options.config ?? {}) };
    this.#store = options.store;
    this.#now = options.now ?? Date.now;
    this.#audit = options.audit;
  }

  now(): number {
    return this.#now();
  }

  /** A single-use marker for replaying `approvalId`; valid until used or released. */
  issueNonce(approvalId: string): string {
    const nonce = randomBytes(32).toString('base64url');
    this.#nonces.set(nonce, approvalId);
    return nonce;
  }

  releaseNonce(nonce: string): void {
    this.#nonces.delete(nonce);
  }

  install(app: FastifyInstance): void {
    app.addHook('preHandler', async (request, reply) => {
      const action = request.routeOptions.config?.action;
      const identity = request.identity;
      if (!identity || action === undefined || action === PUBLIC || !isRouteAction(action)) return;
      const marker = request.headers[APPROVAL_EXECUTION_HEADER];
      if (marker !== undefined) {
        const approvalId = typeof marker === 'string' ? this.#nonces.get(marker) : undefined;
        if (approvalId === undefined) throw new IngotError('INGOT_ERR_FORBIDDEN', `the ${APPROVAL_EXECUTION_HEADER} header is internal to the server; remove it`);
        this.#nonces.delete(marker as string);
        request.approvalExecution = approvalId;
        return;
      }
      const writesHost = HOST_WRITE_ACTIONS.has(action) && request.method !== 'GET';
      if (request.approvalRequired && !writesHost) {
        throw new IngotError('INGOT_ERR_FORBIDDEN', `action ${action} requires an approval by policy (approval:required), and approvals cover host changes only; ask an operator to change the policy`);
      }
      if (!writesHost) return;
      const alwaysHeld = ALWAYS_HELD.has(action);
      const destructive = await this.#isDestructive(action, request);
      if (!request.approvalRequired && !alwaysHeld && !destructive) return;
      const now = this.#now();
      if (!request.approvalRequired && !alwaysHeld) {
        const windowMs = Math.max(1, Math.round(this.config.windowSeconds * 1000));
        const limit = Math.max(0, Math.floor(this.config.destructiveThreshold));
        if (await this.#store.admitWindowedAction(DESTRUCTIVE_WINDOW_KIND, now, windowMs, limit)) return;
      }
      const target = auditTarget(action, request);
      if (!target.name) target.name = nameFromBody(request.body);
      const cause = alwaysHeld
        ? `${action} always needs a second admin's approval`
        : request.approvalRequired
        ? `the policy rule for ${action} says approval:required`
        : `more than ${this.config.destructiveThreshold} destructive changes within ${this.config.windowSeconds}s`;
      const approval: StoredApproval = {
        id: randomUUID(),
        action,
        targetKind: target.kind,
        targetName: target.name,
        request: { method: request.method, path: request.url.split('?')[0]!, ...(request.body !== undefined ? { body: request.body } : {}) },
        cause,
        requestedBy: identity.tokenId,
        requestedAt: new Date(now).toISOString(),
        expiresAt: new Date(now + this.config.ttlSeconds * 1000).toISOString(),
        state: 'pending',
      };
      await this.#store.createApproval(approval);
      request.heldForApproval = approval.id;
      if (this.#audit) {
        await this.#audit.record({
          actor: actorOf(identity),
          roles: identity.roles,
          project: identity.project,
          sourceAddress: request.ip,
          requestId: request.id,
          action: 'approval:request',
          target: { kind: 'Approval', name: approval.id, project: '' },
          outcome: 'succeeded',
          reason: `held ${action} on ${target.kind} "${target.name}" for approval: ${cause}`.slice(0, 400),
        });
      }
      await reply.code(202).send({
        ...approvalResource(approval),
        message: `${action} on ${target.kind} "${target.name}" was not run: ${cause}. Another admin must run \`ingot approval approve ${approval.id}\` before ${approval.expiresAt}`,
      });
      return reply;
    });
  }

  async #isDestructive(action: Action, request: FastifyRequest): Promise<boolean> {
    if (action === 'host:delete') return true;
    if (action !== 'host:update') return false;
    const name = (request.params as { name?: unknown }).name;
    if (typeof name !== 'string') return false;
    const existing = await this.#store.get({ kind: 'Host', project: '', name });
    if (!existing) return false;
    const body = request.body as { spec?: unknown } | undefined;
    if (body?.spec === undefined) return false;
    const next = (request.method === 'PATCH' ? applyMergePatch(existing.spec, body.spec) : body.spec) as Record<string, unknown> | null;
    const spec = next !== null && typeof next === 'object' ? next : {};
    const deprovisions = existing.spec.image !== undefined && existing.spec.image !== null && (spec.image === undefined || spec.image === null);
    const state = (existing.status as { provisioning?: { state?: unknown } }).provisioning?.state;
    const powersOff = state === 'provisioned' && existing.spec.online === true && spec.online !== true;
    return deprovisions || powersOff;
  }
}

function nameFromBody(body: unknown): string {
  const name = (body as { metadata?: { name?: unknown } } | undefined)?.metadata?.name;
  return typeof name === 'string' ? name.slice(0, 253) : '';
}
