// Labels and annotations under `ingot.dev/` are the platform's own (e.g. ingot.dev/project,
// ingot.dev/claim on hosts): the scheduler and tenancy trust them, so only the platform's
// administrators and controllers may set, change or remove them (the Metal3 and
// Cluster API self-assessments list label tampering by tenants as a way to steer placement).
import { IngotError } from '../../model/errors.js';
import type { Identity } from '../auth/policy.js';

export const RESERVED_PREFIX = 'ingot.dev/';
const MAY_WRITE_RESERVED = new Set(['platform-admin', 'controller']);

type Map = Record<string, string>;

function changedReservedKeys(before: Map, after: Map): string[] {
  const keys = new Set([...Object.keys(before), ...Object.keys(after)].filter((k) => k.startsWith(RESERVED_PREFIX)));
  return [...keys].filter((k) => before[k] !== after[k]).sort();
}

/**
 * Throws 403 when `identity` changes a reserved label or annotation without being allowed to.
 * `at` names where the metadata sits in the document (`metadata`, or a template's
 * `spec.template.metadata`, whose labels every claim made from it carries).
 */
export function checkReservedMetadata(
  identity: Identity,
  before: { labels: Map; annotations: Map },
  after: { labels: Map; annotations: Map },
  at = 'metadata',
): void {
  if (identity.roles.some((r) => MAY_WRITE_RESERVED.has(r))) return;
  const labels = changedReservedKeys(before.labels, after.labels).map((k) => `${at}.labels["${k}"]`);
  const annotations = changedReservedKeys(before.annotations, after.annotations).map((k) => `${at}.annotations["${k}"]`);
  const fields = [...labels, ...annotations];
  if (fields.length === 0) return;
  throw new IngotError(
    'INGOT_ERR_FORBIDDEN',
    `${fields.join(', ')}: keys under ${RESERVED_PREFIX} are set by the platform; only the platform-admin and controller roles may change them. Use a label without the ${RESERVED_PREFIX} prefix`,
  );
}
