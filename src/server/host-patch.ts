// A host merge patch (RFC 7386) applied to the stored host: the one place that computes what a
// PATCH would make of a host, used by the route that writes it and by the approval gate, which
// must judge (and validate) the result before holding a change for a second person.
import type { StoredResource } from '../store/store.js';
import { applyMergePatch } from './merge-patch.js';

export interface HostPatchBody {
  metadata?: { labels?: unknown; annotations?: unknown };
  spec?: unknown;
}

export interface PatchedHost {
  metadata: { name: string; labels: Record<string, string>; annotations: Record<string, string> };
  spec: unknown;
}

function mapOrEmpty(value: unknown): Record<string, string> {
  return value !== null && typeof value === 'object' ? (value as Record<string, string>) : {};
}

export function patchedHost(existing: StoredResource, patch: HostPatchBody): PatchedHost {
  return {
    metadata: {
      name: existing.name,
      labels: mapOrEmpty(patch.metadata && 'labels' in patch.metadata ? applyMergePatch(existing.labels, patch.metadata.labels) : existing.labels),
      annotations: mapOrEmpty(patch.metadata && 'annotations' in patch.metadata ? applyMergePatch(existing.annotations, patch.metadata.annotations) : existing.annotations),
    },
    spec: patch.spec !== undefined ? applyMergePatch(existing.spec, patch.spec) : existing.spec,
  };
}
