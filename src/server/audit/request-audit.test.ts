import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addToken, hostManifest, secretManifest, startApiFixture, type ApiFixture } from '../testing/api-fixture.js';

let api: ApiFixture;
const SECRET_VALUE = 'S3cr3t-value-that-must-never-leak';
beforeAll(async () => {
  api = await startApiFixture();
});
afterAll(async () => {
  await api?.close();
});

describe('audit wiring', () => {
  it('records writes with actor, roles, address, request id, target, outcome and redacted fields; denials; auth failures', async () => {
    const created = await api.call('POST', '/api/v1/secrets', { body: secretManifest('audited', { username: 'admin', password: SECRET_VALUE }) });
    expect(created.status).toBe(201);
    const reader = await addToken(api.store, ['platform-reader']);
    expect((await api.call('DELETE', '/api/v1/secrets/audited', { token: reader })).status).toBe(403);
    expect((await api.call('GET', '/api/v1/hosts', { token: 'ingot_' + 'B'.repeat(43) })).status).toBe(401);
    expect((await api.call('POST', '/api/v1/hosts', { body: hostManifest('bad name!') })).status).toBe(400);

    const res = await api.call('GET', '/api/v1/audit?limit=50');
    expect(res.status).toBe(200);
    const events = res.json.items as Array<Record<string, any>>;
    const write = events.find((e) => e.action === 'secret:create')!;
    expect(write.outcome).toBe('succeeded');
    expect(write.target).toEqual({ kind: 'Secret', project: '', name: 'audited' });
    expect(write.roles).toEqual(['platform-admin']);
    expect(write.sourceAddress).toBe('127.0.0.1');
    expect(write.requestId).toBe(created.headers.get('x-request-id'));
    expect(write.actor).toContain('test platform-admin');
    expect(write.changes.some((c: { path: string; after?: unknown }) => c.path.startsWith('stringData') && c.after === '[redacted]')).toBe(true);
    const denied = events.find((e) => e.action === 'secret:delete')!;
    expect(denied.outcome).toBe('denied');
    expect(denied.target.name).toBe('audited');
    expect(events.find((e) => e.action === 'auth:failed')?.actor).toBe('anonymous');
    expect(events.find((e) => e.action === 'host:create')?.outcome).toBe('failed');
  });

  it('verify: OK with the count; after tampering a row with SQL it names the first bad event', async () => {
    const ok = await api.call('GET', '/api/v1/audit/verify');
    expect(ok.json.ok).toBe(true);
    expect(ok.json.count).toBeGreaterThanOrEqual(4);
    const db = new Database(api.databasePath);
    try {
      const row = db.prepare("select seq from audit_events where action = 'secret:create'").get() as { seq: number };
      db.prepare("update audit_events set actor = 'someone-else' where seq = ?").run(row.seq);
      const bad = await api.call('GET', '/api/v1/audit/verify');
      expect(bad.json.ok).toBe(false);
      expect(bad.json.seq).toBe(row.seq);
      expect(bad.json.problem).toBe('hash-mismatch');
    } finally {
      db.close();
    }
  });

  it('no secret value appears in any response body or log line captured in this suite', async () => {
    // Exercise the paths most likely to leak: a read, a failed replace, a denied reveal.
    await api.call('GET', '/api/v1/secrets/audited');
    await api.call('PUT', '/api/v1/secrets/audited', { body: secretManifest('other', { password: SECRET_VALUE }) });
    await api.call('GET', '/api/v1/secrets/audited/reveal');
    expect(api.logLines.length).toBeGreaterThan(0);
    for (const text of [...api.bodies, ...api.logLines]) expect(text).not.toContain(SECRET_VALUE);
    for (const e of await api.store.listAuditEvents({ limit: 1000 })) expect(JSON.stringify(e)).not.toContain(SECRET_VALUE);
  });
});
