// StoredResource (the store's row) <-> the public envelope {apiVersion, kind, metadata, spec,
// status}. resourceVersion is a string on the wire (as in Kubernetes) so clients treat it as
// opaque; the store keeps a number.
import { API_VERSION, type Metadata, type Resource, type ResourceList } from '../model/envelope.js';
import { IngotError } from '../model/errors.js';
import type { StoredResource } from '../store/store.js';

export function toMetadata(r: StoredResource): Metadata {
  return {
    name: r.name,
    ...(r.project ? { project: r.project } : {}),
    uid: r.uid,
    labels: r.labels,
    annotations: r.annotations,
    resourceVersion: String(r.resourceVersion),
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
    ...(r.deletionTimestamp ? { deletionTimestamp: r.deletionTimestamp } : {}),
  };
}

export function toEnvelope(r: StoredResource): Resource<Record<string, unknown>, Record<string, unknown>> {
  return { apiVersion: API_VERSION, kind: r.kind, metadata: toMetadata(r), spec: r.spec, status: r.status };
}

/** Secrets: metadata, type and {keys, version}. Values are not in the row, so they cannot leak from here. */
export function toSecretEnvelope(r: StoredResource): Resource<Record<string, unknown>, Record<string, unknown>> & { type: string } {
  const type = typeof r.spec.type === 'string' ? r.spec.type : 'Opaque';
  return { apiVersion: API_VERSION, kind: 'Secret', metadata: toMetadata(r), type, spec: { type }, status: { keys: r.status.keys ?? [], version: r.status.version ?? 0 } };
}

export function toList<T>(kind: string, items: T[], next?: string): ResourceList<T> {
  return { apiVersion: API_VERSION, kind: `${kind}List`, items, metadata: next ? { continue: next } : {} };
}

/** Parses a client-sent resourceVersion ("17"); the schema already checked it is digits. */
export function parseResourceVersion(value: string | undefined, field = 'metadata.resourceVersion'): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new IngotError('INGOT_ERR_VALIDATION', `${field}: must be the resourceVersion you read, a whole number`, {
      details: [{ field, message: 'must be a whole number' }],
    });
  }
  return n;
}
