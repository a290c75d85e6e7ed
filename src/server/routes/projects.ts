// /api/v1/projects: tenants. Admins create and change them; a project's members read
// their own project at /api/v1/projects/P (the URL parameter is `project`, so project roles
// apply there, project-scope.ts). A project that still holds claims, claim sets or secrets
// cannot be deleted: those would be stranded with no one able to see them.
import { IngotError } from '../../model/errors.js';
import { ProjectSpec, type ProjectSpec as Spec } from '../../model/project.js';
import type { ApiContext } from '../api-context.js';
import { resourceRoutes } from './resource-routes.js';

export function projectRoutes(ctx: ApiContext) {
  return resourceRoutes<Spec>(ctx, {
    kind: 'Project',
    plural: 'projects',
    prefix: 'project',
    scope: 'platform',
    noun: 'a project',
    itemParam: 'project',
    specSchema: ProjectSpec,
    deletion: 'remove',
    initialStatus: () => ({}),
    checkDelete: async (tx, existing) => {
      const held: string[] = [];
      for (const kind of ['Claim', 'ClaimSet', 'Secret']) {
        const n = await tx.count(kind, existing.name);
        if (n > 0) held.push(`${n} ${kind}${n > 1 ? 's' : ''}`);
      }
      if (held.length > 0) {
        throw new IngotError('INGOT_ERR_CONFLICT', `Project "${existing.name}" still holds ${held.join(', ')}; delete them first (\`ingot claim list --project ${existing.name}\`)`);
      }
    },
  });
}
