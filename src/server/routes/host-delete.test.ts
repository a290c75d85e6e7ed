// Deleting a host a claim holds: refused naming the claim; forced only through its own action,
// which a second admin must always approve; the force marker cannot be written any other way.
import { afterEach, describe, expect, it } from 'vitest';
import { FORCE_DELETE_ANNOTATION } from '../../model/host.js';
import { addToken, hostManifest, secretManifest, startApiFixture, type ApiFixture } from '../testing/api-fixture.js';

let api: ApiFixture | undefined;
afterEach(async () => {
  await api?.close();
  api = undefined;
});

async function claimedHost(): Promise<ApiFixture> {
  const a = (api = await startApiFixture({}));
  expect((await a.call('POST', '/api/v1/secrets', { body: secretManifest('bmc-creds', { username: 'u', password: 'p' }) })).status).toBe(201);
  expect((await a.call('POST', '/api/v1/hosts', { body: hostManifest('h1') })).status).toBe(201);
  const host = await a.store.get({ kind: 'Host', project: '', name: 'h1' });
  const claim = await a.store.create({ kind: 'Claim', project: 'red', name: 'web-1', spec: {}, status: {} });
  expect(await a.store.bindHost(host!.uid, claim.uid, 'red')).toBe(true);
  return a;
}

describe('deleting a claimed host', () => {
  it('is refused with 409 naming the claim; the host stays', async () => {
    const a = await claimedHost();
    const refused = await a.call('DELETE', '/api/v1/hosts/h1');
    expect(refused.status).toBe(409);
    expect(refused.json.message).toContain('held by claim red/web-1');
    expect(refused.json.message).toContain('--force');
    expect((await a.call('GET', '/api/v1/hosts/h1')).json.metadata.deletionTimestamp).toBeUndefined();
  });

  it('forced: always held for a second admin, then marked forced and deleted', async () => {
    const a = await claimedHost();
    const held = await a.call('POST', '/api/v1/hosts/h1/force-delete');
    expect(held.status).toBe(202);
    expect(held.json).toMatchObject({ kind: 'Approval', state: 'pending', action: 'host:force-delete', target: { kind: 'Host', name: 'h1' } });
    expect((await a.call('GET', '/api/v1/hosts/h1')).json.metadata.deletionTimestamp).toBeUndefined();
    const reader = await addToken(a.store, ['platform-reader']);
    expect((await a.call('POST', '/api/v1/hosts/h1/force-delete', { token: reader })).status).toBe(403);

    const second = await addToken(a.store, ['platform-admin']);
    const approved = await a.call('POST', `/api/v1/approvals/${held.json.id}/approve`, { token: second });
    expect(approved.status, approved.text).toBe(200);
    expect(approved.json.result.statusCode).toBe(202);
    const host = (await a.call('GET', '/api/v1/hosts/h1')).json;
    expect(host.metadata.deletionTimestamp).toEqual(expect.any(String));
    expect(host.metadata.annotations[FORCE_DELETE_ANNOTATION]).toEqual(expect.any(String));
  });

  it('the force marker cannot be set by a host write (it would skip the second person)', async () => {
    const a = await claimedHost();
    const patched = await a.call('PATCH', '/api/v1/hosts/h1', { body: { metadata: { annotations: { [FORCE_DELETE_ANNOTATION]: 'x' } } }, contentType: 'application/merge-patch+json' });
    expect(patched.status).toBe(403);
    expect(patched.json.message).toContain('force-delete');
  });
});
