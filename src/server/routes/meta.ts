// Discovery and health. /healthz and /readyz are the only unauthenticated routes of the public
// API (load balancers and orchestrators probe them without credentials); they answer nothing
// but "ok" or which dependency is down.
import type { FastifyInstance } from 'fastify';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { IngotError } from '../../model/errors.js';
import type { Store } from '../../store/store.js';
import { errorResponses } from '../schemas.js';

const Ok = Type.Object({ status: Type.Literal('ok') });

/** /healthz: the process is up and serving. Shared by the public and agent listeners. */
export function registerHealthz(app: FastifyInstance): void {
  app.route({
    method: 'GET',
    url: '/healthz',
    config: { action: 'public' },
    schema: { summary: 'Liveness: the process serves requests', tags: ['meta'], security: [], response: { 200: Ok } },
    handler: async () => ({ status: 'ok' as const }),
  });
}

export function metaRoutes(ctx: { store: Store; openapi: () => unknown }): FastifyPluginAsyncTypebox {
  return async function metaRoutesPlugin(app) {
    registerHealthz(app);

    app.route({
      method: 'GET',
      url: '/readyz',
      config: { action: 'public' },
      schema: { summary: 'Readiness: the database answers', tags: ['meta'], security: [], response: { 200: Ok, 503: errorResponses()[400] } },
      handler: async (request) => {
        try {
          await ctx.store.getSetting('readyz.probe');
        } catch (err) {
          request.log.warn({ err }, 'readyz: database check failed');
          throw new IngotError('INGOT_ERR_UNAVAILABLE', 'the database does not answer; see the server log');
        }
        return { status: 'ok' as const };
      },
    });

    app.route({
      method: 'GET',
      url: '/api/openapi.json',
      config: { action: 'api:discover' },
      schema: { summary: 'This API as an OpenAPI 3 document', tags: ['meta'] },
      handler: async () => ctx.openapi(),
    });
  };
}
