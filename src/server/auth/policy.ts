// Authorization: every route names one action; a policy maps each action to the roles allowed
// to perform it. The default policy lives here, in code; issue 5 adds more roles and an
// operator override file, which only has to produce another `Rules` record (createPolicy merges).
import { IngotError } from '../../model/errors.js';

/** Every action a route may name, with what it allows. Keep sorted by resource. */
export const ACTIONS = {
  'api:discover': 'read the OpenAPI document describing this API',
  'host:list': 'list hosts and watch them for changes',
  'host:get': 'read one host and its events',
  'host:create': 'enroll a new host',
  'host:update': 'change a host (spec, labels, annotations)',
  'host:delete': 'ask for a host to be powered off and removed',
  'secret:list': 'list secrets (metadata and key names only, never values)',
  'secret:get': 'read one secret (metadata and key names only, never values)',
  'secret:create': 'create a secret',
  'secret:update': 'replace the values of a secret',
  'secret:delete': 'delete a secret no host references',
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

/** Roles known to the default policy. `agent` is carried only by one-boot agent tokens. */
export const ROLES = ['platform-admin', 'agent'] as const;
export type Role = (typeof ROLES)[number] | (string & {});

export type Rules = Record<Action, readonly Role[]>;

const ALL_API_ACTIONS = (Object.keys(ACTIONS) as Action[]).filter((a) => !a.startsWith('agent:'));

/**
 * Default rules: platform-admin may do every API action; the agent actions belong to agent
 * tokens alone (an admin token on the agent listener is refused: the agent API is a separate
 * trust zone, DESIGN.md "The agent protocol").
 */
export const DEFAULT_RULES: Rules = Object.fromEntries([
  ...ALL_API_ACTIONS.map((a) => [a, ['platform-admin']] as const),
  ...(Object.keys(ACTIONS) as Action[]).filter((a) => a.startsWith('agent:')).map((a) => [a, ['agent']] as const),
]) as Rules;

export interface Policy {
  readonly rules: Rules;
  /** Image checksums of type md5 are refused unless this is set (DESIGN.md "Images"). */
  readonly allowMd5Checksums: boolean;
}

export function createPolicy(options: { overrides?: Partial<Rules>; allowMd5Checksums?: boolean } = {}): Policy {
  for (const action of Object.keys(options.overrides ?? {})) {
    if (!(action in ACTIONS)) throw new Error(`policy override names unknown action "${action}"; known: ${Object.keys(ACTIONS).join(', ')}`);
  }
  return { rules: { ...DEFAULT_RULES, ...options.overrides }, allowMd5Checksums: options.allowMd5Checksums ?? false };
}

export function isRouteAction(value: unknown): value is RouteAction {
  return value === PUBLIC || (typeof value === 'string' && Object.prototype.hasOwnProperty.call(ACTIONS, value));
}

/** Who is calling, as established by authentication. */
export interface Identity {
  tokenId: string;
  /** 'api' for people and automation, 'agent' for one-boot agent tokens. */
  type: 'api' | 'agent';
  roles: readonly string[];
  /** '' for platform-wide tokens. */
  project: string;
  /** For agent tokens: the host this token is bound to. */
  hostUid: string;
}

/** Throws 403 INGOT_ERR_FORBIDDEN naming the action unless one of the identity's roles allows it. */
export function authorize(policy: Policy, identity: Identity, action: Action): void {
  const allowed = policy.rules[action] ?? [];
  if (identity.roles.some((r) => allowed.includes(r))) return;
  const held = identity.roles.length > 0 ? identity.roles.join(', ') : 'none';
  throw new IngotError(
    'INGOT_ERR_FORBIDDEN',
    `action ${action} (${ACTIONS[action]}) is not allowed for your roles (${held}); ask a platform admin for a token with one of: ${allowed.length > 0 ? allowed.join(', ') : '(no role: denied by policy)'}`,
  );
}
