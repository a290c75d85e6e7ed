// Which roles are in force for a request, by scope. Project roles (project-admin, -member,
// -viewer) count only inside their own project: on a platform route (hosts, platform secrets,
// tokens, node types, …) they are dropped, and on a project route (/api/v1/projects/P/…) they
// count only when the identity belongs to P — through its token's or OIDC claim's project, or
// as a member listed in Project P's spec.members (matched on the OIDC subject). Platform roles
// count everywhere. Because this happens before the policy is asked, no rule can accidentally
// let a tenant act on the platform or on another project: "by construction", not by care in
// each route (the Metal3 advisory class "secrets of other namespaces through a host resource").
import { PROJECT_ROLES } from '../../model/project.js';
import type { Store } from '../../store/store.js';
import type { Identity } from './policy.js';

const PROJECT_ROLE_SET: ReadonlySet<string> = new Set(PROJECT_ROLES);

export function isProjectRole(role: string): boolean {
  return PROJECT_ROLE_SET.has(role);
}

/** The roles that apply on a platform-scoped route. */
export function platformScopeRoles(identity: Identity): string[] {
  return identity.roles.filter((r) => !PROJECT_ROLE_SET.has(r));
}

/** OIDC identities carry `oidc:<sub>` as their id; project members are listed by that subject. */
function oidcSubject(identity: Identity): string | undefined {
  return identity.tokenId.startsWith('oidc:') ? identity.tokenId.slice('oidc:'.length) : undefined;
}

/** The roles that apply on a route of project `project`. */
export async function projectScopeRoles(store: Store, identity: Identity, project: string): Promise<string[]> {
  const roles = new Set(platformScopeRoles(identity));
  if (identity.project === project) for (const r of identity.roles) if (PROJECT_ROLE_SET.has(r)) roles.add(r);
  const subject = oidcSubject(identity);
  if (subject !== undefined) {
    const stored = await store.get({ kind: 'Project', project: '', name: project });
    const members = (stored?.spec.members ?? []) as Array<{ subject?: unknown; role?: unknown }>;
    for (const m of members) if (m.subject === subject && typeof m.role === 'string' && PROJECT_ROLE_SET.has(m.role)) roles.add(m.role);
  }
  return [...roles];
}
