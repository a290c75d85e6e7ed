import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { SecretBox } from '../../store/secret-box.js';
import { buildApiServer } from '../api-server.js';
import { createAuditWriter } from '../audit/audit-writer.js';
import { createPolicy } from '../auth/policy.js';
import { createLogger } from '../logger.js';
import { addToken, CHECKSUM_SHA256, hostManifest, secretManifest, startApiFixture, type ApiFixture } from '../testing/api-fixture.js';

let api: ApiFixture | undefined;
let secondServer: FastifyInstance | undefined;
afterEach(async () => {
  await secondServer?.close();
  secondServer = undefined;
  await api?.close();
  api = undefined;
});

async function fixture(options: Parameters<typeof startApiFixture>[0]): Promise<ApiFixture> {
  api = await startApiFixture(options);
  expect((await api.call('POST', '/api/v1/secrets', { body: secretManifest('bmc-creds', { username: 'u', password: 'p' }) })).status).toBe(201);
  return api;
}

async function enroll(a: ApiFixture, ...names: string[]): Promise<void> {
  for (const name of names) expect((await a.call('POST', '/api/v1/hosts', { body: hostManifest(name) })).status).toBe(201);
}

describe('two-person rule over HTTP', () => {
  it('holds the delete over the threshold (host stays), refuses self-approval, runs on a second admin approval', async () => {
    const a = await fixture({ approvals: { destructiveThreshold: 2, windowSeconds: 300, ttlSeconds: 3600 } });
    await enroll(a, 'h1', 'h2', 'h3');
    expect((await a.call('DELETE', '/api/v1/hosts/h1')).status).toBe(202);
    expect((await a.call('DELETE', '/api/v1/hosts/h2')).status).toBe(202);
    const held = await a.call('DELETE', '/api/v1/hosts/h3');
    expect(held.status).toBe(202);
    expect(held.json).toMatchObject({ kind: 'Approval', state: 'pending', action: 'host:delete', target: { kind: 'Host', name: 'h3' } });
    expect(held.json.message).toContain('ingot approval approve');
    const id = held.json.id as string;
    expect((await a.call('GET', '/api/v1/hosts/h3')).json.metadata.deletionTimestamp).toBeUndefined();

    const listed = await a.call('GET', '/api/v1/approvals?state=pending');
    expect(listed.json.items.map((x: { id: string }) => x.id)).toEqual([id]);

    const self = await a.call('POST', `/api/v1/approvals/${id}/approve`);
    expect(self.status).toBe(403);
    expect(self.json.message).toContain('you cannot approve your own request');

    const reader = await addToken(a.store, ['platform-reader']);
    expect((await a.call('POST', `/api/v1/approvals/${id}/approve`, { token: reader })).status).toBe(403);

    const second = await addToken(a.store, ['platform-admin']);
    const approved = await a.call('POST', `/api/v1/approvals/${id}/approve`, { token: second, body: { reason: 'planned decommission' } });
    expect(approved.status, approved.text).toBe(200);
    expect(approved.json.state).toBe('executed');
    expect(approved.json.result.statusCode).toBe(202);
    expect((await a.call('GET', '/api/v1/hosts/h3')).json.metadata.deletionTimestamp).toEqual(expect.any(String));
    expect((await a.store.getApproval(id))?.state).toBe('executed');
    // Once executed it cannot run again.
    expect((await a.call('POST', `/api/v1/approvals/${id}/approve`, { token: second })).status).toBe(409);

    const events = await a.store.listAuditEvents({ limit: 100 });
    expect(events.some((e) => e.action === 'approval:request' && e.target.name === id)).toBe(true);
    expect(events.some((e) => e.action === 'host:delete' && e.target.name === 'h3' && e.reason.includes(`executes approval ${id}`))).toBe(true);
    expect(events.some((e) => e.action === 'approval:approve' && e.outcome === 'succeeded')).toBe(true);
  });

  it('the approver must be another person: a token minted by the requester (or by a token it minted) cannot approve', async () => {
    const a = await fixture({ approvals: { destructiveThreshold: 0 } });
    await enroll(a, 'h1');
    const held = await a.call('DELETE', '/api/v1/hosts/h1');
    expect(held.status).toBe(202);
    const mint = async (token: string): Promise<string> => {
      const res = await a.call('POST', '/api/v1/tokens', { token, body: { roles: ['platform-admin'], description: 'second admin token', expiresInSeconds: 3600 } });
      expect(res.status, res.text).toBe(201);
      return res.json.token as string;
    };
    const minted = await mint(a.adminToken);
    const mintedByMinted = await mint(minted);
    for (const token of [minted, mintedByMinted]) {
      const refused = await a.call('POST', `/api/v1/approvals/${held.json.id}/approve`, { token });
      expect(refused.status).toBe(403);
      expect(refused.json.message).toMatch(/you cannot approve your own request with another token of the same person/);
    }
    expect((await a.store.getApproval(held.json.id))?.state).toBe('pending');
    expect((await a.call('GET', '/api/v1/hosts/h1')).json.metadata.deletionTimestamp).toBeUndefined();
    // another person's token (not minted from the requester's) can
    const other = await addToken(a.store, ['platform-admin']);
    expect((await a.call('POST', `/api/v1/approvals/${held.json.id}/approve`, { token: other })).json.state).toBe('executed');
  });

  it('re-imaging is destructive; an invalid change is refused before it can be held', async () => {
    const a = await fixture({ approvals: { destructiveThreshold: 0 } });
    const image = { url: 'http://images.test/a.raw', checksum: CHECKSUM_SHA256, checksumType: 'sha256', format: 'raw' };
    expect((await a.call('POST', '/api/v1/hosts', { body: hostManifest('h1', { image }) })).status).toBe(201);
    // the same image again, or a label, is not destructive
    expect((await a.call('PATCH', '/api/v1/hosts/h1', { body: { spec: { image } } })).status).toBe(200);
    expect((await a.call('PATCH', '/api/v1/hosts/h1', { body: { metadata: { labels: { rack: 'r1' } } } })).status).toBe(200);
    const reimage = await a.call('PATCH', '/api/v1/hosts/h1', { body: { spec: { image: { ...image, url: 'http://images.test/b.raw', checksum: 'b'.repeat(64) } } } });
    expect(reimage.status).toBe(202);
    expect(reimage.json).toMatchObject({ kind: 'Approval', action: 'host:update' });
    expect((await a.call('GET', '/api/v1/hosts/h1')).json.spec.image.url).toBe('http://images.test/a.raw');
    // destructive but invalid: 400 naming the field, and no approval that could never run
    const before = (await a.store.listApprovals({ state: 'pending' })).length;
    const invalid = await a.call('PATCH', '/api/v1/hosts/h1', { body: { spec: { image: null, online: 'true' } } });
    expect(invalid.status).toBe(400);
    expect(invalid.json.message).toMatch(/spec\.online/);
    const badSecret = await a.call('PATCH', '/api/v1/hosts/h1', { body: { spec: { image: null, bmc: { address: 'fake://h1', credentialsName: 'missing' } } } });
    expect(badSecret.status).toBe(422);
    expect(await a.store.listApprovals({ state: 'pending' })).toHaveLength(before);
  });

  it('with approval:required, an invalid PATCH is a 400, not a 202', async () => {
    const policy = createPolicy({ overrides: { 'host:update': 'role:platform-admin and approval:required' } });
    const a = await fixture({ policy, approvals: { destructiveThreshold: 1000 } });
    await enroll(a, 'h1');
    const res = await a.call('PATCH', '/api/v1/hosts/h1', { body: { spec: { online: 'true' } } });
    expect(res.status).toBe(400);
    expect(await a.store.listApprovals({ state: 'pending' })).toHaveLength(0);
  });

  it('a client cannot forge the execution marker', async () => {
    const a = await fixture({ approvals: { destructiveThreshold: 0 } });
    await enroll(a, 'h1');
    const res = await a.call('DELETE', '/api/v1/hosts/h1', { headers: { 'x-ingot-approval-execution': 'guess' } });
    expect(res.status).toBe(403);
    expect((await a.call('GET', '/api/v1/hosts/h1')).json.metadata.deletionTimestamp).toBeUndefined();
  });

  it('counts deprovision and power-off of provisioned hosts as destructive, not harmless patches', async () => {
    const a = await fixture({ approvals: { destructiveThreshold: 0 } });
    await enroll(a, 'h1');
    // A label change is not destructive: runs at once.
    expect((await a.call('PATCH', '/api/v1/hosts/h1', { body: { metadata: { labels: { rack: 'r1' } } } })).status).toBe(200);
    const host = (await a.store.get({ kind: 'Host', project: '', name: 'h1' }))!;
    await a.store.replace({ ...host, spec: { ...host.spec, online: true }, status: { ...host.status, provisioning: { state: 'provisioned' } } });
    const off = await a.call('PATCH', '/api/v1/hosts/h1', { body: { spec: { online: false } } });
    expect(off.status).toBe(202);
    expect(off.json.kind).toBe('Approval');
    expect((await a.store.get({ kind: 'Host', project: '', name: 'h1' }))!.spec.online).toBe(true);
  });

  it('a rejected approval never runs; the requester may withdraw it', async () => {
    const a = await fixture({ approvals: { destructiveThreshold: 0 } });
    await enroll(a, 'h1');
    const id = (await a.call('DELETE', '/api/v1/hosts/h1')).json.id as string;
    const rejected = await a.call('POST', `/api/v1/approvals/${id}/reject`, { body: { reason: 'not today' } });
    expect(rejected.status, rejected.text).toBe(200);
    expect(rejected.json).toMatchObject({ state: 'rejected', reason: 'not today' });
    const second = await addToken(a.store, ['platform-admin']);
    expect((await a.call('POST', `/api/v1/approvals/${id}/approve`, { token: second })).status).toBe(409);
    expect((await a.call('GET', '/api/v1/hosts/h1')).json.metadata.deletionTimestamp).toBeUndefined();
  });

  it('an approval expires after its ttl (injected clock) and can no longer be approved', async () => {
    let clock = Date.parse('2026-01-01T00:00:00Z');
    const a = await fixture({ approvals: { destructiveThreshold: 0, ttlSeconds: 600 }, now: () => clock });
    await enroll(a, 'h1');
    const id = (await a.call('DELETE', '/api/v1/hosts/h1')).json.id as string;
    expect((await a.call('DELETE', '/api/v1/hosts/h1')).json.id).not.toBe(id);
    clock += 601_000;
    const second = await addToken(a.store, ['platform-admin']);
    const late = await a.call('POST', `/api/v1/approvals/${id}/approve`, { token: second });
    expect(late.status).toBe(409);
    expect(late.json.message).toContain('expired');
    expect((await a.store.getApproval(id))?.state).toBe('expired');
    const listed = await a.call('GET', '/api/v1/approvals');
    expect(listed.json.items.every((x: { state: string }) => x.state === 'expired')).toBe(true);
    expect((await a.call('GET', '/api/v1/hosts/h1')).json.metadata.deletionTimestamp).toBeUndefined();
  });

  it('the destructive window slides: after windowSeconds deletes run again without approval', async () => {
    let clock = Date.parse('2026-01-01T00:00:00Z');
    const a = await fixture({ approvals: { destructiveThreshold: 1, windowSeconds: 60 }, now: () => clock });
    await enroll(a, 'h1', 'h2', 'h3');
    expect((await a.call('DELETE', '/api/v1/hosts/h1')).json.kind).toBe('Host');
    expect((await a.call('DELETE', '/api/v1/hosts/h2')).json.kind).toBe('Approval');
    clock += 61_000;
    expect((await a.call('DELETE', '/api/v1/hosts/h3')).json.kind).toBe('Host');
  });

  it('two API servers on one database share the destructive window: together they run only destructiveThreshold', async () => {
    const approvals = { destructiveThreshold: 3, windowSeconds: 300, ttlSeconds: 3600 };
    const a = await fixture({ approvals });
    // A second server with its own ApprovalGate (as a second process would have) on the same database.
    secondServer = buildApiServer({
      store: a.store,
      secretBox: new SecretBox(randomBytes(32)),
      policy: createPolicy(),
      log: createLogger({ level: 'silent' }),
      audit: createAuditWriter({ store: a.store }),
      rateLimits: false,
      approvals,
    });
    const bUrl = await secondServer.listen({ host: '127.0.0.1', port: 0 });
    const names = Array.from({ length: 8 }, (_, i) => `h${i}`);
    await enroll(a, ...names);
    const deleteOn = async (base: string, name: string): Promise<string> => {
      const res = await fetch(`${base}/api/v1/hosts/${name}`, { method: 'DELETE', headers: { authorization: `Bearer ${a.adminToken}` } });
      expect(res.status, name).toBe(202);
      return ((await res.json()) as { kind: string }).kind;
    };
    // All at once, alternating servers: per-process counting would let 3 through on each (6).
    const kinds = await Promise.all(names.map((name, i) => deleteOn(i % 2 === 0 ? a.url : bUrl, name)));
    expect(kinds.filter((k) => k === 'Host')).toHaveLength(3);
    expect(kinds.filter((k) => k === 'Approval')).toHaveLength(5);
    const deleted = [];
    for (const name of names) if ((await a.store.get({ kind: 'Host', project: '', name }))?.deletionTimestamp !== undefined) deleted.push(name);
    expect(deleted).toHaveLength(3);
    expect(await a.store.listApprovals({ state: 'pending' })).toHaveLength(5);
  });

  it('an action whose override rule says approval:required always needs an approval, under any threshold', async () => {
    const policy = createPolicy({ overrides: { 'host:update': 'role:platform-admin and approval:required', 'secret:delete': 'role:platform-admin and approval:required' } });
    const a = await fixture({ policy, approvals: { destructiveThreshold: 1000 } });
    await enroll(a, 'h1');
    const held = await a.call('PATCH', '/api/v1/hosts/h1', { body: { metadata: { labels: { rack: 'r9' } } } });
    expect(held.status).toBe(202);
    expect(held.json.cause).toContain('approval:required');
    expect((await a.call('GET', '/api/v1/hosts/h1')).json.metadata.labels).toEqual({});
    const reader = await addToken(a.store, ['platform-reader']);
    // A reader is not allowed host:update even with an approval: plain 403, nothing held.
    expect((await a.call('PATCH', '/api/v1/hosts/h1', { token: reader, body: { metadata: { labels: { rack: 'r8' } } } })).status).toBe(403);
    // Non-host actions cannot be held: approval:required keeps refusing them.
    const secretDelete = await a.call('DELETE', '/api/v1/secrets/bmc-creds');
    expect(secretDelete.status).toBe(403);
    expect(secretDelete.json.message).toContain('approval');
    const second = await addToken(a.store, ['platform-admin']);
    const approved = await a.call('POST', `/api/v1/approvals/${held.json.id}/approve`, { token: second });
    expect(approved.status, approved.text).toBe(200);
    expect(approved.json.state).toBe('executed');
    expect((await a.call('GET', '/api/v1/hosts/h1')).json.metadata.labels).toEqual({ rack: 'r9' });
  });
});
