// Admission for Claims and ClaimSet templates: the node type must exist and be
// allowed for the project; user data comes inline or from a Secret of the SAME project (a
// reference never resolves in another scope, whatever the name: DESIGN.md "Secrets"); the
// networks name existing pools; hard quotas refuse, soft quotas warn.
import { canonicalIp } from '../../model/ip-address.js';
import { IngotError, validationError, type FieldProblem } from '../../model/errors.js';
import type { ClaimSpec } from '../../model/claim.js';
import { nodeTypeAllowed, type ProjectSpec, type QuotaLimit } from '../../model/project.js';
import type { Store, StoredResource } from '../../store/store.js';

/** What the stored spec holds instead of inline user data, which is sealed under the claim's uid. */
export const SEALED_USER_DATA = '[sealed]';

function unprocessable(field: string, message: string): IngotError {
  return new IngotError('INGOT_ERR_UNPROCESSABLE', `${field}: ${message}`, { details: [{ field, message }] });
}

/** Checks a claim spec (of a Claim, or a ClaimSet's template at `field`) against the project. */
export async function admitClaimSpec(tx: Store, project: StoredResource, spec: ClaimSpec, field: string): Promise<void> {
  const problems: FieldProblem[] = [];
  if (spec.userData !== undefined && spec.userDataSecretName !== undefined) {
    problems.push({ field: `${field}.userData`, message: 'give user data inline or as userDataSecretName, not both' });
  }
  const pools = new Set<string>();
  (spec.networks ?? []).forEach((n, i) => {
    if (pools.has(n.ipPoolName)) problems.push({ field: `${field}.networks[${i}].ipPoolName`, message: `pool "${n.ipPoolName}" is named twice; a claim gets one address per pool` });
    pools.add(n.ipPoolName);
    if (n.address !== undefined && canonicalIp(n.address) === undefined) problems.push({ field: `${field}.networks[${i}].address`, message: 'is not an IPv4 or IPv6 address' });
  });
  if (problems.length > 0) throw validationError(problems);

  const nodeType = await tx.get({ kind: 'NodeType', project: '', name: spec.nodeTypeName });
  if (!nodeType) {
    throw unprocessable(`${field}.nodeTypeName`, `NodeType "${spec.nodeTypeName}" does not exist; see the node types project ${project.name} may claim with \`ingot nodetype list --project ${project.name}\``);
  }
  if (!nodeTypeAllowed(project.spec as ProjectSpec, spec.nodeTypeName)) {
    throw new IngotError(
      'INGOT_ERR_FORBIDDEN',
      `${field}.nodeTypeName: project ${project.name} may not claim node type "${spec.nodeTypeName}" (the project's spec.allowedNodeTypes); see \`ingot nodetype list --project ${project.name}\` or ask a platform admin`,
      { details: [{ field: `${field}.nodeTypeName`, message: 'not allowed for this project' }] },
    );
  }
  if (spec.userDataSecretName !== undefined) {
    // Same scope only: the lookup is in this project and nowhere else, so naming another
    // project's (or a platform) secret finds nothing, under any name.
    const secret = await tx.get({ kind: 'Secret', project: project.name, name: spec.userDataSecretName });
    if (!secret) {
      throw unprocessable(
        `${field}.userDataSecretName`,
        `Secret "${spec.userDataSecretName}" does not exist in project ${project.name}; a claim can use only its own project's secrets. Create it with \`ingot secret create ${spec.userDataSecretName} --project ${project.name} --from-file userData=./cloud-init.yaml\``,
      );
    }
    const keys = Array.isArray(secret.status.keys) ? (secret.status.keys as string[]) : [];
    if (!keys.includes('userData')) {
      throw unprocessable(`${field}.userDataSecretName`, `Secret "${spec.userDataSecretName}" has no key userData (it has: ${keys.join(', ') || 'none'}); recreate it with --from-file userData=…`);
    }
  }
  for (const [i, n] of (spec.networks ?? []).entries()) {
    if (!(await tx.get({ kind: 'IPPool', project: '', name: n.ipPoolName }))) {
      throw unprocessable(`${field}.networks[${i}].ipPoolName`, `IPPool "${n.ipPoolName}" does not exist; ask a platform admin for the pool names to use`);
    }
  }
}

/** The project's claims that are not being deleted: how many, and how many per node type. */
export async function projectClaimUsage(tx: Store, project: string, except?: (claim: StoredResource) => boolean): Promise<{ claims: number; nodeTypes: Map<string, number> }> {
  const nodeTypes = new Map<string, number>();
  let claims = 0;
  let cursor: string | undefined;
  do {
    const page = await tx.list({ kind: 'Claim', project, limit: 1000, ...(cursor ? { continue: cursor } : {}) });
    for (const c of page.items) {
      if (c.deletionTimestamp || except?.(c)) continue;
      claims++;
      const nt = String(c.spec.nodeTypeName);
      nodeTypes.set(nt, (nodeTypes.get(nt) ?? 0) + 1);
    }
    cursor = page.continue;
  } while (cursor);
  return { claims, nodeTypes };
}

/**
 * The quota check of a write adding `adding` claims of `nodeType` to `project` (claims matching
 * `except` not counted, e.g. a claim set's own). Reads the project's claims only when a quota
 * applies: most projects have none, and listing every claim on every create is O(n) per write.
 */
export async function quotaWarnings(tx: Store, project: StoredResource, nodeType: string, adding: number, except?: (claim: StoredResource) => boolean): Promise<string[]> {
  const quotas = (project.spec as ProjectSpec).quotas;
  if (quotas?.claims === undefined && quotas?.nodeTypes?.[nodeType] === undefined) return [];
  return checkQuotas(project, await projectClaimUsage(tx, project.name, except), nodeType, adding);
}

/**
 * Quota check for `adding` more claims of `nodeType`: throws INGOT_ERR_QUOTA_EXCEEDED naming the
 * quota when a hard one would be exceeded; returns warnings for soft ones.
 */
export function checkQuotas(project: StoredResource, usage: { claims: number; nodeTypes: Map<string, number> }, nodeType: string, adding: number): string[] {
  const quotas = (project.spec as ProjectSpec).quotas ?? {};
  const limits: Array<{ limit: QuotaLimit | undefined; used: number; what: string; path: string }> = [
    { limit: quotas.claims, used: usage.claims, what: 'claims', path: 'spec.quotas.claims' },
    { limit: quotas.nodeTypes?.[nodeType], used: usage.nodeTypes.get(nodeType) ?? 0, what: `claims of node type ${nodeType}`, path: `spec.quotas.nodeTypes["${nodeType}"]` },
  ];
  const warnings: string[] = [];
  for (const { limit, used, what, path } of limits) {
    if (!limit) continue;
    const after = used + adding;
    if (limit.hard !== undefined && after > limit.hard) {
      throw new IngotError(
        'INGOT_ERR_QUOTA_EXCEEDED',
        `quota of ${limit.hard} ${what} reached in project ${project.name} (${path}.hard; ${used} in use, ${adding} more asked for); delete a claim or ask a platform admin to raise the quota`,
      );
    }
    if (limit.soft !== undefined && after > limit.soft) {
      warnings.push(`soft quota of ${limit.soft} ${what} exceeded in project ${project.name} (${path}.soft): ${after} after this change`);
    }
  }
  return warnings;
}
