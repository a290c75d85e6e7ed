// /api/v1/nodetypes: what tenants may ask for. Admins write them; tenants read the
// ones their project may claim at /api/v1/projects/P/nodetypes (filtered by the project's
// allowedNodeTypes), never the platform-wide list.
import { IngotError } from '../../model/errors.js';
import { NodeTypeName } from '../../model/claim.js';
import { NodeTypeSpec, type NodeTypeSpec as Spec } from '../../model/node-type.js';
import { nodeTypeAllowed, type ProjectSpec } from '../../model/project.js';
import type { Store } from '../../store/store.js';
import type { ApiContext } from '../api-context.js';
import { resourceRoutes } from './resource-routes.js';

/** Claims (any project) that name the node type and are not on their way out. */
export async function claimsUsingNodeType(tx: Store, nodeType: string): Promise<string[]> {
  const names: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await tx.list({ kind: 'Claim', limit: 1000, ...(cursor ? { continue: cursor } : {}) });
    for (const c of page.items) if (c.spec.nodeTypeName === nodeType) names.push(`${c.project}/${c.name}`);
    cursor = page.continue;
  } while (cursor);
  return names;
}

export function nodeTypeRoutes(ctx: ApiContext) {
  return resourceRoutes<Spec>(ctx, {
    kind: 'NodeType',
    plural: 'nodetypes',
    prefix: 'nodetype',
    scope: 'platform',
    noun: 'a node type',
    nameSchema: NodeTypeName,
    specSchema: NodeTypeSpec,
    deletion: 'remove',
    projectView: true,
    initialStatus: () => ({}),
    admit: async (tx, request) => {
      const image = await tx.get({ kind: 'OSImage', project: '', name: request.spec.osImageName });
      if (!image) {
        throw new IngotError('INGOT_ERR_UNPROCESSABLE', `spec.osImageName: OSImage "${request.spec.osImageName}" does not exist; publish it first with \`ingot apply -f image.yaml\``, {
          details: [{ field: 'spec.osImageName', message: 'no such OSImage' }],
        });
      }
      if (request.spec.selector.capabilities?.secureBoot === true && image.spec.secureBoot !== true) {
        throw new IngotError(
          'INGOT_ERR_UNPROCESSABLE',
          `spec.osImageName: the node type requires secure boot but OSImage "${image.name}" is not marked as signed (spec.secureBoot); use a signed image or drop selector.capabilities.secureBoot`,
          { details: [{ field: 'spec.osImageName', message: 'image is not secure-boot signed' }] },
        );
      }
    },
    checkDelete: async (tx, existing) => {
      const users = await claimsUsingNodeType(tx, existing.name);
      if (users.length > 0) {
        throw new IngotError('INGOT_ERR_CONFLICT', `NodeType "${existing.name}" is used by claim${users.length > 1 ? 's' : ''} ${users.slice(0, 20).join(', ')}; delete ${users.length > 1 ? 'them' : 'it'} first`);
      }
    },
    // On a project's view, only the node types the project may claim; on the platform list, all.
    visible: async (row, _identity, scope) => {
      if (scope.project === '') return true;
      const project = await scope.tx.get({ kind: 'Project', project: '', name: scope.project });
      return project !== undefined && nodeTypeAllowed(project.spec as ProjectSpec, row.name);
    },
  });
}

