// The envelope every resource shares, Kubernetes-style, so manifests feel familiar to Metal3
// users: {apiVersion, kind, metadata, spec, status}.
import { Type, type Static } from 'typebox';

export const API_VERSION = 'ingot.dev/v1';

/** RFC 1123 DNS label: lower-case alphanumerics and '-', 1-63 characters, alphanumeric at both ends. */
export const DNS_LABEL_PATTERN = '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$';
export const DNS_LABEL = new RegExp(DNS_LABEL_PATTERN);

/** Label keys: optional DNS-subdomain prefix and '/', then a name of at most 63 characters. */
export const LABEL_KEY_PATTERN = '^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$';
export const LABEL_VALUE_PATTERN = '^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$';

export const Name = Type.String({
  pattern: DNS_LABEL_PATTERN,
  maxLength: 63,
  description: 'a DNS label: lower-case letters, digits and "-", at most 63 characters, starting and ending with a letter or digit',
});

export const Labels = Type.Record(Type.String({ pattern: LABEL_KEY_PATTERN, maxLength: 317 }), Type.String({ pattern: LABEL_VALUE_PATTERN, maxLength: 63 }), {
  maxProperties: 64,
  // Without this a key that fails the pattern would slip through patternProperties unchecked.
  additionalProperties: false,
});
export const Annotations = Type.Record(Type.String({ pattern: LABEL_KEY_PATTERN, maxLength: 317 }), Type.String({ maxLength: 4096 }), {
  maxProperties: 64,
  additionalProperties: false,
});

/** What a client may send in metadata; the server owns uid, timestamps and (on create) resourceVersion. */
export const InputMetadata = Type.Object(
  {
    name: Name,
    project: Type.Optional(Name),
    labels: Type.Optional(Labels),
    annotations: Type.Optional(Annotations),
    resourceVersion: Type.Optional(Type.String({ pattern: '^[0-9]{1,18}$', description: 'for optimistic concurrency: the version you last read' })),
    // Read-only fields that clients commonly echo back from a GET; accepted and ignored.
    uid: Type.Optional(Type.String({ maxLength: 64 })),
    createdAt: Type.Optional(Type.String({ maxLength: 64 })),
    updatedAt: Type.Optional(Type.String({ maxLength: 64 })),
    deletionTimestamp: Type.Optional(Type.String({ maxLength: 64 })),
  },
  { additionalProperties: false },
);
export type InputMetadata = Static<typeof InputMetadata>;

export const Metadata = Type.Object(
  {
    name: Name,
    project: Type.Optional(Name),
    uid: Type.String(),
    labels: Labels,
    annotations: Annotations,
    resourceVersion: Type.String(),
    createdAt: Type.String({ format: 'date-time' }),
    updatedAt: Type.String({ format: 'date-time' }),
    /** Set when deletion was asked for; the conductor finishes it (power off, clean up) and removes the row. */
    deletionTimestamp: Type.Optional(Type.String({ format: 'date-time' })),
  },
  { additionalProperties: false },
);
export type Metadata = Static<typeof Metadata>;

/** A stored resource as the store and API hand it out. */
export interface Resource<Spec, Status> {
  apiVersion: typeof API_VERSION;
  kind: string;
  metadata: Metadata;
  spec: Spec;
  status: Status;
}

/** Paged list answer: `continue` is an opaque cursor for the next page, absent on the last one. */
export interface ResourceList<T> {
  apiVersion: typeof API_VERSION;
  kind: string;
  items: T[];
  metadata: { continue?: string };
}
