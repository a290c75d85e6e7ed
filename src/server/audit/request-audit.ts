// Records every write to the public API (POST, PUT, PATCH, DELETE) and every use of an
// always-audited read (secret:reveal) once its outcome is known: who (token id and
// description, roles), from where, which request, which action on which target, the outcome,
// and the fields the request sent, redacted (redact.ts: secret-bearing fields show only that
// they changed). Denials and authentication failures are recorded by access-control.ts.
//
// The event is appended in onSend, before the answer leaves, and awaited; if it cannot be
// stored the failure is logged at error level. The write itself has already committed by
// then: joining the two in one transaction (AuditWriter.appendIn) needs the route handlers'
// help and is left for later.
import type { FastifyInstance } from 'fastify';
import { actorOf, auditTarget } from '../auth/access-control.js';
import { isRouteAction, PUBLIC, type Action } from '../auth/policy.js';
import type { AuditWriter } from './audit-writer.js';
import { redactChanges } from './redact.js';

const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
/** Reads that are audited like writes. */
export const AUDITED_READS: ReadonlySet<Action> = new Set<Action>(['secret:reveal']);

export function installRequestAudit(app: FastifyInstance, options: { audit: AuditWriter }): void {
  app.addHook('onSend', async (request, reply, payload) => {
    const action = request.routeOptions.config?.action;
    const identity = request.identity;
    // Unauthenticated or refused requests never get an identity; access control recorded them.
    if (!identity || action === undefined || action === PUBLIC || !isRouteAction(action)) return payload;
    if (!WRITE_METHODS.has(request.method) && !AUDITED_READS.has(action)) return payload;
    // Held for a second person: the approval gate recorded approval:request; nothing ran.
    if (request.heldForApproval !== undefined) return payload;
    const status = reply.statusCode;
    const target = auditTarget(action, request);
    if (!target.name && request.method === 'POST') target.name = createdName(request.body, payload);
    let reason = '';
    if (status >= 400) reason = errorCode(payload);
    if (request.approvalExecution !== undefined) reason = `${reason ? `${reason}; ` : ''}executes approval ${request.approvalExecution}`;
    try {
      await options.audit.record({
        actor: actorOf(identity),
        roles: identity.roles,
        project: identity.project,
        sourceAddress: request.ip,
        requestId: request.id,
        action,
        target,
        outcome: status < 400 ? 'succeeded' : 'failed',
        reason,
        changes: WRITE_METHODS.has(request.method) && request.body !== undefined ? redactChanges(undefined, request.body) : [],
      });
    } catch (err) {
      request.log.error({ err, action, requestId: request.id }, 'could not record the audit event for this request');
    }
    return payload;
  });
}

function createdName(body: unknown, payload: unknown): string {
  const fromBody = (body as { metadata?: { name?: unknown } } | undefined)?.metadata?.name;
  if (typeof fromBody === 'string') return fromBody.slice(0, 253);
  if (typeof payload === 'string' && payload.length < 64 * 1024) {
    try {
      const parsed = JSON.parse(payload) as { id?: unknown; metadata?: { name?: unknown } };
      if (typeof parsed.metadata?.name === 'string') return parsed.metadata.name.slice(0, 253);
      if (typeof parsed.id === 'string') return parsed.id.slice(0, 253);
    } catch {
      /* not JSON: no name */
    }
  }
  return '';
}

function errorCode(payload: unknown): string {
  if (typeof payload !== 'string' || payload.length > 64 * 1024) return '';
  try {
    const code = (JSON.parse(payload) as { code?: unknown }).code;
    return typeof code === 'string' ? code.slice(0, 100) : '';
  } catch {
    return '';
  }
}
