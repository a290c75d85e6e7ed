// Labels and annotations under ingot.dev/ belong to the platform. A policy file may let other
// roles update hosts (here: platform-reader), but even then they cannot touch those keys.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPolicy } from '../auth/policy.js';
import { addToken, secretManifest, startApiFixture, type ApiFixture } from '../testing/api-fixture.js';

describe('reserved ingot.dev/ metadata', () => {
  let f: ApiFixture;
  let reader: string;
  let controller: string;

  beforeAll(async () => {
    f = await startApiFixture({ policy: createPolicy({ overrides: { 'host:update': ['platform-admin', 'controller', 'platform-reader'] } }) });
    reader = await addToken(f.store, ['platform-reader']);
    controller = await addToken(f.store, ['controller']);
    expect((await f.call('POST', '/api/v1/secrets', { body: secretManifest('bmc', { username: 'u', password: 'p' }) })).status).toBe(201);
    const host = { metadata: { name: 'h1', labels: { rack: 'r1', 'ingot.dev/project': 'red' } }, spec: { bmc: { address: 'fake://h1', credentialsName: 'bmc' } } };
    expect((await f.call('POST', '/api/v1/hosts', { body: host })).status).toBe(201);
  });
  afterAll(async () => f?.close());

  const patch = (token: string, metadata: Record<string, unknown>) =>
    f.call('PATCH', '/api/v1/hosts/h1', { token, body: { metadata }, contentType: 'application/merge-patch+json' });

  it('refuses another role changing, adding or removing an ingot.dev/ label, naming the key', async () => {
    for (const labels of [{ 'ingot.dev/project': 'blue' }, { 'ingot.dev/claim': 'c1' }, { 'ingot.dev/project': null }]) {
      const r = await patch(reader, { labels });
      expect(r.status, JSON.stringify(labels)).toBe(403);
      expect(r.text).toContain('keys under ingot.dev/ are set by the platform');
    }
    const r = await patch(reader, { annotations: { 'ingot.dev/note': 'x' } });
    expect(r.status).toBe(403);
    expect(r.text).toContain('metadata.annotations[\\"ingot.dev/note\\"]');
    const host = (await f.call('GET', '/api/v1/hosts/h1')).json as { metadata: { labels: Record<string, string> } };
    expect(host.metadata.labels).toEqual({ rack: 'r1', 'ingot.dev/project': 'red' });
  });

  it('lets the same role change ordinary labels, keeping the reserved ones as they are', async () => {
    const r = await patch(reader, { labels: { rack: 'r2' } });
    expect(r.status).toBe(200);
    expect((r.json as { metadata: { labels: Record<string, string> } }).metadata.labels).toEqual({ rack: 'r2', 'ingot.dev/project': 'red' });
  });

  it('lets controllers and admins set them', async () => {
    expect((await patch(controller, { labels: { 'ingot.dev/project': 'blue' } })).status).toBe(200);
    expect((await patch(f.adminToken, { labels: { 'ingot.dev/claim': 'c9' } })).status).toBe(200);
  });
});
