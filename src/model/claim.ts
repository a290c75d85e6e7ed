// Claim: "give me one machine of node type X" in a project. Bound to exactly one host
// while it lives; the tenant sees the host's name and addresses, never its BMC or image URL.
import { Type, type Static } from 'typebox';
import { Name } from './envelope.js';

export const NODE_TYPE_NAME_PATTERN = '^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$';
export const NodeTypeName = Type.String({ pattern: NODE_TYPE_NAME_PATTERN, maxLength: 253, description: 'a node type name: lower-case letters, digits, "-" and "."' });

/** Largest inline user data: config drives are small, and cloud-init's own limit is 16 KiB on some clouds. */
export const MAX_USER_DATA_BYTES = 64 * 1024;

export const ClaimNetwork = Type.Object(
  {
    ipPoolName: Name,
    address: Type.Optional(Type.String({ minLength: 2, maxLength: 45, description: 'a specific address of the pool instead of the lowest free one' })),
    macAddress: Type.Optional(Type.String({ pattern: '^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$', description: "the host NIC to configure; default the host's boot NIC" })),
  },
  { additionalProperties: false },
);
export type ClaimNetwork = Static<typeof ClaimNetwork>;

export const ClaimSpec = Type.Object(
  {
    nodeTypeName: NodeTypeName,
    userData: Type.Optional(Type.String({ maxLength: MAX_USER_DATA_BYTES, description: 'inline user data (cloud-init); or userDataSecretName' })),
    userDataSecretName: Type.Optional(Type.String({ pattern: '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$', maxLength: 63, description: 'a Secret of the same project with key userData' })),
    sshKeys: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 16 * 1024, pattern: '^(ssh-|ecdsa-|sk-)' }), { maxItems: 32 })),
    networks: Type.Optional(Type.Array(ClaimNetwork, { maxItems: 8 })),
  },
  { additionalProperties: false },
);
export type ClaimSpec = Static<typeof ClaimSpec>;

export const CLAIM_STATES = ['pending', 'binding', 'provisioning', 'ready', 'releasing', 'failed'] as const;
export type ClaimState = (typeof CLAIM_STATES)[number];

export interface ClaimStatus {
  state: ClaimState;
  /** The bound host's name: the only fact about the host a tenant sees. */
  hostName?: string;
  /** Addresses allocated to the claim, one per network. */
  addresses?: Array<{ ipPoolName: string; address: string; prefix: number; gateway?: string }>;
  /** While pending or failed: what is missing or what went wrong, in words. */
  reason?: string;
  /** When the claim first became ready. */
  readyAt?: string;
}

/** Finalizer-like annotation the controller keeps while it still has to release what the claim holds. */
export const CLAIM_PROJECT_LABEL = 'ingot.dev/project';
/** Label on claims a ClaimSet made: the set's name. */
export const CLAIM_SET_LABEL = 'ingot.dev/claimset';
