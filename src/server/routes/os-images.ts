// /api/v1/osimages: images admins publish. Only platform roles reach these routes;
// tenants never see an image URL. With spec.verifyOnCreate the server downloads, verifies and
// inspects the image after each create or change of url/checksum (src/tenancy/os-image-verifier.ts).
import { IngotError, validationError, type FieldProblem } from '../../model/errors.js';
import { CHECKSUM_HEX_LENGTH, OSImageSpec, type OSImageSpec as Spec } from '../../model/os-image.js';
import type { Store, StoredResource } from '../../store/store.js';
import type { ApiContext } from '../api-context.js';
import { resourceRoutes } from './resource-routes.js';

function urlProblems(url: string): FieldProblem[] {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return [{ field: 'spec.url', message: 'must be an absolute http:// or https:// URL' }];
  }
  if (parsed.username || parsed.password) return [{ field: 'spec.url', message: 'must not carry credentials; serve the image from a location the conductor can read without them' }];
  return [];
}

function specProblems(spec: Spec): FieldProblem[] {
  const problems = urlProblems(spec.url);
  const want = CHECKSUM_HEX_LENGTH[spec.checksumType];
  if (spec.checksum.length !== want) {
    problems.push({ field: 'spec.checksum', message: `is ${spec.checksum.length} hex digits, but a ${spec.checksumType} digest has ${want}; check spec.checksumType` });
  }
  return problems;
}

function verificationFor(spec: Spec): Record<string, unknown> {
  return spec.verifyOnCreate ? { verification: { state: 'pending', url: spec.url, checksum: spec.checksum.toLowerCase() } } : {};
}

/** Node types that name the image (a delete would strand them). */
async function nodeTypesUsing(tx: Store, image: string): Promise<string[]> {
  const names: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await tx.list({ kind: 'NodeType', project: '', limit: 1000, ...(cursor ? { continue: cursor } : {}) });
    for (const t of page.items) if (t.spec.osImageName === image) names.push(t.name);
    cursor = page.continue;
  } while (cursor);
  return names;
}

export function osImageRoutes(ctx: ApiContext) {
  return resourceRoutes<Spec>(ctx, {
    kind: 'OSImage',
    plural: 'osimages',
    prefix: 'osimage',
    scope: 'platform',
    noun: 'an OS image',
    specSchema: OSImageSpec,
    deletion: 'remove',
    initialStatus: verificationFor,
    statusAfterUpdate: (existing: StoredResource, spec: Spec) => {
      const before = existing.spec as unknown as Spec;
      const same = before.url === spec.url && before.checksum.toLowerCase() === spec.checksum.toLowerCase() && before.format === spec.format;
      return same && Boolean(before.verifyOnCreate) === Boolean(spec.verifyOnCreate) ? existing.status : verificationFor(spec);
    },
    admit: async (_tx, request) => {
      const problems = specProblems(request.spec);
      if (problems.length > 0) throw validationError(problems);
      return { spec: { ...request.spec, checksum: request.spec.checksum.toLowerCase() } };
    },
    checkDelete: async (tx, existing) => {
      const users = await nodeTypesUsing(tx, existing.name);
      if (users.length > 0) {
        throw new IngotError('INGOT_ERR_CONFLICT', `OSImage "${existing.name}" is used by node type${users.length > 1 ? 's' : ''} ${users.slice(0, 20).join(', ')}; point ${users.length > 1 ? 'them' : 'it'} at another image first`);
      }
    },
  });
}
