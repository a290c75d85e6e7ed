// /api/v1/approvals: the two-person rule's pending changes (approvals/approval-gate.ts).
// Approving replays the held request through the whole API path (authentication, policy,
// validation, admission, audit) with the approver's credentials, so the approver must be
// allowed the original action; the gate lets that one replay through by its nonce.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { API_VERSION } from '../../model/envelope.js';
import { IngotError } from '../../model/errors.js';
import type { ApprovalState, Store, StoredApproval } from '../../store/store.js';
import { ACTIONS, isAllowed, isAllowedWithApproval, type Action, type Policy } from '../auth/policy.js';
import { APPROVAL_EXECUTION_HEADER, approvalResource, type ApprovalGate } from '../approvals/approval-gate.js';
import { documented, errorResponses } from '../schemas.js';

const STATES = ['pending', 'approved', 'rejected', 'expired', 'executed'] as const;

const IdParams = Type.Object({ id: Type.String({ pattern: '^[0-9a-f-]{36}$', description: 'the approval id' }) }, { additionalProperties: false });
const ListQuery = Type.Object(
  { state: Type.Optional(Type.Enum([...STATES])), limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })) },
  { additionalProperties: false },
);
const DecisionBody = Type.Union([
  Type.Object({ reason: Type.Optional(Type.String({ maxLength: 1024, description: 'why (recorded with the decision)' })) }, { additionalProperties: false }),
  Type.Null(),
]);

export function approvalRoutes(options: { store: Store; policy: Policy; gate: ApprovalGate }): FastifyPluginAsyncTypebox {
  const { store, policy, gate } = options;

  /** Marks a pending approval past its expiry as expired; returns it as stored. */
  async function expireIfDue(a: StoredApproval): Promise<StoredApproval> {
    if (a.state !== 'pending' || Date.parse(a.expiresAt) > gate.now()) return a;
    return (await store.transitionApproval(a.id, 'pending', { state: 'expired', decidedAt: new Date(gate.now()).toISOString() })) ?? (await store.getApproval(a.id)) ?? a;
  }

  async function pendingOrThrow(id: string): Promise<StoredApproval> {
    const found = await store.getApproval(id);
    if (!found) throw new IngotError('INGOT_ERR_NOT_FOUND', `Approval "${id}" does not exist; check the id with \`ingot approval list\``);
    const a = await expireIfDue(found);
    if (a.state === 'expired') {
      throw new IngotError('INGOT_ERR_CONFLICT', `Approval "${id}" expired at ${a.expiresAt} and can no longer be decided; ask the requester to repeat the change`);
    }
    if (a.state !== 'pending') throw new IngotError('INGOT_ERR_CONFLICT', `Approval "${id}" is ${a.state}${a.decidedBy ? ` (by ${a.decidedBy})` : ''}, not pending; only a pending approval can be decided`);
    return a;
  }

  return async function approvalRoutesPlugin(app) {
    app.route({
      method: 'GET',
      url: '/api/v1/approvals',
      config: { action: 'approval:list' },
      schema: { summary: 'List approvals (held changes), newest first', tags: ['approvals'], querystring: ListQuery, response: documented({ ...errorResponses() }) },
      handler: async (request) => {
        const q = request.query;
        const listed = await store.listApprovals({ ...(q.state ? { state: q.state as ApprovalState } : {}), ...(q.limit !== undefined ? { limit: q.limit } : {}) });
        const items: StoredApproval[] = [];
        for (const a of listed) items.push(await expireIfDue(a));
        return { apiVersion: API_VERSION, kind: 'ApprovalList', items: items.filter((a) => !q.state || a.state === q.state).map(approvalResource) };
      },
    });

    app.route({
      method: 'POST',
      url: '/api/v1/approvals/:id/approve',
      config: { action: 'approval:approve' },
      schema: {
        summary: "Approve someone else's held change; it then runs with your authority",
        tags: ['approvals'],
        params: IdParams,
        body: Type.Optional(DecisionBody),
        response: documented({ ...errorResponses(403, 404, 409) }),
      },
      handler: async (request, reply) => {
        const identity = request.identity!;
        const a = await pendingOrThrow(request.params.id);
        // requestedBy is the requester's principal (the person behind the token); approvals
        // held before principals were kept name the token, which is also checked.
        if (a.requestedBy === identity.principal || a.requestedBy === identity.tokenId) {
          const how = identity.principal !== identity.tokenId && a.requestedBy === identity.principal ? ' with another token of the same person' : '';
          throw new IngotError(
            'INGOT_ERR_FORBIDDEN',
            `you cannot approve your own request${how} (Approval "${a.id}" was requested by ${a.requestedBy}, and your token acts for ${identity.principal}); a different person must approve it`,
          );
        }
        const action = a.action as Action;
        if (!(action in ACTIONS) || !(isAllowed(policy, identity.roles, action) || isAllowedWithApproval(policy, identity.roles, action))) {
          throw new IngotError('INGOT_ERR_FORBIDDEN', `you may not approve Approval "${a.id}": your roles (${identity.roles.join(', ') || 'none'}) are not allowed ${a.action} themselves`);
        }
        const reason = request.body?.reason;
        const approved = await store.transitionApproval(a.id, 'pending', {
          state: 'approved',
          decidedBy: identity.principal,
          decidedAt: new Date(gate.now()).toISOString(),
          ...(reason !== undefined ? { reason } : {}),
        });
        if (!approved) throw new IngotError('INGOT_ERR_CONFLICT', `Approval "${a.id}" was decided by someone else meanwhile; see \`ingot approval list\``);
        const nonce = gate.issueNonce(a.id);
        let result: { statusCode: number; body: unknown };
        try {
          const response = await app.inject({
            method: a.request.method as 'DELETE' | 'PATCH' | 'PUT' | 'POST',
            url: a.request.path,
            headers: {
              ...(request.headers.authorization ? { authorization: request.headers.authorization } : {}),
              [APPROVAL_EXECUTION_HEADER]: nonce,
              ...(a.request.body !== undefined ? { 'content-type': 'application/json' } : {}),
            },
            ...(a.request.body !== undefined ? { payload: JSON.stringify(a.request.body) } : {}),
          });
          let body: unknown = response.body;
          try {
            body = JSON.parse(response.body);
          } catch {
            /* not JSON */
          }
          result = { statusCode: response.statusCode, body };
        } finally {
          gate.releaseNonce(nonce);
        }
        const ok = result.statusCode < 400;
        const final = ok
          ? await store.transitionApproval(a.id, 'approved', { state: 'executed' })
          : await store.transitionApproval(a.id, 'approved', { state: 'approved', reason: `${reason ? `${reason}; ` : ''}running it failed with HTTP ${result.statusCode}`.slice(0, 1024) });
        return reply.code(ok ? 200 : 409).send({ ...approvalResource(final ?? approved), result });
      },
    });

    app.route({
      method: 'POST',
      url: '/api/v1/approvals/:id/reject',
      config: { action: 'approval:reject' },
      schema: {
        summary: 'Reject a held change (the requester may withdraw their own)',
        tags: ['approvals'],
        params: IdParams,
        body: Type.Optional(DecisionBody),
        response: documented({ ...errorResponses(404, 409) }),
      },
      handler: async (request) => {
        const a = await pendingOrThrow(request.params.id);
        const reason = request.body?.reason;
        const rejected = await store.transitionApproval(a.id, 'pending', {
          state: 'rejected',
          decidedBy: request.identity!.principal,
          decidedAt: new Date(gate.now()).toISOString(),
          ...(reason !== undefined ? { reason } : {}),
        });
        if (!rejected) throw new IngotError('INGOT_ERR_CONFLICT', `Approval "${a.id}" was decided by someone else meanwhile; see \`ingot approval list\``);
        return approvalResource(rejected);
      },
    });
  };
}
