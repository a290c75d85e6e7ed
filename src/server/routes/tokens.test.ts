import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashToken, TOKEN_PATTERN } from '../auth/tokens.js';
import { addToken, startApiFixture, type ApiFixture } from '../testing/api-fixture.js';

let api: ApiFixture;
beforeAll(async () => {
  api = await startApiFixture({ maxTokenLifetimeSeconds: 30 * 86400 });
});
afterAll(async () => {
  await api?.close();
});

describe('API tokens', () => {
  it('create shows the value once, stores only its hash, and the new token works with its roles', async () => {
    const res = await api.call('POST', '/api/v1/tokens', { body: { roles: ['platform-reader'], description: 'ci reader', expiresInSeconds: 86400 } });
    expect(res.status).toBe(201);
    expect(res.json.token).toMatch(TOKEN_PATTERN);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const stored = await api.store.findTokenByHash(hashToken(res.json.token));
    expect(stored?.id).toBe(res.json.id);
    expect(JSON.stringify(stored)).not.toContain(res.json.token);
    expect((await api.call('GET', '/api/v1/hosts', { token: res.json.token })).status).toBe(200);
    expect((await api.call('POST', '/api/v1/secrets', { token: res.json.token, body: {} })).status).toBe(403);
    const list = await api.call('GET', '/api/v1/tokens');
    const row = list.json.items.find((t: { id: string }) => t.id === res.json.id);
    expect(row.description).toBe('ci reader');
    expect(row).not.toHaveProperty('token');
    expect(row).not.toHaveProperty('hash');
    expect(list.text).not.toContain(res.json.token);
    expect(row.lastUsedAt).toBeTypeOf('string');
  });

  it('expiry is required and bounded by the configured maximum, naming the field', async () => {
    const missing = await api.call('POST', '/api/v1/tokens', { body: { roles: ['platform-reader'], description: 'x' } });
    expect(missing.status).toBe(400);
    expect(missing.text).toContain('expiresInSeconds');
    const tooLong = await api.call('POST', '/api/v1/tokens', { body: { roles: ['platform-reader'], description: 'x', expiresInSeconds: 31 * 86400 } });
    expect(tooLong.status).toBe(400);
    expect(tooLong.json.details[0].field).toBe('expiresInSeconds');
    expect(tooLong.json.details[0].message).toContain('30 days');
  });

  it('roles are validated: unknown roles, agent, and project roles without a project are refused', async () => {
    for (const body of [
      { roles: ['root'], description: 'x', expiresInSeconds: 3600 },
      { roles: ['agent'], description: 'x', expiresInSeconds: 3600 },
      { roles: ['project-admin'], description: 'x', expiresInSeconds: 3600 },
      { roles: ['platform-reader'], project: 'p', description: 'x', expiresInSeconds: 3600 },
    ]) {
      expect((await api.call('POST', '/api/v1/tokens', { body })).status, JSON.stringify(body)).toBe(400);
    }
  });

  it('no privilege escalation: a creator cannot grant roles that allow more than its own', async () => {
    // A policy where a controller may create tokens: it still cannot mint a platform-admin.
    const { createPolicy } = await import('../auth/policy.js');
    const limited = await startApiFixture({ policy: createPolicy({ overrides: { 'token:create': 'role:platform-admin or role:controller' } }) });
    try {
      const controller = await addToken(limited.store, ['controller']);
      const up = await limited.call('POST', '/api/v1/tokens', { token: controller, body: { roles: ['platform-admin'], description: 'escalate', expiresInSeconds: 3600 } });
      expect(up.status).toBe(403);
      expect(up.json.message).toContain('host:create');
      const reader = await limited.call('POST', '/api/v1/tokens', { token: controller, body: { roles: ['platform-reader'], description: 'reader', expiresInSeconds: 3600 } });
      // platform-reader may list tokens and read the audit trail, which controller may not.
      expect(reader.status).toBe(403);
      expect(reader.json.message).toContain('token:list');
      const same = await limited.call('POST', '/api/v1/tokens', { token: controller, body: { roles: ['controller'], description: 'same', expiresInSeconds: 3600 } });
      expect(same.status).toBe(201);
      expect((await limited.store.listTokens()).filter((t) => t.roles.includes('platform-admin')).length).toBe(1);
    } finally {
      await limited.close();
    }
  });

  it('revoke: the token stops working; unknown ids are 404', async () => {
    const created = await api.call('POST', '/api/v1/tokens', { body: { roles: ['controller'], description: 'to revoke', expiresInSeconds: 3600 } });
    expect((await api.call('GET', '/api/v1/hosts', { token: created.json.token })).status).toBe(200);
    const revoked = await api.call('DELETE', `/api/v1/tokens/${created.json.id}`);
    expect(revoked.status).toBe(200);
    expect(revoked.json.revokedAt).toBeTypeOf('string');
    expect((await api.call('GET', '/api/v1/hosts', { token: created.json.token })).status).toBe(401);
    expect((await api.call('DELETE', '/api/v1/tokens/00000000-0000-4000-8000-000000000000')).status).toBe(404);
  });
});
