// GET /api/v1/secrets/:name/reveal: the one route that answers secret values. Its action,
// secret:reveal, is granted to nobody by default (an operator opts in with a policy file), and
// every use is audited like a write (request-audit.ts AUDITED_READS). The answer is marked
// no-store so no cache keeps it.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { notFound } from '../../model/errors.js';
import { readSecretValues } from '../../store/secret-reader.js';
import type { ApiContext } from '../api-context.js';
import { documented, errorResponses, NameParams } from '../schemas.js';

export function secretRevealRoutes(ctx: ApiContext): FastifyPluginAsyncTypebox {
  return async function secretRevealPlugin(app) {
    app.route({
      method: 'GET',
      url: '/api/v1/secrets/:name/reveal',
      config: { action: 'secret:reveal' },
      schema: { summary: "Read a secret's values (denied by default; audited)", tags: ['secrets'], params: NameParams, response: documented({ ...errorResponses(404) }) },
      handler: async (request, reply) => {
        const found = await readSecretValues(ctx.store, ctx.secretBox, { name: request.params.name });
        if (!found) throw notFound('Secret', request.params.name);
        void reply.header('cache-control', 'no-store');
        return { metadata: { name: request.params.name }, version: found.version, stringData: found.values };
      },
    });
  };
}
