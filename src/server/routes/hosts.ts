// /api/v1/hosts: enroll, read, change, watch and delete hosts. Status is the conductor's:
// whatever a client sends under `status` is ignored, and spec changes keep the stored status.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { API_VERSION, Name } from '../../model/envelope.js';
import { conflict, IngotError, notFound, validationError } from '../../model/errors.js';
import { HostInput, initialHostStatus, type HostSpec } from '../../model/host.js';
import { parseLabelSelector } from '../../model/label-selector.js';
import type { StoredResource } from '../../store/store.js';
import { admitHost } from '../admission/host-admission.js';
import { checkReservedMetadata } from '../admission/reserved-metadata.js';
import { authorize } from '../auth/policy.js';
import { parseResourceVersion, toEnvelope, toList } from '../envelope.js';
import { humanizeSchemaErrors, type SchemaError } from '../validation-messages.js';
import { patchedHost } from '../host-patch.js';
import { documented, EventList, errorResponses, HostList, HostResource, NameParams, PageQuery } from '../schemas.js';
import { streamWatch } from '../watch-stream.js';
import type { ApiContext } from '../api-context.js';

const KIND = 'Host';
const PLATFORM = '';

const ListQuery = Type.Object(
  {
    ...PageQuery,
    labelSelector: Type.Optional(Type.String({ maxLength: 4096, description: 'e.g. rack=r1,tier!=gold,gpu,!spare' })),
    watch: Type.Optional(Type.Boolean({ description: 'stream changes as server-sent events instead of listing' })),
    since: Type.Optional(Type.String({ pattern: '^[0-9]{1,18}$', description: 'with watch: resume after this change id (the SSE id)' })),
  },
  { additionalProperties: false },
);

const EventsQuery = Type.Object(
  {
    afterId: Type.Optional(Type.Integer({ minimum: 0, description: 'only events after this id' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
  },
  { additionalProperties: false },
);

/** RFC 7386 merge patch over the writable parts of a host; the merged result is validated as a whole. */
const HostPatch = Type.Object(
  {
    apiVersion: Type.Optional(Type.Literal(API_VERSION)),
    kind: Type.Optional(Type.Literal(KIND)),
    metadata: Type.Optional(
      Type.Object(
        {
          name: Type.Optional(Name),
          labels: Type.Optional(Type.Union([Type.Record(Type.String(), Type.Union([Type.String({ maxLength: 63 }), Type.Null()])), Type.Null()])),
          annotations: Type.Optional(Type.Union([Type.Record(Type.String(), Type.Union([Type.String({ maxLength: 4096 }), Type.Null()])), Type.Null()])),
          resourceVersion: Type.Optional(Type.String({ pattern: '^[0-9]{1,18}$', description: 'if given, must still be current (409 otherwise)' })),
        },
        { additionalProperties: false },
      ),
    ),
    spec: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'merged into the current spec; null deletes a field' })),
    status: Type.Optional(Type.Unknown({ description: 'ignored: status is owned by the conductor' })),
  },
  { additionalProperties: false },
);

export function hostRoutes(ctx: ApiContext): FastifyPluginAsyncTypebox {
  const { store, policy } = ctx;
  const admission = { allowMd5Checksums: policy.allowMd5Checksums };

  return async function hostRoutesPlugin(app) {
    app.route({
      method: 'GET',
      url: '/api/v1/hosts',
      config: { action: 'host:list' },
      schema: {
        summary: 'List hosts, or watch them (?watch=true: server-sent events of {type, object})',
        tags: ['hosts'],
        querystring: ListQuery,
        response: documented({ 200: HostList, ...errorResponses() }),
      },
      handler: async (request, reply) => {
        const q = request.query;
        const selector = q.labelSelector ? parseLabelSelector(q.labelSelector) : [];
        if (q.watch) {
          const lastEventId = request.headers['last-event-id'];
          const resume = typeof lastEventId === 'string' && lastEventId !== '' ? lastEventId : q.since;
          if (resume !== undefined && !/^[0-9]{1,18}$/.test(resume)) {
            throw validationError([{ field: 'Last-Event-ID', message: 'must be the id of an event this server sent (a whole number)' }]);
          }
          await streamWatch(request, reply, ctx.watches, {
            store,
            kind: KIND,
            project: PLATFORM,
            selector,
            ...(resume !== undefined ? { since: Number(resume) } : {}),
            heartbeatMs: ctx.watchHeartbeatMs,
            pollMs: ctx.watchPollMs,
          });
          return reply;
        }
        const page = await store.list({
          kind: KIND,
          project: PLATFORM,
          labelSelector: selector,
          ...(q.limit !== undefined ? { limit: q.limit } : {}),
          ...(q.continue ? { continue: q.continue } : {}),
        });
        return toList(KIND, page.items.map(toEnvelope), page.continue);
      },
    });

    app.route({
      method: 'POST',
      url: '/api/v1/hosts',
      config: { action: 'host:create' },
      schema: {
        summary: 'Enroll a host',
        tags: ['hosts'],
        body: HostInput,
        response: documented({ 201: HostResource, ...errorResponses(409, 413, 415, 422) }),
      },
      handler: async (request, reply) => {
        const body = request.body;
        checkReservedMetadata(request.identity!, { labels: {}, annotations: {} }, { labels: body.metadata.labels ?? {}, annotations: body.metadata.annotations ?? {} });
        const created = await store.transaction(async (tx) => {
          await admitHost(tx, body, admission);
          return tx.create({
            kind: KIND,
            project: PLATFORM,
            name: body.metadata.name,
            labels: body.metadata.labels ?? {},
            annotations: body.metadata.annotations ?? {},
            spec: body.spec as Record<string, unknown>,
            status: initialHostStatus(body.spec) as unknown as Record<string, unknown>,
          });
        });
        return reply.code(201).header('location', `/api/v1/hosts/${created.name}`).send(toEnvelope(created));
      },
    });

    app.route({
      method: 'GET',
      url: '/api/v1/hosts/:name',
      config: { action: 'host:get' },
      schema: { summary: 'Read a host', tags: ['hosts'], params: NameParams, response: documented({ 200: HostResource, ...errorResponses(404) }) },
      handler: async (request) => {
        const host = await store.get({ kind: KIND, project: PLATFORM, name: request.params.name });
        if (!host) throw notFound(KIND, request.params.name);
        return toEnvelope(host);
      },
    });

    // Create-or-replace, for `ingot apply`. The route's action is host:update; when the host
    // does not exist yet, host:create is checked as well (same authorize function), so a role
    // allowed to update but not to enroll cannot enroll through PUT.
    app.route({
      method: 'PUT',
      url: '/api/v1/hosts/:name',
      config: { action: 'host:update' },
      schema: {
        summary: 'Create or replace a host (labels, annotations and spec; status is kept)',
        tags: ['hosts'],
        params: NameParams,
        body: HostInput,
        response: documented({ 200: HostResource, 201: HostResource, ...errorResponses(409, 413, 415, 422) }),
      },
      handler: async (request, reply) => {
        const { name } = request.params;
        const body = request.body;
        if (body.metadata.name !== name) {
          throw validationError([{ field: 'metadata.name', message: `is "${body.metadata.name}" but the URL names "${name}"; they must be equal` }]);
        }
        const expected = parseResourceVersion(body.metadata.resourceVersion);
        const result = await store.transaction(async (tx) => {
          const existing = await tx.get({ kind: KIND, project: PLATFORM, name });
          if (!existing) {
            authorize(policy, request.identity!, 'host:create');
            if (expected !== undefined) {
              throw new IngotError('INGOT_ERR_CONFLICT', `Host "${name}" does not exist, but metadata.resourceVersion ${expected} was given; remove metadata.resourceVersion to create it`);
            }
            checkReservedMetadata(request.identity!, { labels: {}, annotations: {} }, { labels: body.metadata.labels ?? {}, annotations: body.metadata.annotations ?? {} });
            await admitHost(tx, body, admission);
            const created = await tx.create({
              kind: KIND,
              project: PLATFORM,
              name,
              labels: body.metadata.labels ?? {},
              annotations: body.metadata.annotations ?? {},
              spec: body.spec as Record<string, unknown>,
              status: initialHostStatus(body.spec) as unknown as Record<string, unknown>,
            });
            return { created: true, host: created };
          }
          checkWritable(existing, expected);
          checkReservedMetadata(request.identity!, existing, { labels: body.metadata.labels ?? {}, annotations: body.metadata.annotations ?? {} });
          await admitHost(tx, body, admission);
          const updated = await tx.replace({
            ...existing,
            labels: body.metadata.labels ?? {},
            annotations: body.metadata.annotations ?? {},
            spec: body.spec as Record<string, unknown>,
          });
          return { created: false, host: updated };
        });
        return reply.code(result.created ? 201 : 200).send(toEnvelope(result.host));
      },
    });

    app.route({
      method: 'PATCH',
      url: '/api/v1/hosts/:name',
      config: { action: 'host:update' },
      schema: {
        summary: 'Change a host with a JSON merge patch (RFC 7386) on metadata.labels, metadata.annotations and spec',
        tags: ['hosts'],
        params: NameParams,
        body: HostPatch,
        response: documented({ 200: HostResource, ...errorResponses(404, 409, 413, 415, 422) }),
      },
      handler: async (request) => {
        const { name } = request.params;
        const patch = request.body;
        if (patch.metadata?.name !== undefined && patch.metadata.name !== name) {
          throw validationError([{ field: 'metadata.name', message: `is "${patch.metadata.name}" but the URL names "${name}"; a host cannot be renamed` }]);
        }
        const expected = parseResourceVersion(patch.metadata?.resourceVersion);
        const validate = request.compileValidationSchema(HostInput, 'body');
        const updated = await store.transaction(async (tx) => {
          const existing = await tx.get({ kind: KIND, project: PLATFORM, name });
          if (!existing) throw notFound(KIND, name);
          checkWritable(existing, expected);
          const next = patchedHost(existing, patch);
          if (!validate(next)) {
            throw validationError(humanizeSchemaErrors((validate.errors ?? []) as SchemaError[]));
          }
          const spec = next.spec as HostSpec;
          checkReservedMetadata(request.identity!, existing, next.metadata);
          await admitHost(tx, { metadata: next.metadata, spec }, admission);
          return tx.replace({ ...existing, labels: next.metadata.labels, annotations: next.metadata.annotations, spec: spec as Record<string, unknown> });
        });
        return toEnvelope(updated);
      },
    });

    // Deletion is asynchronous: the conductor powers the host off, cleans up and removes the
    // row. Asking again while that runs changes nothing.
    app.route({
      method: 'DELETE',
      url: '/api/v1/hosts/:name',
      config: { action: 'host:delete' },
      schema: {
        summary: 'Ask for a host to be powered off and removed (202; the conductor finishes it)',
        tags: ['hosts'],
        params: NameParams,
        response: documented({ 202: HostResource, ...errorResponses(404, 409) }),
      },
      handler: async (request, reply) => {
        const { name } = request.params;
        const host = await store.transaction(async (tx) => {
          const existing = await tx.get({ kind: KIND, project: PLATFORM, name });
          if (!existing) throw notFound(KIND, name);
          if (existing.deletionTimestamp) return existing;
          return tx.replace({ ...existing, deletionTimestamp: new Date().toISOString() });
        });
        return reply.code(202).send(toEnvelope(host));
      },
    });

    app.route({
      method: 'GET',
      url: '/api/v1/hosts/:name/events',
      config: { action: 'host:get' },
      schema: {
        summary: "A host's event timeline (state changes, power actions, errors), oldest first",
        tags: ['hosts'],
        params: NameParams,
        querystring: EventsQuery,
        response: documented({ 200: EventList, ...errorResponses(404) }),
      },
      handler: async (request) => {
        const { name } = request.params;
        const host = await store.get({ kind: KIND, project: PLATFORM, name });
        if (!host) throw notFound(KIND, name);
        const events = await store.listEvents(
          { kind: KIND, project: PLATFORM, name },
          { ...(request.query.afterId !== undefined ? { afterId: request.query.afterId } : {}), ...(request.query.limit !== undefined ? { limit: request.query.limit } : {}) },
        );
        return {
          apiVersion: API_VERSION,
          kind: 'EventList',
          items: events.map((e) => ({
            id: e.id,
            type: e.type,
            reason: e.reason,
            message: e.message,
            ...(e.fromState ? { fromState: e.fromState } : {}),
            ...(e.toState ? { toState: e.toState } : {}),
            createdAt: e.createdAt,
          })),
        };
      },
    });
  };
}

/** A write must name the current version (when it names one) and the host must not be on its way out. */
function checkWritable(existing: StoredResource, expected: number | undefined): void {
  if (expected !== undefined && expected !== existing.resourceVersion) {
    throw conflict(KIND, existing.name, String(expected), String(existing.resourceVersion));
  }
  if (existing.deletionTimestamp) {
    throw new IngotError('INGOT_ERR_CONFLICT', `Host "${existing.name}" is being deleted (since ${existing.deletionTimestamp}); wait until it is gone, then create it again`);
  }
}
