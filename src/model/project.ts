// Project: a tenant. Members and their roles, which node types the project may claim,
// and quotas. Platform admins own projects; tenants read their own.
import { Type, type Static } from 'typebox';

export const PROJECT_ROLES = ['project-admin', 'project-member', 'project-viewer'] as const;
export type ProjectRole = (typeof PROJECT_ROLES)[number];

/** A node type name, or a `prefix.*` wildcard matching every node type whose name starts with `prefix.`. */
export const NODE_TYPE_PATTERN_TEXT = '^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?(\\.\\*)?$';

export const ProjectMember = Type.Object(
  {
    subject: Type.String({ minLength: 1, maxLength: 255, pattern: '^[\\x21-\\x7e]+$', description: 'the OIDC `sub` of a person or service' }),
    role: Type.Enum(PROJECT_ROLES),
  },
  { additionalProperties: false },
);
export type ProjectMember = Static<typeof ProjectMember>;

const AllowedNodeType = Type.Union([
  Type.String({ pattern: NODE_TYPE_PATTERN_TEXT, maxLength: 255 }),
  Type.Object({ name: Type.String({ pattern: NODE_TYPE_PATTERN_TEXT, maxLength: 255 }) }, { additionalProperties: false }),
]);

export const QuotaLimit = Type.Object(
  {
    soft: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000, description: 'beyond this, claims are still created, with a warning header and an audit event' })),
    hard: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000, description: 'claims beyond this are refused' })),
  },
  { additionalProperties: false },
);
export type QuotaLimit = Static<typeof QuotaLimit>;

export const ProjectQuotas = Type.Object(
  {
    claims: Type.Optional(QuotaLimit),
    nodeTypes: Type.Optional(Type.Record(Type.String({ pattern: '^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$' }), QuotaLimit, { maxProperties: 256, additionalProperties: false })),
  },
  { additionalProperties: false },
);
export type ProjectQuotas = Static<typeof ProjectQuotas>;

export const ProjectSpec = Type.Object(
  {
    description: Type.Optional(Type.String({ maxLength: 1024 })),
    members: Type.Optional(Type.Array(ProjectMember, { maxItems: 1000 })),
    allowedNodeTypes: Type.Optional(Type.Array(AllowedNodeType, { maxItems: 256, description: 'unset: every node type; []: none; "prefix.*" wildcards' })),
    quotas: Type.Optional(ProjectQuotas),
  },
  { additionalProperties: false },
);
export type ProjectSpec = Static<typeof ProjectSpec>;

export interface ProjectStatus {
  /** Claims counted against the quotas (alive, or deleted but still holding a host), total and per node type; kept by the claim controller. */
  usage?: { claims: number; nodeTypes: Record<string, number> };
}

/** Whether the project may claim `nodeType` (DESIGN.md: unset allows all, [] allows none). */
export function nodeTypeAllowed(spec: Pick<ProjectSpec, 'allowedNodeTypes'>, nodeType: string): boolean {
  if (spec.allowedNodeTypes === undefined) return true;
  return spec.allowedNodeTypes.some((entry) => {
    const pattern = typeof entry === 'string' ? entry : entry.name;
    return pattern.endsWith('.*') ? nodeType.startsWith(pattern.slice(0, -1)) : pattern === nodeType;
  });
}
