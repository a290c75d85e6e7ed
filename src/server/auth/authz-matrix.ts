// Renders docs/authz-matrix.md from the code: the default rule of every action, which role
// it allows, and which route enforces it. authz-matrix.test.ts fails when the committed file
// differs from what this renders; regenerate with
//   INGOT_WRITE_AUTHZ_MATRIX=1 npx vitest run src/server/auth/authz-matrix.test.ts
import type { RegisteredRoute } from './access-control.js';
import { ACTIONS, CAPABILITY_URL_ACTIONS, isAllowed, PUBLIC, ROLES, type Action, type Policy } from './policy.js';
import { formatRule } from './rule-expression.js';

export const AUTHZ_MATRIX_PATH = 'docs/authz-matrix.md';

export function renderAuthzMatrix(policy: Policy, routes: { api: readonly RegisteredRoute[]; agent: readonly RegisteredRoute[] }): string {
  const lines: string[] = [];
  const routesOf = (action: Action) =>
    [...routes.api, ...routes.agent]
      .filter((r) => r.action === action)
      .map((r) => `\`${r.method} ${r.url}\``)
      .join('<br>') || '(none)';
  lines.push('# Authorization matrix');
  lines.push('');
  lines.push('Generated from `src/server/auth/policy.ts` (DEFAULT_RULES) and the registered routes by');
  lines.push('`src/server/auth/authz-matrix.ts`; do not edit by hand. A test fails when this file is stale.');
  lines.push('');
  lines.push('Rules use the policy language: `role:NAME`, `@` (any authenticated identity), `!` (nobody),');
  lines.push('`approval:required` (a host change is held until a different identity approves it, see docs/approvals.md; any other action with it is denied), `and`, `or`, parentheses.');
  lines.push('Override them with `ingot server --policy-file FILE` (YAML: `action: "rule"`); `kill -HUP` reloads it,');
  lines.push('and a file with an unknown action or role or a syntax error is refused (the running policy stays).');
  lines.push('');
  lines.push('Project roles (project-admin, project-member, project-viewer) count only on the routes of their own');
  lines.push("project (`/api/v1/projects/P/...`, where P is the token's or OIDC claim's project, or a project listing");
  lines.push('the OIDC subject in spec.members). Everywhere else they are dropped before the policy is asked, so a');
  lines.push('"yes" in a project column below holds on that project\'s routes only (src/server/auth/project-scope.ts).');
  lines.push('`agent` is carried only by one-boot agent tokens and only works on the agent listener.');
  lines.push('');
  lines.push(`| Action | Default rule | ${ROLES.join(' | ')} | Routes |`);
  lines.push(`|---|---|${ROLES.map(() => ':-:').join('|')}|---|`);
  for (const action of Object.keys(ACTIONS) as Action[]) {
    const cells = ROLES.map((role) => (isAllowed(policy, [role], action) ? 'yes' : '-'));
    const rule = formatRule(policy.rules[action]);
    const note = CAPABILITY_URL_ACTIONS.has(action) ? ' (capability URL, no bearer token)' : '';
    lines.push(`| \`${action}\` | \`${rule}\`${note} | ${cells.join(' | ')} | ${routesOf(action)} |`);
  }
  lines.push('');
  lines.push('## Actions');
  lines.push('');
  for (const [action, what] of Object.entries(ACTIONS)) lines.push(`- \`${action}\`: ${what}`);
  lines.push('');
  const publicRoutes = [...routes.api, ...routes.agent].filter((r) => r.action === PUBLIC).map((r) => `\`${r.method} ${r.url}\``);
  lines.push(`Unauthenticated routes: ${[...new Set(publicRoutes)].join(', ')}.`);
  lines.push('');
  return lines.join('\n');
}
