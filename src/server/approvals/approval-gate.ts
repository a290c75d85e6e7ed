// The two-person rule. A preHandler hook (after authentication, authorization and
// body validation) holds a host change instead of running it when either
//   - the policy allows the action only with approval:required (access-control.ts marks the
//     request), or
//   - it is destructive (host delete; a PATCH/PUT that removes spec.image, i.e. deprovisions,
//     replaces it with another image, i.e. re-images, or powers off a provisioned host) and `destructiveThreshold` destructive changes, from
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
import { IngotError, validationError } from '../../model/errors.js';
import type { Store, StoredApproval, StoredResource } from '../../store/store.js';
import { actorOf, auditTarget } from '../auth/access-control.js';
import { isRouteAction, PUBLIC, type Action } from '../auth/policy.js';
import type { AuditWriter } from '../audit/audit-writer.js';
import { HostInput, type HostSpec } from '../../model/host.js';
import { admitHost } from '../admission/host-admission.js';
import { patchedHost, type HostPatchBody, type PatchedHost } from '../host-patch.js';
import { humanizeSchemaErrors, type SchemaError } from '../validation-messages.js';

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

  readonly #allowMd5Checksums: boolean;

  constructor(options: { store: Store; config?: Partial<ApprovalConfig>; now?: () => number; audit?: AuditWriter; allowMd5Checksums?: boolean }) {
    this.config = { ...DEFAULT_APPROVAL_CONFIG, ...(options.config ?? {}) };
    this.#allowMd5Checksums = options.allowMd5Checksums ?? false;
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
      const change = await this.#proposedChange(action, request);
      const destructive = action === 'host:delete' || alwaysHeld || (change !== undefined && isDestructiveChange(change.existing, change.spec));
      if (!request.approvalRequired && !destructive) return;
      // Only a change that would run may be held: an invalid one is refused now, not approved
      // later and then refused (nor does it take a place in the destructive window).
      if (action !== 'host:delete' && !alwaysHeld) await this.#validate(request, change);
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
        // The person, not the token: approving with another token of the same person is refused.
        requestedBy: identity.principal,
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

  /** What a host:update would make of the stored host (undefined for creates and unknown hosts). */
  async #proposedChange(action: Action, request: FastifyRequest): Promise<ProposedChange | undefined> {
    if (action !== 'host:update') return undefined;
    const name = (request.params as { name?: unknown }).name;
    if (typeof name !== 'string') return undefined;
    const existing = await this.#store.get({ kind: 'Host', project: '', name });
    if (!existing) return undefined;
    const body = (request.body ?? {}) as HostPatchBody;
    if (request.method === 'PATCH') {
      const next = patchedHost(existing, body);
      return { existing, next, spec: next.spec };
    }
    return { existing, spec: body.spec };
  }

  /** The checks the route itself makes before writing: the merged document's schema, then admission. */
  async #validate(request: FastifyRequest, change: ProposedChange | undefined): Promise<void> {
    let document = request.body as { metadata?: unknown; spec?: unknown } | undefined;
    if (change?.next) {
      const validate = request.compileValidationSchema(HostInput, 'body');
      if (!validate(change.next)) throw validationError(humanizeSchemaErrors((validate.errors ?? []) as SchemaError[]));
      document = change.next;
    }
    if (document?.spec !== undefined) {
      await admitHost(this.#store, { metadata: (document.metadata ?? {}) as never, spec: document.spec as HostSpec }, { allowMd5Checksums: this.#allowMd5Checksums });
    }
  }
}

interface ProposedChange {
  existing: StoredResource;
  /** The merged document of a PATCH. */
  next?: PatchedHost;
  spec: unknown;
}

/**
 * Destructive: deprovisioning (spec.image removed), re-imaging (spec.image replaced by another
 * image: the disk is rewritten), or powering off a provisioned host.
 */
function isDestructiveChange(existing: StoredResource, nextSpec: unknown): boolean {
  const spec = (nextSpec !== null && typeof nextSpec === 'object' ? nextSpec : {}) as Record<string, unknown>;
  const before = existing.spec.image as { url?: unknown; checksum?: unknown } | undefined | null;
  const after = spec.image as { url?: unknown; checksum?: unknown } | undefined | null;
  const hadImage = before !== undefined && before !== null;
  const deprovisions = hadImage && (after === undefined || after === null);
  const reimages = hadImage && after !== undefined && after !== null && (after.url !== before.url || after.checksum !== before.checksum);
  const state = (existing.status as { provisioning?: { state?: unknown } }).provisioning?.state;
  const powersOff = state === 'provisioned' && existing.spec.online === true && spec.online !== true;
  return deprovisions || reimages || powersOff;
}

function nameFromBody(body: unknown): string {
  const name = (body as { metadata?: { name?: unknown } } | undefined)?.metadata?.name;
  return typeof name === 'string' ? name.slice(0, 253) : '';
}
