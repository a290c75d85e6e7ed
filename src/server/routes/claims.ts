// /api/v1/projects/:project/claims: "give me one machine of node type X". The claim
// controller (src/tenancy/claim-controller.ts) binds it to a host and provisions it; the tenant
// sees state, the host's name, addresses and a pending reason — nothing else of the host.
// Inline user data is sealed with the secret key under the claim's uid (like a Secret's
// values) and never stored or returned in the clear. A claim's spec cannot change after
// creation: delete it and claim again.
import { IngotError } from '../../model/errors.js';
import { ClaimSpec, type ClaimSpec as Spec } from '../../model/claim.js';
import type { Store, StoredResource } from '../../store/store.js';
import type { SecretBox } from '../../store/secret-box.js';
import { admitClaimSpec, quotaWarnings, SEALED_USER_DATA } from '../admission/claim-admission.js';
import type { ApiContext } from '../api-context.js';
import { resourceRoutes } from './resource-routes.js';

/** Seals inline user data under `uid` (the claim's, or the claim set's) and returns the spec to store. */
export function sealUserData<S extends { userData?: string }>(spec: S): { stored: S; seal?: (tx: Store, box: SecretBox, uid: string) => Promise<void> } {
  if (spec.userData === undefined || spec.userData === SEALED_USER_DATA) return { stored: spec };
  const value = spec.userData;
  return {
    stored: { ...spec, userData: SEALED_USER_DATA },
    seal: async (tx, box, uid) => {
      const existing = await tx.getSecretCiphertext(uid);
      await tx.putSecretCiphertext({ uid, version: (existing?.version ?? 0) + 1, keyId: box.keyId, ciphertext: box.seal({ userData: value }, uid) });
    },
  };
}

function normalized(spec: Spec): string {
  return JSON.stringify({ ...spec, ...(spec.userData !== undefined ? { userData: SEALED_USER_DATA } : {}) }, Object.keys(spec).sort());
}

/** "[sealed]" stands for user data already stored; a new object must bring the data itself. */
export function sealedMarkerGiven(field: string): IngotError {
  return new IngotError('INGOT_ERR_VALIDATION', `${field}: "${SEALED_USER_DATA}" stands for user data stored earlier; give the user data itself`, {
    details: [{ field, message: 'the sealed marker cannot be used here' }],
  });
}

export async function requireProjectRow(tx: Store, project: string): Promise<StoredResource> {
  const row = await tx.get({ kind: 'Project', project: '', name: project });
  if (!row) throw new IngotError('INGOT_ERR_NOT_FOUND', `Project "${project}" does not exist`);
  return row;
}

export function claimRoutes(ctx: ApiContext) {
  return resourceRoutes<Spec>(ctx, {
    kind: 'Claim',
    plural: 'claims',
    prefix: 'claim',
    scope: 'project',
    noun: 'a claim',
    specSchema: ClaimSpec,
    deletion: 'finalize',
    initialStatus: () => ({ state: 'pending', reason: 'waiting for the scheduler' }),
    admit: async (tx, request) => {
      if (request.existing) {
        if (normalized(request.existing.spec as unknown as Spec) !== normalized(request.spec)) {
          throw new IngotError('INGOT_ERR_UNPROCESSABLE', `Claim "${request.name}": spec cannot change after the claim is made; delete it and claim again (labels and annotations may change)`, {
            details: [{ field: 'spec', message: 'immutable' }],
          });
        }
        return { spec: request.existing.spec as unknown as Spec };
      }
      if (request.spec.userData === SEALED_USER_DATA) throw sealedMarkerGiven('spec.userData');
      const project = await requireProjectRow(tx, request.project);
      await admitClaimSpec(tx, project, request.spec, 'spec');
      const warnings = await quotaWarnings(tx, project, request.spec.nodeTypeName, 1);
      const sealed = sealUserData(request.spec);
      return {
        spec: sealed.stored,
        ...(warnings.length > 0 ? { warnings } : {}),
        ...(sealed.seal ? { afterStore: (t: Store, row: StoredResource) => sealed.seal!(t, ctx.secretBox, row.uid) } : {}),
      };
    },
  });
}
