// ClaimSet: a template plus `replicas`, like a Cluster API MachineSet. Scaling up
// creates claims; scaling down deletes the newest first.
import { Type, type Static } from 'typebox';
import { Labels } from './envelope.js';
import { ClaimSpec } from './claim.js';

export const ClaimSetSpec = Type.Object(
  {
    replicas: Type.Integer({ minimum: 0, maximum: 10_000 }),
    template: Type.Object(
      {
        metadata: Type.Optional(Type.Object({ labels: Type.Optional(Labels) }, { additionalProperties: false })),
        spec: ClaimSpec,
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);
export type ClaimSetSpec = Static<typeof ClaimSetSpec>;

export interface ClaimSetStatus {
  replicas: number;
  ready: number;
  pending: number;
  failed: number;
}
