// /api/v1/ippools: static address pools (docs/tenancy.md), and
// /api/v1/ippools/:name/addresses, the IPAddress allocations made from a pool for claims.
// A pool's ranges may change only while every allocated address stays inside them; a pool
// with allocations cannot be deleted.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { API_VERSION, Name } from '../../model/envelope.js';
import { IngotError, notFound } from '../../model/errors.js';
import { parseIp } from '../../model/ip-address.js';
import { inPoolRanges, IpPoolSpec, parseIpPoolSpec, type IpPoolSpec as Spec } from '../../model/ip-pool.js';
import type { ApiContext } from '../api-context.js';
import { documented, errorResponses } from '../schemas.js';
import { resourceRoutes } from './resource-routes.js';

export function ipPoolRoutes(ctx: ApiContext) {
  return resourceRoutes<Spec>(ctx, {
    kind: 'IPPool',
    plural: 'ippools',
    prefix: 'ippool',
    scope: 'platform',
    noun: 'an IP pool',
    specSchema: IpPoolSpec,
    deletion: 'remove',
    initialStatus: () => ({}),
    admit: async (tx, request) => {
      const parsed = parseIpPoolSpec(request.spec);
      if (request.existing) {
        const outside = (await tx.listAllocations(request.existing.uid)).filter((a) => {
          const ip = parseIp(a.address);
          return !ip || !inPoolRanges(parsed, ip);
        });
        if (outside.length > 0) {
          throw new IngotError(
            'INGOT_ERR_CONFLICT',
            `spec.ranges: ${outside.length} allocated address${outside.length > 1 ? 'es' : ''} (${outside.slice(0, 5).map((a) => a.address).join(', ')}) would fall outside the new ranges; release those claims first`,
          );
        }
      }
    },
    checkDelete: async (tx, existing) => {
      const held = await tx.listAllocations(existing.uid);
      if (held.length > 0) {
        throw new IngotError('INGOT_ERR_CONFLICT', `IPPool "${existing.name}" has ${held.length} allocated address${held.length > 1 ? 'es' : ''}; release the claims holding them first`);
      }
    },
  });
}

const AddressList = Type.Object({
  apiVersion: Type.Literal(API_VERSION),
  kind: Type.Literal('IPAddressList'),
  items: Type.Array(
    Type.Object({
      address: Type.String(),
      family: Type.Integer(),
      prefix: Type.Integer(),
      claim: Type.Object({ project: Type.String(), name: Type.String(), uid: Type.String() }),
      createdAt: Type.String(),
    }),
  ),
});

export function ipAddressRoutes(ctx: ApiContext): FastifyPluginAsyncTypebox {
  return async function ipAddressRoutesPlugin(app) {
    app.route({
      method: 'GET',
      url: '/api/v1/ippools/:name/addresses',
      config: { action: 'ippool:get' },
      schema: {
        summary: "A pool's allocated addresses (IPAddress), in address order, with the claim holding each",
        tags: ['ippools'],
        params: Type.Object({ name: Name }, { additionalProperties: false }),
        response: documented({ 200: AddressList, ...errorResponses(404) }),
      },
      handler: async (request) => {
        const pool = await ctx.store.get({ kind: 'IPPool', project: '', name: request.params.name });
        if (!pool) throw notFound('IPPool', request.params.name);
        const allocations = await ctx.store.listAllocations(pool.uid);
        const items = [];
        for (const a of allocations) {
          const claim = await ctx.store.getByUid(a.claimUid);
          items.push({
            address: a.address,
            family: a.family,
            prefix: Number(pool.spec.prefix),
            claim: { project: claim?.project ?? '', name: claim?.name ?? '', uid: a.claimUid },
            createdAt: a.createdAt,
          });
        }
        return { apiVersion: API_VERSION, kind: 'IPAddressList', items };
      },
    });
  };
}
