// Conversions between the store's row and the Host the handlers see. The store keeps
// resourceVersion as a number and project '' for platform scope; the model uses the envelope.
import { API_VERSION } from '../model/envelope.js';
import { initialHostStatus, type Host, type HostSpec, type HostStatus } from '../model/host.js';
import type { StoredResource } from '../store/store.js';

export function toHost(row: StoredResource): Host {
  const spec = row.spec as HostSpec;
  // Rows written before a status field existed get its default rather than undefined.
  const status = { ...initialHostStatus(spec), ...(row.status as Partial<HostStatus>) } as HostStatus;
  return {
    apiVersion: API_VERSION,
    kind: 'Host',
    metadata: {
      name: row.name,
      ...(row.project ? { project: row.project } : {}),
      uid: row.uid,
      labels: row.labels,
      annotations: row.annotations,
      resourceVersion: String(row.resourceVersion),
      createdAt: row.createdAt,
      updatedAt: row.updatedAt,
      ...(row.deletionTimestamp ? { deletionTimestamp: row.deletionTimestamp } : {}),
    },
    spec: structuredClone(spec),
    status: structuredClone(status),
  };
}

/** The row to pass to store.replace: the row as read, with the handler's status. */
export function withStatus(row: StoredResource, status: HostStatus): StoredResource {
  return { ...row, status: JSON.parse(JSON.stringify(status)) as Record<string, unknown> };
}
