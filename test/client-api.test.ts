// The typed client against the real public API (Fastify + SQLite, no conductor): shapes of
// answers, error mapping, apply outcomes, merge patch and the watch stream.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError, createClient, type IngotClient } from '../src/client/index.js';
import { startApiFixture, type ApiFixture } from '../src/server/testing/api-fixture.js';

let api: ApiFixture;
let client: IngotClient;

beforeAll(async () => {
  api = await startApiFixture({ watchPollMs: 50, watchHeartbeatMs: 1000 });
  client = createClient({ server: api.url, token: api.adminToken });
});
afterAll(async () => {
  await api?.close();
});

const host = (name: string, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'ingot.dev/v1' as const,
  kind: 'Host' as const,
  metadata: { name, labels: { rack: 'r1' } },
  spec: { bmc: { address: `fake://${name}`, credentialsName: 'c-bmc' }, ...extra },
});

describe('client against the real API', () => {
  it('applies secrets and hosts, telling created from replaced, and never reads a secret value back', async () => {
    const s = await client.secrets.apply({ metadata: { name: 'c-bmc' }, stringData: { username: 'u', password: 'hunter2-value' } });
    expect(s.created).toBe(true);
    expect(s.object.status.keys.sort()).toEqual(['password', 'username']);
    const got = await client.secrets.get('c-bmc');
    expect(JSON.stringify(got)).not.toContain('hunter2-value');
    const first = await client.hosts.apply(host('c1'));
    expect(first.created).toBe(true);
    expect(first.object.status.provisioning.state).toBe('registering');
    const second = await client.hosts.apply(host('c1', { online: true }));
    expect(second.created).toBe(false);
    expect(Number(second.object.metadata.resourceVersion)).toBeGreaterThan(Number(first.object.metadata.resourceVersion));
  });

  it('merge-patches and removes fields with null', async () => {
    const withImage = await client.hosts.patch('c1', { spec: { image: { url: 'http://i/x.raw', checksum: 'a'.repeat(64) } } });
    expect(withImage.spec.image?.url).toBe('http://i/x.raw');
    const without = await client.hosts.patch('c1', { spec: { image: null } });
    expect(without.spec.image).toBeUndefined();
  });

  it('maps API errors to ApiError with code and field details', async () => {
    const notFound = (await client.hosts.get('nope').catch((e: unknown) => e)) as ApiError;
    expect(notFound).toMatchObject({ status: 404, code: 'INGOT_ERR_NOT_FOUND' });
    const invalid = (await client.hosts.apply({ ...host('c2'), spec: { bogus: true } as never }).catch((e: unknown) => e)) as ApiError;
    expect(invalid).toBeInstanceOf(ApiError);
    expect(invalid.status).toBe(400);
    expect(invalid.message + JSON.stringify(invalid.details)).toContain('bogus');
    const anonymous = createClient({ server: api.url, token: 'ingot_' + 'x'.repeat(43) });
    await expect(anonymous.hosts.list()).rejects.toMatchObject({ status: 401 });
  });

  it('lists with label selectors and pages through continue', async () => {
    for (const n of ['c3', 'c4', 'c5']) await client.hosts.apply(host(n));
    const page = await client.hosts.list({ limit: 2 });
    expect(page.items).toHaveLength(2);
    expect(page.metadata.continue).toBeTruthy();
    const all = await client.hosts.listAll({ labelSelector: 'rack=r1' });
    expect(all.map((h) => h.metadata.name).sort()).toEqual(['c1', 'c3', 'c4', 'c5']);
    expect(await client.hosts.listAll({ labelSelector: 'rack=r9' })).toEqual([]);
  });

  it('watches: current hosts first, then changes; reads events', async () => {
    const ac = new AbortController();
    const seen: string[] = [];
    const done = (async () => {
      for await (const ev of client.hosts.watch({ signal: ac.signal, labelSelector: 'rack=r1' })) {
        seen.push(`${ev.type} ${ev.object.metadata.name}`);
        if (ev.type === 'MODIFIED' && ev.object.metadata.name === 'c4') ac.abort();
      }
    })();
    await new Promise((r) => setTimeout(r, 200));
    await client.hosts.patch('c4', { metadata: { labels: { rack: 'r1', extra: 'yes' } } });
    await done;
    expect(seen).toContain('ADDED c1');
    expect(seen.at(-1)).toBe('MODIFIED c4');
    const events = await client.hosts.events('c1');
    expect(Array.isArray(events)).toBe(true);
  });

  it('delete answers with the host marked for deletion', async () => {
    const h = await client.hosts.delete('c5');
    expect(h?.metadata.deletionTimestamp).toBeTruthy();
  });
});
