// /api/v1/projects/:project/claimsets: a claim template plus `replicas`, like a Cluster API
// MachineSet. The claim-set controller creates and deletes the claims; here the
// template is admitted like a claim (node type allowed, same-project secret, pools) and the
// replicas are checked against the project's quotas, counting the claims outside this set.
import type { ClaimSetSpec as Spec } from '../../model/claim-set.js';
import { ClaimSetSpec } from '../../model/claim-set.js';
import { CLAIM_SET_LABEL } from '../../model/claim.js';
import type { Store, StoredResource } from '../../store/store.js';
import { admitClaimSpec, quotaWarnings, SEALED_USER_DATA } from '../admission/claim-admission.js';
import { checkReservedMetadata } from '../admission/reserved-metadata.js';
import type { ApiContext } from '../api-context.js';
import { requireProjectRow, sealedMarkerGiven, sealUserData } from './claims.js';
import { resourceRoutes } from './resource-routes.js';

export function claimSetRoutes(ctx: ApiContext) {
  return resourceRoutes<Spec>(ctx, {
    kind: 'ClaimSet',
    plural: 'claimsets',
    prefix: 'claimset',
    scope: 'project',
    noun: 'a claim set',
    specSchema: ClaimSetSpec,
    deletion: 'finalize',
    initialStatus: (spec) => ({ replicas: 0, ready: 0, pending: 0, failed: 0, desired: spec.replicas }),
    admit: async (tx, request) => {
      if (!request.existing && request.spec.template.spec.userData === SEALED_USER_DATA) throw sealedMarkerGiven('spec.template.spec.userData');
      // Template labels end up on every claim the set creates: guard them like the claim's own.
      const previous = (request.existing?.spec as Spec | undefined)?.template.metadata?.labels ?? {};
      checkReservedMetadata(request.identity, { labels: previous, annotations: {} }, { labels: request.spec.template.metadata?.labels ?? {}, annotations: {} }, 'spec.template.metadata');
      const project = await requireProjectRow(tx, request.project);
      await admitClaimSpec(tx, project, request.spec.template.spec, 'spec.template.spec');
      const warnings = await quotaWarnings(tx, project, request.spec.template.spec.nodeTypeName, request.spec.replicas, (c) => c.labels[CLAIM_SET_LABEL] === request.name);
      const sealed = sealUserData(request.spec.template.spec);
      return {
        spec: { ...request.spec, template: { ...request.spec.template, spec: sealed.stored } },
        ...(warnings.length > 0 ? { warnings } : {}),
        ...(sealed.seal ? { afterStore: (t: Store, row: StoredResource) => sealed.seal!(t, ctx.secretBox, row.uid) } : {}),
      };
    },
  });
}
