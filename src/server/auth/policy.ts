// Authorization: every route names one action; a policy maps each action to the roles allowed
// to perform it. The default policy lives here, in code; an operator override file only has to
// produce another `Rules` record (createPolicy merges).
import { IngotError } from '../../model/errors.js';
import { evaluateRule, formatRule, parseRule, requiresApproval, rolesIn, RuleSyntaxError, type RuleExpression } from './rule-expression.js';

/** Every action a route may name, with what it allows. Keep sorted by resource. */
export const ACTIONS = {
  'api:discover': 'read the OpenAPI document describing this API',
  'host:list': 'list hosts and watch them for changes',
  'host:get': 'read one host and its events',
  'host:create': 'enroll a new host',
  'host:update': 'change a host (spec, labels, annotations), including power (spec.online)',
  'host:delete': 'ask for a host to be powered off and removed',
  'host:force-delete': 'delete a host a claim holds (always held for a second admin\'s approval; still cleaned when the BMC answers)',
  'secret:list': 'list secrets (metadata and key names only, never values)',
  'secret:get': 'read one secret (metadata and key names only, never values)',
  'secret:create': 'create a secret',
  'secret:update': 'replace the values of a secret',
  'secret:delete': 'delete a secret no host references',
  'secret:reveal': "read a secret's values (granted to nobody by default; every use is audited)",
  'secret:rekey': 'make a new secret key current and re-seal every secret value under it (values are never returned)',
  'osimage:list': 'list published OS images (URLs and checksums; platform only)',
  'osimage:get': 'read one OS image and its verification status',
  'osimage:create': 'publish an OS image',
  'osimage:update': 'change an OS image (verified again when verifyOnCreate is set)',
  'osimage:delete': 'delete an OS image no node type uses',
  'nodetype:list': 'list node types (tenants: those their project may claim)',
  'nodetype:get': 'read one node type',
  'nodetype:create': 'create a node type',
  'nodetype:update': 'change a node type',
  'nodetype:delete': 'delete a node type no claim uses',
  'project:list': 'list projects',
  'project:get': 'read one project (tenants: their own) with its quotas and usage',
  'project:create': 'create a project',
  'project:update': 'change a project: members, allowed node types, quotas',
  'project:delete': 'delete a project that holds no claims',
  'claim:list': "list a project's claims (platform roles: every project's)",
  'claim:get': 'read one claim: state, host name, addresses',
  'claim:create': 'claim a machine of an allowed node type, within quota',
  'claim:update': "change a claim's labels and annotations",
  'claim:delete': 'release a claim: its host is cleaned and freed',
  'claimset:list': "list a project's claim sets",
  'claimset:get': 'read one claim set and its counts',
  'claimset:create': 'create a claim set',
  'claimset:update': 'change a claim set (scale it)',
  'claimset:delete': 'delete a claim set and its claims',
  'ippool:list': 'list IP pools',
  'ippool:get': "read one IP pool and its allocations",
  'ippool:create': 'create an IP pool',
  'ippool:update': 'change an IP pool',
  'ippool:delete': 'delete an IP pool with no allocations',
  'token:create': 'create an API token (only with roles the creator holds)',
  'token:list': 'list API tokens (metadata only; a token value is shown once, on create)',
  'token:revoke': 'revoke an API token',
  'audit:list': 'read the audit trail',
  'audit:verify': "verify the audit trail's hash chain",
  'approval:list': 'list approvals of held destructive changes (two-person rule)',
  'approval:approve': "approve someone else's held change, which then runs with the approver's authority",
  'approval:reject': 'reject a held change',
  'agent:lookup': 'agent: find the host this boot belongs to',
  'agent:heartbeat': 'agent: report that it is alive',
  'agent:commands': 'agent: fetch commands to run',
  'agent:results': 'agent: report command results',
  'agent:boot-media': 'fetch an agent boot medium (the unguessable URL is the credential, no bearer token)',
  'agent:image': 'agent: download an image through the conductor (caching proxy)',
} as const;

export type Action = keyof typeof ACTIONS;
/** The only routes without authentication say so explicitly with this marker. */
export const PUBLIC = 'public';
export type RouteAction = Action | typeof PUBLIC;

/**
 * Actions whose URL itself is the credential (a 256-bit random id that dies with the agent
 * session): the BMC fetching a virtual-media ISO cannot send a bearer token. Access control
 * skips bearer authentication for these; the route must check the capability itself.
 */
export const CAPABILITY_URL_ACTIONS: ReadonlySet<Action> = new Set<Action>(['agent:boot-media']);

/**
 * Roles. Platform roles act everywhere. Project roles act only on their own project's routes
 * (/api/v1/projects/P/…; see project-scope.ts, which drops them everywhere else before the
 * policy is asked). `agent` is carried only by one-boot agent tokens and cannot be granted
 * through the API.
 */
export const ROLES = ['platform-admin', 'platform-reader', 'controller', 'project-admin', 'project-member', 'project-viewer', 'agent'] as const;
export type Role = (typeof ROLES)[number] | (string & {});
const PROJECT_ROLE_NAMES: ReadonlySet<string> = new Set(['project-admin', 'project-member', 'project-viewer']);
/** Roles an API token may carry (everything but agent). */
export const API_ROLES: readonly string[] = ROLES.filter((r) => r !== 'agent');

/** Rules as text in the rule language (rule-expression.ts), one per action. */
export type Rules = Record<Action, string>;

const ADMIN = 'role:platform-admin';
const READERS = 'role:platform-admin or role:platform-reader';
const AGENT = 'role:agent';
/** Project roles; they count only on routes of the identity's own project (project-scope.ts). */
const TENANTS = 'role:project-admin or role:project-member or role:project-viewer';
const CLAIMERS = 'role:project-admin or role:project-member';

/**
 * Default rules (docs/authz-matrix.md is generated from these):
 * - platform-admin: every API action except secret:reveal, which nobody holds by default (an
 *   operator opts in with a policy file; each use is audited);
 * - platform-reader: the read-only actions (lists, gets, token list, audit), never values;
 * - controller (automation that drives machines): reads hosts and updates them (spec.online is
 *   power), reads secret metadata so it can pick credentials; it cannot enroll or delete
 *   hosts (that changes the inventory, an admin decision) nor manage secrets or tokens;
 * - project roles (only ever in force on their own project's routes, /api/v1/projects/P/…):
 *   viewers read the project, its claims, claim sets, allowed node types and secret names;
 *   members also create and delete claims and claim sets; project admins also manage the
 *   project's secrets (user data). They never reach hosts, images, pools, tokens or audit;
 * - agent: the agent API only (a separate trust zone, DESIGN.md "The agent protocol").
 */
export const DEFAULT_RULES: Rules = {
  'api:discover': '@',
  'host:list': `${READERS} or role:controller`,
  'host:get': `${READERS} or role:controller`,
  'host:create': ADMIN,
  'host:update': `${ADMIN} or role:controller`,
  'host:delete': ADMIN,
  'host:force-delete': ADMIN,
  'secret:list': `${READERS} or role:controller or ${TENANTS}`,
  'secret:get': `${READERS} or role:controller or ${TENANTS}`,
  'secret:create': `${ADMIN} or role:project-admin`,
  'secret:update': `${ADMIN} or role:project-admin`,
  'secret:delete': `${ADMIN} or role:project-admin`,
  'secret:reveal': '!',
  'secret:rekey': ADMIN,
  'osimage:list': `${READERS} or role:controller`,
  'osimage:get': `${READERS} or role:controller`,
  'osimage:create': ADMIN,
  'osimage:update': ADMIN,
  'osimage:delete': ADMIN,
  'nodetype:list': `${READERS} or role:controller or ${TENANTS}`,
  'nodetype:get': `${READERS} or role:controller or ${TENANTS}`,
  'nodetype:create': ADMIN,
  'nodetype:update': ADMIN,
  'nodetype:delete': ADMIN,
  'project:list': `${READERS} or role:controller`,
  'project:get': `${READERS} or role:controller or ${TENANTS}`,
  'project:create': ADMIN,
  'project:update': ADMIN,
  'project:delete': ADMIN,
  'claim:list': `${READERS} or role:controller or ${TENANTS}`,
  'claim:get': `${READERS} or role:controller or ${TENANTS}`,
  'claim:create': `${ADMIN} or ${CLAIMERS}`,
  'claim:update': `${ADMIN} or role:controller or ${CLAIMERS}`,
  'claim:delete': `${ADMIN} or ${CLAIMERS}`,
  'claimset:list': `${READERS} or role:controller or ${TENANTS}`,
  'claimset:get': `${READERS} or role:controller or ${TENANTS}`,
  'claimset:create': `${ADMIN} or ${CLAIMERS}`,
  'claimset:update': `${ADMIN} or ${CLAIMERS}`,
  'claimset:delete': `${ADMIN} or ${CLAIMERS}`,
  'ippool:list': `${READERS} or role:controller`,
  'ippool:get': `${READERS} or role:controller`,
  'ippool:create': ADMIN,
  'ippool:update': ADMIN,
  'ippool:delete': ADMIN,
  'token:create': ADMIN,
  'token:list': READERS,
  'token:revoke': ADMIN,
  'audit:list': READERS,
  'audit:verify': READERS,
  'approval:list': READERS,
  'approval:approve': ADMIN,
  'approval:reject': ADMIN,
  'agent:lookup': AGENT,
  'agent:heartbeat': AGENT,
  'agent:commands': AGENT,
  'agent:results': AGENT,
  'agent:boot-media': AGENT,
  'agent:image': AGENT,
};

export interface Policy {
  /** The parsed rule of every action. Replaced as a whole by replacePolicyRules (SIGHUP reload). */
  readonly rules: Readonly<Record<Action, RuleExpression>>;
  /** Image checksums of type md5 are refused unless this is set (DESIGN.md "Images"). */
  readonly allowMd5Checksums: boolean;
}

/** Overrides: rule text, or (for code and tests) a list of roles meaning "any of these" ([] = nobody). */
export type RuleOverrides = Partial<Record<Action, string | readonly string[]>>;

function ruleFromOverride(action: string, value: string | readonly string[]): RuleExpression {
  if (Array.isArray(value)) return value.length === 0 ? { type: 'none' } : parseRule(value.map((r) => `role:${r}`).join(' or '));
  try {
    return parseRule(value as string);
  } catch (err) {
    if (err instanceof RuleSyntaxError) throw new Error(`policy rule for action "${action}", column ${err.column}: ${err.message}`);
    throw err;
  }
}

const setters = new WeakMap<Policy, (rules: Record<Action, RuleExpression>) => void>();

export function createPolicy(options: { overrides?: RuleOverrides; allowMd5Checksums?: boolean } = {}): Policy {
  const rules = {} as Record<Action, RuleExpression>;
  for (const action of Object.keys(ACTIONS) as Action[]) rules[action] = parseRule(DEFAULT_RULES[action]);
  for (const [action, value] of Object.entries(options.overrides ?? {})) {
    if (!(action in ACTIONS)) throw new Error(`policy override names unknown action "${action}"; known: ${Object.keys(ACTIONS).join(', ')}`);
    rules[action as Action] = ruleFromOverride(action, value as string | readonly string[]);
  }
  let current: Readonly<Record<Action, RuleExpression>> = Object.freeze(rules);
  const policy: Policy = {
    get rules() {
      return current;
    },
    allowMd5Checksums: options.allowMd5Checksums ?? false,
  };
  setters.set(policy, (next) => {
    current = Object.freeze({ ...next });
  });
  return policy;
}

/**
 * Makes `target` (the policy the running server holds) use the rules of `next`, atomically:
 * a request sees either the old rules or the new ones, never a mix.
 */
export function replacePolicyRules(target: Policy, next: Policy): void {
  const set = setters.get(target);
  if (!set) throw new Error('replacePolicyRules: the target policy was not made by createPolicy');
  set({ ...next.rules });
}

/** Whether an identity with these roles may perform the action. */
export function isAllowed(policy: Policy, roles: readonly string[], action: Action): boolean {
  const rule = policy.rules[action];
  return rule !== undefined && evaluateRule(rule, roles);
}

export function isRouteAction(value: unknown): value is RouteAction {
  return value === PUBLIC || (typeof value === 'string' && Object.prototype.hasOwnProperty.call(ACTIONS, value));
}

/** Who is calling, as established by authentication. */
export interface Identity {
  tokenId: string;
  /**
   * The person or automation behind the token: an OIDC token's `oidc:<sub>`; for an Ingot
   * token minted through the API, the principal of the token that minted it; otherwise the
   * token's own id. Rules about "another person" (the two-person rule) compare principals.
   */
  principal: string;
  /** 'api' for people and automation, 'agent' for one-boot agent tokens. */
  type: 'api' | 'agent';
  roles: readonly string[];
  /** '' for platform-wide tokens. */
  project: string;
  /** For agent tokens: the host this token is bound to. */
  hostUid: string;
  /** The token's description, for audit events (bounded, never a secret). */
  description?: string;
}

/** Whether the roles would satisfy the action's rule once another identity approves (approval:required true). */
export function isAllowedWithApproval(policy: Policy, roles: readonly string[], action: Action): boolean {
  const rule = policy.rules[action];
  return rule !== undefined && evaluateRule(rule, roles, true);
}

/**
 * Throws 403 INGOT_ERR_FORBIDDEN naming the action unless the identity's roles satisfy its rule.
 * With `approvals` (the server holds changes for a second person, src/server/approvals/), a
 * rule satisfied only through approval:required answers 'approval-required' instead of throwing.
 */
export function authorize(
  policy: Policy,
  identity: Identity,
  action: Action,
  options: { approvals?: boolean; /** On a platform route project roles cannot help: the hint leaves them out. */ platformRoute?: boolean } = {},
): 'allowed' | 'approval-required' {
  if (isAllowed(policy, identity.roles, action)) return 'allowed';
  if (options.approvals && isAllowedWithApproval(policy, identity.roles, action)) return 'approval-required';
  const rule = policy.rules[action];
  const held = identity.roles.length > 0 ? identity.roles.join(', ') : 'none';
  const roles = (rule ? rolesIn(rule) : []).filter((r) => !(options.platformRoute && PROJECT_ROLE_NAMES.has(r)));
  const hint = rule && requiresApproval(rule)
    ? `the policy requires an approval for it (${formatRule(rule)}), and this request cannot be held for one (approvals cover host changes only)`
    : `ask a platform admin for a token with one of: ${roles.length > 0 ? roles.join(', ') : '(no role: denied by policy)'}`;
  throw new IngotError('INGOT_ERR_FORBIDDEN', `action ${action} (${ACTIONS[action]}) is not allowed for your roles (${held}); ${hint}`);
}
