// Response and parameter schemas shared by the routes. Request bodies use the model's input
// schemas (src/model); these describe what the server answers, for the OpenAPI document.
// Responses are serialized with JSON.stringify (see api-server.ts), so these schemas document
// but never filter: a field missing here is still sent, never silently dropped.
import { Type } from 'typebox';
import { API_VERSION, Metadata, Name } from '../model/envelope.js';
import { HostSpec } from '../model/host.js';

export const NameParams = Type.Object({ name: Name }, { additionalProperties: false });

export const ErrorBody = Type.Object({
  code: Type.String({ description: 'stable INGOT_ERR_* code' }),
  message: Type.String(),
  details: Type.Optional(Type.Array(Type.Object({ field: Type.String(), message: Type.String() }))),
  requestId: Type.String(),
});

export const HostResource = Type.Object({
  apiVersion: Type.Literal(API_VERSION),
  kind: Type.Literal('Host'),
  metadata: Metadata,
  spec: HostSpec,
  status: Type.Record(Type.String(), Type.Unknown(), { description: 'owned by the conductor: provisioning state, power, hardware, errors' }),
});

export const HostList = Type.Object({
  apiVersion: Type.Literal(API_VERSION),
  kind: Type.Literal('HostList'),
  items: Type.Array(HostResource),
  metadata: Type.Object({ continue: Type.Optional(Type.String({ description: 'pass as ?continue= for the next page' })) }),
});

export const SecretResource = Type.Object({
  apiVersion: Type.Literal(API_VERSION),
  kind: Type.Literal('Secret'),
  metadata: Metadata,
  type: Type.String(),
  spec: Type.Object({ type: Type.String() }),
  status: Type.Object({ keys: Type.Array(Type.String()), version: Type.Integer() }, { description: 'key names and version; values are never returned' }),
});

export const SecretList = Type.Object({
  apiVersion: Type.Literal(API_VERSION),
  kind: Type.Literal('SecretList'),
  items: Type.Array(SecretResource),
  metadata: Type.Object({ continue: Type.Optional(Type.String()) }),
});

export const EventList = Type.Object({
  apiVersion: Type.Literal(API_VERSION),
  kind: Type.Literal('EventList'),
  items: Type.Array(
    Type.Object({
      id: Type.Integer(),
      type: Type.String(),
      reason: Type.String(),
      message: Type.String(),
      fromState: Type.Optional(Type.String()),
      toState: Type.Optional(Type.String()),
      createdAt: Type.String(),
    }),
  ),
});

export const PageQuery = {
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'page size (default 500)' })),
  continue: Type.Optional(Type.String({ maxLength: 4096, description: 'cursor from the previous page' })),
};

/** The error answers a route may give, by status, for the OpenAPI document. */
export function errorResponses(...statuses: number[]): Record<number, typeof ErrorBody> {
  return Object.fromEntries([400, 401, 403, ...statuses].map((s) => [s, ErrorBody]));
}

/**
 * Wraps a route's response schemas. They feed the OpenAPI document only (answers are written
 * with JSON.stringify), so they are typed `unknown` to keep the type provider from demanding
 * that handlers return exactly the schema's static type (status is deliberately loose).
 */
export function documented(responses: Record<number, object>): unknown {
  return responses;
}
