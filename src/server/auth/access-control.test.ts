import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../store/open-store.js';
import { SecretBox } from '../../store/secret-box.js';
import { buildAgentServer } from '../agent-server.js';
import { buildApiServer } from '../api-server.js';
import { createLogger } from '../logger.js';
import { addToken, hostManifest, secretManifest, startApiFixture, type ApiFixture } from '../testing/api-fixture.js';
import { MissingRouteActionError, registeredRoutes } from './access-control.js';
import { ACTIONS, createPolicy, DEFAULT_RULES, PUBLIC } from './policy.js';
import { hashToken } from './tokens.js';

let api: ApiFixture;

beforeAll(async () => {
  api = await startApiFixture();
  expect((await api.call('POST', '/api/v1/secrets', { body: secretManifest('bmc-creds', { username: 'u', password: 'p' }) })).status).toBe(201);
  // Project "p" for the project routes; its secret keeps DELETE /api/v1/projects/p from succeeding.
  expect((await api.call('POST', '/api/v1/projects', { body: { metadata: { name: 'p' }, spec: {} } })).status).toBe(201);
  expect((await api.call('POST', '/api/v1/projects/p/secrets', { body: secretManifest('keep', { userData: '#cloud-config' }) })).status).toBe(201);
});
afterAll(async () => {
  await api?.close();
});

/**
 * The expected authorization table, written out by hand (not derived from policy.ts) so a
 * change to the default rules must be made twice, on purpose. Keys are the API roles.
 */
const R = ['platform-admin', 'platform-reader', 'controller', 'project-admin', 'project-member', 'project-viewer'] as const;
const ADMIN = ['platform-admin'];
const READ = ['platform-admin', 'platform-reader', 'controller'];
const TENANTS = ['project-admin', 'project-member', 'project-viewer'];
const CLAIMERS = ['project-admin', 'project-member'];
/** The routes of one resource kind as resource-routes.ts registers them. */
function kindRoutes(base: string, prefix: string, item: string, rules: { list: readonly string[]; get: readonly string[]; create: readonly string[]; update: readonly string[]; del: readonly string[] }) {
  return {
    [`GET ${base}`]: { action: `${prefix}:list`, allowed: rules.list },
    [`POST ${base}`]: { action: `${prefix}:create`, allowed: rules.create },
    [`GET ${base}/${item}`]: { action: `${prefix}:get`, allowed: rules.get },
    [`PUT ${base}/${item}`]: { action: `${prefix}:update`, allowed: rules.update },
    [`PATCH ${base}/${item}`]: { action: `${prefix}:update`, allowed: rules.update },
    [`DELETE ${base}/${item}`]: { action: `${prefix}:delete`, allowed: rules.del },
  };
}
const PLATFORM_KIND = { list: READ, get: READ, create: ADMIN, update: ADMIN, del: ADMIN };
/** '@' = any authenticated identity, also one with no roles. */
const EXPECTED: Record<string, { action: string; allowed: readonly string[] | '@' }> = {
  'GET /api/openapi.json': { action: 'api:discover', allowed: '@' },
  'GET /api/v1/hosts': { action: 'host:list', allowed: READ },
  'POST /api/v1/hosts': { action: 'host:create', allowed: ADMIN },
  'GET /api/v1/hosts/:name': { action: 'host:get', allowed: READ },
  'PUT /api/v1/hosts/:name': { action: 'host:update', allowed: ['platform-admin', 'controller'] },
  'PATCH /api/v1/hosts/:name': { action: 'host:update', allowed: ['platform-admin', 'controller'] },
  'DELETE /api/v1/hosts/:name': { action: 'host:delete', allowed: ADMIN },
  'POST /api/v1/hosts/:name/force-delete': { action: 'host:force-delete', allowed: ADMIN },
  'GET /api/v1/hosts/:name/events': { action: 'host:get', allowed: READ },
  'GET /api/v1/secrets': { action: 'secret:list', allowed: READ },
  'POST /api/v1/secrets': { action: 'secret:create', allowed: ADMIN },
  'GET /api/v1/secrets/:name': { action: 'secret:get', allowed: READ },
  'PUT /api/v1/secrets/:name': { action: 'secret:update', allowed: ADMIN },
  'DELETE /api/v1/secrets/:name': { action: 'secret:delete', allowed: ADMIN },
  'GET /api/v1/secrets/:name/reveal': { action: 'secret:reveal', allowed: [] },
  'POST /api/v1/secrets/-/rekey': { action: 'secret:rekey', allowed: ADMIN },
  'POST /api/v1/tokens': { action: 'token:create', allowed: ADMIN },
  'GET /api/v1/tokens': { action: 'token:list', allowed: ['platform-admin', 'platform-reader'] },
  'DELETE /api/v1/tokens/:id': { action: 'token:revoke', allowed: ADMIN },
  'GET /api/v1/audit': { action: 'audit:list', allowed: ['platform-admin', 'platform-reader'] },
  'GET /api/v1/audit/verify': { action: 'audit:verify', allowed: ['platform-admin', 'platform-reader'] },
  'GET /api/v1/approvals': { action: 'approval:list', allowed: ['platform-admin', 'platform-reader'] },
  'POST /api/v1/approvals/:id/approve': { action: 'approval:approve', allowed: ADMIN },
  'POST /api/v1/approvals/:id/reject': { action: 'approval:reject', allowed: ADMIN },
  // Tenancy. Project roles count only on their own project's routes: on platform
  // routes they are dropped before the policy is asked, so tenants get 403 there even where
  // the rule names their role (project-scope.ts).
  ...kindRoutes('/api/v1/osimages', 'osimage', ':name', PLATFORM_KIND),
  ...kindRoutes('/api/v1/nodetypes', 'nodetype', ':name', PLATFORM_KIND),
  'GET /api/v1/projects/:project/nodetypes': { action: 'nodetype:list', allowed: [...READ, ...TENANTS] },
  'GET /api/v1/projects/:project/nodetypes/:name': { action: 'nodetype:get', allowed: [...READ, ...TENANTS] },
  ...kindRoutes('/api/v1/projects', 'project', ':project', { ...PLATFORM_KIND, get: [...READ, ...TENANTS] }),
  ...kindRoutes('/api/v1/ippools', 'ippool', ':name', PLATFORM_KIND),
  'GET /api/v1/ippools/:name/addresses': { action: 'ippool:get', allowed: READ },
  'GET /api/v1/claims': { action: 'claim:list', allowed: READ },
  ...kindRoutes('/api/v1/projects/:project/claims', 'claim', ':name', {
    list: [...READ, ...TENANTS],
    get: [...READ, ...TENANTS],
    create: [...ADMIN, ...CLAIMERS],
    update: [...ADMIN, 'controller', ...CLAIMERS],
    del: [...ADMIN, ...CLAIMERS],
  }),
  'GET /api/v1/claimsets': { action: 'claimset:list', allowed: READ },
  ...kindRoutes('/api/v1/projects/:project/claimsets', 'claimset', ':name', {
    list: [...READ, ...TENANTS],
    get: [...READ, ...TENANTS],
    create: [...ADMIN, ...CLAIMERS],
    update: [...ADMIN, ...CLAIMERS],
    del: [...ADMIN, ...CLAIMERS],
  }),
  'GET /api/v1/projects/:project/secrets': { action: 'secret:list', allowed: [...READ, ...TENANTS] },
  'POST /api/v1/projects/:project/secrets': { action: 'secret:create', allowed: [...ADMIN, 'project-admin'] },
  'GET /api/v1/projects/:project/secrets/:name': { action: 'secret:get', allowed: [...READ, ...TENANTS] },
  'PUT /api/v1/projects/:project/secrets/:name': { action: 'secret:update', allowed: [...ADMIN, 'project-admin'] },
  'DELETE /api/v1/projects/:project/secrets/:name': { action: 'secret:delete', allowed: [...ADMIN, 'project-admin'] },
};

/** A request that reaches each route's handler when authorized (bodies need not be valid). */
function requestFor(route: { method: string; url: string }, name: string): { path: string; body?: unknown } {
  const path = route.url.replace(':project', 'p').replace(':name', name).replace(':id', '00000000-0000-4000-8000-000000000000');
  if (route.url === '/api/v1/secrets/-/rekey') return { path, body: { retireOnly: true } };
  if (route.url === '/api/v1/tokens' && route.method === 'POST') return { path, body: { roles: ['project-viewer'], project: 'p', description: 'matrix', expiresInSeconds: 3600 } };
  if (route.method === 'POST' || route.method === 'PUT' || route.method === 'PATCH') {
    return { path, body: route.url.includes('secrets') ? secretManifest(name, { username: 'u', password: 'p' }) : hostManifest(name) };
  }
  return { path };
}

describe('route x role matrix (public API)', () => {
  it('every registered route is in the expected table, and every table row is a registered route', () => {
    const routes = registeredRoutes(api.app).filter((r) => r.action !== PUBLIC);
    const keys = routes.map((r) => `${r.method} ${r.url}`);
    expect(keys.sort()).toEqual(Object.keys(EXPECTED).sort());
    for (const r of routes) expect(r.action, `${r.method} ${r.url}`).toBe(EXPECTED[`${r.method} ${r.url}`]!.action);
  });

  it('EVERY route x EVERY role: allowed roles pass access control, all others get 403 naming the action; no token -> 401', async () => {
    const tokens: Record<string, string> = {};
    // Tenant tokens belong to project p, the project every project route of the table names.
    for (const role of R) tokens[role] = await addToken(api.store, [role], role.startsWith('project-') ? { project: 'p' } : {});
    tokens['(no roles)'] = api.noRoleToken;
    let checked = 0;
    for (const route of registeredRoutes(api.app)) {
      const what = `${route.method} ${route.url} (${route.action})`;
      const name = `m-${route.method.toLowerCase()}`;
      const { path, body } = requestFor(route, name);
      const anonymous = await api.call(route.method, path, { token: null, ...(body ? { body } : {}) });
      if (route.action === PUBLIC) {
        expect(anonymous.status, what).toBe(200);
        continue;
      }
      expect(anonymous.status, what).toBe(401);
      const expected = EXPECTED[`${route.method} ${route.url}`];
      expect(expected, `${what} has no row in EXPECTED`).toBeDefined();
      for (const [role, token] of Object.entries(tokens)) {
        const res = await api.call(route.method, path, { token, ...(body ? { body } : {}) });
        if (expected!.allowed === '@' || expected!.allowed.includes(role)) {
          expect([401, 403], `${what} as ${role} answered ${res.status}: ${res.text.slice(0, 300)}`).not.toContain(res.status);
        } else {
          expect(res.status, `${what} as ${role}: ${res.text.slice(0, 300)}`).toBe(403);
          expect(res.json.code, what).toBe('INGOT_ERR_FORBIDDEN');
          expect(res.json.message, what).toContain(`action ${route.action}`);
        }
        checked++;
      }
    }
    expect(checked).toBe(Object.keys(EXPECTED).length * (R.length + 1));
  });

  it('only /healthz and /readyz are public, and every other route names a known action', () => {
    const routes = registeredRoutes(api.app);
    expect(routes.filter((r) => r.action === PUBLIC).map((r) => r.url).sort()).toEqual(['/healthz', '/readyz']);
    for (const r of routes) if (r.action !== PUBLIC) expect(Object.keys(ACTIONS)).toContain(r.action);
  });

  it('PUT that would create also needs host:create', async () => {
    const policy = createPolicy({ overrides: { 'host:create': [], 'host:get': ['updater', 'platform-admin'], 'host:update': ['updater'] } });
    const limited = await startApiFixture({ policy });
    try {
      const updater = await addToken(limited.store, ['updater']);
      await limited.call('POST', '/api/v1/secrets', { body: secretManifest('bmc-creds', { username: 'u', password: 'p' }) });
      const res = await limited.call('PUT', '/api/v1/hosts/new-one', { token: updater, body: hostManifest('new-one') });
      expect(res.status).toBe(403);
      expect(res.json.message).toContain('action host:create');
      expect((await limited.call('GET', '/api/v1/hosts/new-one')).status).toBe(404);
    } finally {
      await limited.close();
    }
  });

  it('default rules cover every action', () => {
    for (const action of Object.keys(ACTIONS)) expect(DEFAULT_RULES[action as keyof typeof ACTIONS]?.length, action).toBeGreaterThan(0);
  });

  it('the admin token that may do everything else is still refused secret:reveal by default', async () => {
    const res = await api.call('GET', '/api/v1/secrets/bmc-creds/reveal');
    expect(res.status).toBe(403);
    expect(res.text).not.toContain('"p"');
  });
});

describe('tokens', () => {
  it('refuses expired, revoked and agent tokens on the public API', async () => {
    const expired = await addToken(api.store, ['platform-admin'], { expiresAt: Date.now() - 1000 });
    const revoked = await addToken(api.store, ['platform-admin'], { revokedAt: new Date().toISOString() });
    for (const [token, reason] of [
      [expired, 'expired'],
      [revoked, 'revoked'],
      [api.agentToken, 'agent token'],
    ] as const) {
      const res = await api.call('GET', '/api/v1/hosts', { token });
      expect(res.status, reason).toBe(401);
      expect(res.json.message).toContain(reason);
    }
  });

  it('records lastUsedAt on use', async () => {
    const token = await addToken(api.store, ['platform-admin']);
    expect((await api.store.findTokenByHash(hashToken(token)))?.lastUsedAt).toBeUndefined();
    expect((await api.call('GET', '/api/v1/hosts', { token })).status).toBe(200);
    // touchToken is not awaited by the request; poll the store briefly.
    let lastUsedAt: string | undefined;
    for (let i = 0; i < 50 && !lastUsedAt; i++) {
      lastUsedAt = (await api.store.findTokenByHash(hashToken(token)))?.lastUsedAt;
      if (!lastUsedAt) await new Promise((r) => setTimeout(r, 20));
    }
    expect(lastUsedAt).toBeTruthy();
  });
});

describe('agent listener separation', () => {
  it('the public listener does not serve agent routes, with or without a token', async () => {
    for (const token of [null, api.adminToken, api.agentToken]) {
      expect((await api.call('POST', '/agent/v1/lookup', { token, body: {} })).status).toBe(404);
      expect((await api.call('GET', '/agent/v1/commands', { token })).status).toBe(404);
    }
  });

  it('the agent listener does not serve the public API', async () => {
    for (const token of [null, api.adminToken, api.agentToken]) {
      expect((await api.call('GET', '/api/v1/hosts', { token, base: 'agent' })).status).toBe(404);
      expect((await api.call('GET', '/api/openapi.json', { token, base: 'agent' })).status).toBe(404);
    }
  });

  it('agent routes: 401 without a token, with an API token, or with an agent token bound to no host; /healthz public', async () => {
    const routes = registeredRoutes(api.agentApp);
    expect(routes.map((r) => r.action).sort()).toEqual(['agent:boot-media', 'agent:commands', 'agent:heartbeat', 'agent:image', 'agent:lookup', 'agent:results', 'public']);
    for (const route of routes) {
      const body = route.method === 'POST' ? { body: {} } : {};
      if (route.action === PUBLIC) {
        expect((await api.call(route.method, route.url, { token: null, base: 'agent' })).status).toBe(200);
        continue;
      }
      const url = route.url.replace(':mediaId', 'A'.repeat(43)).replace(':digest', 'a'.repeat(64));
      if (route.action === 'agent:boot-media') {
        // The URL is the credential: no bearer needed, and an unknown id is simply not found.
        expect((await api.call(route.method, url, { token: null, base: 'agent' })).status).toBe(404);
        continue;
      }
      expect((await api.call(route.method, url, { token: null, base: 'agent', ...body })).status, url).toBe(401);
      expect((await api.call(route.method, url, { token: api.adminToken, base: 'agent', ...body })).status, url).toBe(401);
      const res = await api.call(route.method, url, { token: api.agentToken, base: 'agent', ...body });
      // Bodies are validated before the handler; a valid request with a host-less token is refused.
      expect([400, 401, 501], `${url} answered ${res.status}`).toContain(res.status);
      if (route.method === 'GET' && route.action !== 'agent:image') expect(res.status, url).toBe(401);
    }
  });
});

describe('a route without an action', () => {
  async function deps() {
    const dir = mkdtempSync(join(tmpdir(), 'ingot-noaction-'));
    const store = await openStore({ database: join(dir, 'ingot.db') });
    return {
      store,
      log: createLogger({ level: 'silent' }),
      cleanup: async () => {
        await store.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }

  it('makes the public server fail to start', async () => {
    const { store, log, cleanup } = await deps();
    try {
      const app = buildApiServer({ store, log, secretBox: new SecretBox(randomBytes(32)), policy: createPolicy() });
      await expect(
        (async () => {
          await app.register(async (child) => {
            child.get('/api/v1/unguarded', async () => ({ ok: true }));
          });
          await app.ready();
        })(),
      ).rejects.toThrow(MissingRouteActionError);
      await app.close().catch(() => {});
    } finally {
      await cleanup();
    }
  });

  it('makes the agent server fail to start, as does an unknown action', async () => {
    const { store, log, cleanup } = await deps();
    try {
      const app = buildAgentServer({ store, log, policy: createPolicy() });
      await expect(
        (async () => {
          app.route({ method: 'GET', url: '/agent/v1/typo', config: { action: 'agent:lookpu' as never }, handler: async () => ({}) });
          await app.ready();
        })(),
      ).rejects.toThrow(/unknown config.action "agent:lookpu"/);
      await app.close().catch(() => {});
    } finally {
      await cleanup();
    }
  });
});
