// The tenancy kinds as the API answers them (src/server/routes/resource-routes.ts): OS images,
// node types, projects, IP pools (platform kinds) and claims, claim sets (project kinds). The
// specs are the server's own schemas (src/model/*), so a manifest that type-checks here is one
// the server accepts; statuses are what the controllers write.
import type { ClaimSetSpec, ClaimSetStatus } from '../model/claim-set.js';
import type { ClaimSpec, ClaimStatus } from '../model/claim.js';
import type { InputMetadata, Resource } from '../model/envelope.js';
import type { IpPoolSpec } from '../model/ip-pool.js';
import type { NodeTypeSpec } from '../model/node-type.js';
import type { OSImageSpec, OSImageStatus } from '../model/os-image.js';
import type { ProjectSpec, ProjectStatus } from '../model/project.js';

/** What a client sends for any spec-and-status kind (status is the server's and is ignored). */
export interface ResourceInput<Spec> {
  apiVersion?: 'ingot.dev/v1';
  kind?: string;
  metadata: InputMetadata;
  spec: Spec;
}

export type OSImage = Resource<OSImageSpec, OSImageStatus> & { kind: 'OSImage' };
export type NodeType = Resource<NodeTypeSpec, Record<string, unknown>> & { kind: 'NodeType' };
export type Project = Resource<ProjectSpec, ProjectStatus> & { kind: 'Project' };
export type IPPool = Resource<IpPoolSpec, Record<string, unknown>> & { kind: 'IPPool' };
export type Claim = Resource<ClaimSpec, ClaimStatus> & { kind: 'Claim' };
/** `desired` is the spec.replicas the status was computed for (the server's initial status carries it). */
export type ClaimSet = Resource<ClaimSetSpec, ClaimSetStatus & { desired?: number }> & { kind: 'ClaimSet' };

export type OSImageInput = ResourceInput<OSImageSpec>;
export type NodeTypeInput = ResourceInput<NodeTypeSpec>;
export type ProjectInput = ResourceInput<ProjectSpec>;
export type IPPoolInput = ResourceInput<IpPoolSpec>;
export type ClaimInput = ResourceInput<ClaimSpec>;
export type ClaimSetInput = ResourceInput<ClaimSetSpec>;

/** One address allocated from a pool (GET /api/v1/ippools/:name/addresses). */
export interface IPAddressInfo {
  address: string;
  family: number;
  prefix: number;
  claim: { project: string; name: string; uid: string };
  createdAt: string;
}
