// POST /api/v1/secrets/-/rekey: make a new secret key current and re-seal every secret value
// under it (src/store/secret-rekey.ts), while the server keeps serving. The key lives on the
// server (DATA_DIR/secrets.key), so the operation runs here; the answer holds counts and key
// ids, never a value or a key. `-` cannot be a Secret name (names are DNS labels), so the path
// never shadows a secret.
import type { FastifyInstance } from 'fastify';
import { Type, type Static } from 'typebox';
import { IngotError } from '../../model/errors.js';
import { rekeySecrets } from '../../store/secret-rekey.js';
import type { ApiContext } from '../api-context.js';
import { documented, errorResponses } from '../schemas.js';

export const RekeyRequest = Type.Object(
  {
    retireOld: Type.Optional(Type.Boolean({ description: 'after re-sealing, delete previous keys that no secret value references' })),
    retireOnly: Type.Optional(Type.Boolean({ description: 'do not rotate; only delete previous keys that no secret value references' })),
    batchSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'secret values re-sealed per transaction (default 50)' })),
  },
  { additionalProperties: false },
);
export type RekeyRequest = Static<typeof RekeyRequest>;

const RekeyResponse = Type.Object({
  keyId: Type.String(),
  previousKeyId: Type.Optional(Type.String()),
  rows: Type.Integer(),
  moved: Type.Integer(),
  remaining: Type.Integer(),
  previousKeyIds: Type.Array(Type.String()),
  retiredKeyIds: Type.Array(Type.String()),
  message: Type.String(),
});

export function registerSecretRekeyRoute(app: FastifyInstance, ctx: ApiContext): void {
  app.route<{ Body: RekeyRequest | undefined }>({
    method: 'POST',
    url: '/api/v1/secrets/-/rekey',
    config: { action: 'secret:rekey' },
    schema: {
      summary: 'Rotate the secret key and re-seal every secret value under the new one (no values returned)',
      tags: ['secrets'],
      body: Type.Optional(RekeyRequest),
      response: documented({ 200: RekeyResponse, ...errorResponses(409, 501) }) as Record<number, object>,
    },
    handler: async (request) => {
      const body = request.body ?? {};
      if (!ctx.secretBox.rotatable) {
        throw new IngotError('INGOT_ERR_NOT_IMPLEMENTED', 'this server holds its secret key in memory only (no key file), so it cannot rotate it; run the server with a key file (--data-dir or keyFile)');
      }
      if (body.retireOld && body.retireOnly) {
        throw new IngotError('INGOT_ERR_VALIDATION', 'retireOld and retireOnly cannot both be set: retireOnly does not rotate; choose one');
      }
      return rekeySecrets(ctx.store, ctx.secretBox, {
        ...(body.retireOld ? { retireOld: true } : {}),
        ...(body.retireOnly ? { retireOnly: true } : {}),
        ...(body.batchSize ? { batchSize: body.batchSize } : {}),
      });
    },
  });
}
