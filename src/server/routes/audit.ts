// /api/v1/audit: read and verify the audit trail (the store's hash-chained events).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { AUDIT_OUTCOMES } from '../../model/audit-event.js';
import type { Store } from '../../store/store.js';
import { verifyStoredAuditChain } from '../audit/audit-hash.js';
import { documented, errorResponses } from '../schemas.js';

const MAX_PAGE = 1000;

const ListQuery = Type.Object(
  {
    afterSeq: Type.Optional(Type.Integer({ minimum: 0, description: 'only events after this seq (paging forward)' })),
    beforeSeq: Type.Optional(Type.Integer({ minimum: 1, description: 'only events before this seq (paging backward, order desc)' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_PAGE })),
    order: Type.Optional(Type.Enum(['asc', 'desc'])),
    actor: Type.Optional(Type.String({ maxLength: 300 })),
    action: Type.Optional(Type.String({ maxLength: 100 })),
    outcome: Type.Optional(Type.Enum([...AUDIT_OUTCOMES])),
  },
  { additionalProperties: false },
);

export function auditRoutes(options: { store: Store }): FastifyPluginAsyncTypebox {
  const { store } = options;
  return async function auditRoutesPlugin(app) {
    app.route({
      method: 'GET',
      url: '/api/v1/audit',
      config: { action: 'audit:list' },
      schema: { summary: 'List audit events', tags: ['audit'], querystring: ListQuery, response: documented({ ...errorResponses() }) },
      handler: async (request) => {
        const q = request.query;
        const limit = q.limit ?? 100;
        const items = await store.listAuditEvents({
          limit,
          ...(q.afterSeq !== undefined ? { afterSeq: q.afterSeq } : {}),
          ...(q.beforeSeq !== undefined ? { beforeSeq: q.beforeSeq } : {}),
          ...(q.order ? { order: q.order as 'asc' | 'desc' } : {}),
          ...(q.actor ? { actor: q.actor } : {}),
          ...(q.action ? { action: q.action } : {}),
          ...(q.outcome ? { outcome: q.outcome as (typeof AUDIT_OUTCOMES)[number] } : {}),
        });
        return { items };
      },
    });

    app.route({
      method: 'GET',
      url: '/api/v1/audit/verify',
      config: { action: 'audit:verify' },
      schema: { summary: "Verify the audit trail's hash chain (names the first bad event)", tags: ['audit'], response: documented({ ...errorResponses() }) },
      handler: async () => verifyStoredAuditChain(store),
    });
  };
}
