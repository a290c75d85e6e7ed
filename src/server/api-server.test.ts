import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHECKSUM_SHA256, hostManifest, secretManifest, startApiFixture, type ApiFixture } from './testing/api-fixture.js';

const PASSWORD = 'S3cret-Pa55word-never-shown';

let api: ApiFixture;

beforeAll(async () => {
  api = await startApiFixture();
  const created = await api.call('POST', '/api/v1/secrets', { body: secretManifest('bmc-creds', { username: 'admin', password: PASSWORD }) });
  expect(created.status).toBe(201);
});

afterAll(async () => {
  await api?.close();
});

describe('hosts CRUD', () => {
  it('creates, reads, replaces, patches and deletes a host', async () => {
    // 1. create: 201, server-owned status, client status ignored
    const body = { ...hostManifest('crud-1', {}, { labels: { rack: 'r1' } }), status: { provisioning: { state: 'provisioned' } } };
    const created = await api.call('POST', '/api/v1/hosts', { body });
    expect(created.status).toBe(201);
    expect(created.headers.get('x-request-id')).toBeTruthy();
    expect(created.json.apiVersion).toBe('ingot.dev/v1');
    expect(created.json.kind).toBe('Host');
    expect(created.json.metadata).toMatchObject({ name: 'crud-1', labels: { rack: 'r1' }, resourceVersion: expect.any(String) });
    expect(created.json.status.provisioning.state).toBe('registering');

    // 2. read back
    const got = await api.call('GET', '/api/v1/hosts/crud-1');
    expect(got.status).toBe(200);
    expect(got.json.spec.bmc.address).toBe('fake://crud-1');

    // 3. PUT replaces spec/labels, keeps status, answers 200
    const put = await api.call('PUT', '/api/v1/hosts/crud-1', {
      body: hostManifest('crud-1', { online: true }, { labels: { rack: 'r2' }, resourceVersion: got.json.metadata.resourceVersion }),
    });
    expect(put.status).toBe(200);
    expect(put.json.spec.online).toBe(true);
    expect(put.json.metadata.labels).toEqual({ rack: 'r2' });
    expect(put.json.status.provisioning.state).toBe('registering');
    expect(Number(put.json.metadata.resourceVersion)).toBeGreaterThan(Number(got.json.metadata.resourceVersion));

    // 4. a stale resourceVersion is a 409 and changes nothing
    const stale = await api.call('PUT', '/api/v1/hosts/crud-1', {
      body: hostManifest('crud-1', { online: false }, { resourceVersion: got.json.metadata.resourceVersion }),
    });
    expect(stale.status).toBe(409);
    expect(stale.json.code).toBe('INGOT_ERR_CONFLICT');
    expect((await api.call('GET', '/api/v1/hosts/crud-1')).json.spec.online).toBe(true);

    // 5. merge patch: add a label, delete one, change a spec field
    const patched = await api.call('PATCH', '/api/v1/hosts/crud-1', {
      body: { metadata: { labels: { rack: null, tier: 'gold' } }, spec: { bootMode: 'UEFI' } },
      contentType: 'application/merge-patch+json',
    });
    expect(patched.status).toBe(200);
    expect(patched.json.metadata.labels).toEqual({ tier: 'gold' });
    expect(patched.json.spec.bootMode).toBe('UEFI');
    expect(patched.json.spec.online).toBe(true);

    // 6. a patch whose result is invalid is a 400 naming the field
    const badPatch = await api.call('PATCH', '/api/v1/hosts/crud-1', { body: { spec: { bootMode: 'BIOS' } } });
    expect(badPatch.status).toBe(400);
    expect(badPatch.json.message).toContain('spec.bootMode');

    // 7. delete: 202 with deletionTimestamp; again: still 202, same timestamp
    const del = await api.call('DELETE', '/api/v1/hosts/crud-1');
    expect(del.status).toBe(202);
    expect(del.json.metadata.deletionTimestamp).toBeTruthy();
    const again = await api.call('DELETE', '/api/v1/hosts/crud-1');
    expect(again.status).toBe(202);
    expect(again.json.metadata.deletionTimestamp).toBe(del.json.metadata.deletionTimestamp);
  });

  it('PUT creates (201) when the host does not exist, and refuses a name that differs from the URL', async () => {
    const created = await api.call('PUT', '/api/v1/hosts/put-new', { body: hostManifest('put-new') });
    expect(created.status).toBe(201);
    const mismatch = await api.call('PUT', '/api/v1/hosts/other', { body: hostManifest('put-new') });
    expect(mismatch.status).toBe(400);
    expect(mismatch.json.message).toContain('metadata.name');
  });

  it('answers 404 for a missing host and 409 for a duplicate create', async () => {
    const missing = await api.call('GET', '/api/v1/hosts/nope');
    expect(missing.status).toBe(404);
    expect(missing.json.code).toBe('INGOT_ERR_NOT_FOUND');
    expect((await api.call('POST', '/api/v1/hosts', { body: hostManifest('dup') })).status).toBe(201);
    const dup = await api.call('POST', '/api/v1/hosts', { body: hostManifest('dup') });
    expect(dup.status).toBe(409);
    expect(dup.json.code).toBe('INGOT_ERR_ALREADY_EXISTS');
    expect((await api.call('GET', '/api/v1/nothing-here')).status).toBe(404);
  });

  it('lists events of a host', async () => {
    await api.call('POST', '/api/v1/hosts', { body: hostManifest('with-events') });
    const host = (await api.call('GET', '/api/v1/hosts/with-events')).json;
    await api.store.appendEvent({ kind: 'Host', project: '', name: 'with-events', uid: host.metadata.uid, type: 'Normal', reason: 'StateChanged', message: 'registering -> inspecting' });
    const events = await api.call('GET', '/api/v1/hosts/with-events/events?limit=10');
    expect(events.status).toBe(200);
    expect(events.json.items).toHaveLength(1);
    expect(events.json.items[0]).toMatchObject({ reason: 'StateChanged' });
    const after = await api.call('GET', `/api/v1/hosts/with-events/events?afterId=${events.json.items[0].id}`);
    expect(after.json.items).toHaveLength(0);
  });
});

describe('validation answers name the field', () => {
  it('refuses a bad name as a DNS label problem', async () => {
    const res = await api.call('POST', '/api/v1/hosts', { body: hostManifest('Bad_Name') });
    expect(res.status).toBe(400);
    expect(res.json.code).toBe('INGOT_ERR_VALIDATION');
    expect(res.json.message).toContain('metadata.name: must be a DNS label');
    expect(res.json.details[0].field).toBe('metadata.name');
  });

  it('refuses an unknown field instead of dropping it, listing the allowed ones', async () => {
    const res = await api.call('POST', '/api/v1/hosts', { body: hostManifest('unknown-field', { onlin: true }) });
    expect(res.status).toBe(400);
    expect(res.json.message).toMatch(/spec\.onlin: unknown field; remove it \(allowed: .*online/);
    expect((await api.call('GET', '/api/v1/hosts/unknown-field')).status).toBe(404);
  });

  it('refuses a wrong type without coercing it', async () => {
    const res = await api.call('POST', '/api/v1/hosts', { body: hostManifest('wrong-type', { online: 'true' }) });
    expect(res.status).toBe(400);
    expect(res.json.message).toContain('spec.online: must be a boolean');
  });

  it('refuses an unsupported BMC scheme naming spec.bmc.address', async () => {
    const res = await api.call('POST', '/api/v1/hosts', { body: hostManifest('bad-bmc', { bmc: { address: 'telnet://10.0.0.1', credentialsName: 'bmc-creds' } }) });
    expect(res.status).toBe(400);
    expect(res.json.details).toEqual([{ field: 'spec.bmc.address', message: expect.stringContaining('unknown BMC address scheme "telnet"') }]);
  });

  it('refuses an invalid label key that the schema alone would let through', async () => {
    const res = await api.call('POST', '/api/v1/hosts', { body: hostManifest('bad-label', {}, { labels: { '-x': 'y' } }) });
    expect(res.status).toBe(400);
    expect(res.json.details[0].field).toBe('metadata.labels["-x"]');
  });

  it('says where malformed JSON breaks', async () => {
    const res = await api.call('POST', '/api/v1/hosts', { raw: '{\n  "metadata": {"name": "x"},\n  "spec": {,}\n}' });
    expect(res.status).toBe(400);
    expect(res.json.code).toBe('INGOT_ERR_MALFORMED_BODY');
    expect(res.json.message).toContain('line 3, column 12');
  });

  it('accepts a YAML manifest and says where malformed YAML breaks', async () => {
    const good = await api.call('POST', '/api/v1/hosts', {
      raw: 'apiVersion: ingot.dev/v1\nkind: Host\nmetadata:\n  name: from-yaml\nspec:\n  bmc:\n    address: fake://from-yaml\n    credentialsName: bmc-creds\n',
      contentType: 'application/yaml',
    });
    expect(good.status).toBe(201);
    const bad = await api.call('POST', '/api/v1/hosts', { raw: 'metadata:\n  name: x\n spec: [\n', contentType: 'application/yaml' });
    expect(bad.status).toBe(400);
    expect(bad.json.code).toBe('INGOT_ERR_MALFORMED_BODY');
    expect(bad.json.message).toMatch(/invalid YAML at line 3, column \d+/);
    const multi = await api.call('POST', '/api/v1/hosts', { raw: 'a: 1\n---\nb: 2\n', contentType: 'application/yaml' });
    expect(multi.status).toBe(400);
    expect(multi.json.message).toContain('2 YAML documents');
  });

  it('refuses __proto__ keys', async () => {
    const res = await api.call('POST', '/api/v1/secrets', { raw: '{"metadata":{"name":"p"},"stringData":{"__proto__":{"x":"y"}}}' });
    expect(res.status).toBe(400);
    expect(res.json.code).toBe('INGOT_ERR_MALFORMED_BODY');
  });

  it('answers 413 for a body over 1 MiB', async () => {
    const res = await api.call('POST', '/api/v1/hosts', { body: hostManifest('big', {}, { annotations: { big: 'x'.repeat(1024 * 1024 + 10) } }) });
    expect(res.status).toBe(413);
    expect(res.json.code).toBe('INGOT_ERR_BODY_TOO_LARGE');
  });

  it('answers 415 for an unsupported content type', async () => {
    const res = await api.call('POST', '/api/v1/hosts', { raw: 'name=x', contentType: 'application/x-www-form-urlencoded' });
    expect(res.status).toBe(415);
    expect(res.json.code).toBe('INGOT_ERR_UNSUPPORTED_MEDIA_TYPE');
  });

  it('validates query parameters, coercing only declared integers', async () => {
    const res = await api.call('GET', '/api/v1/hosts?limit=0');
    expect(res.status).toBe(400);
    expect(res.json.details[0].field).toBe('query.limit');
    expect((await api.call('GET', '/api/v1/hosts?limit=abc')).status).toBe(400);
    expect((await api.call('GET', '/api/v1/hosts?bogus=1')).status).toBe(400);
  });
});

describe('host admission', () => {
  it('422 when the credentials secret does not exist, and nothing is stored', async () => {
    const res = await api.call('POST', '/api/v1/hosts', { body: hostManifest('no-secret', { bmc: { address: 'fake://no-secret', credentialsName: 'missing-creds' } }) });
    expect(res.status).toBe(422);
    expect(res.json.code).toBe('INGOT_ERR_UNPROCESSABLE');
    expect(res.json.message).toContain('spec.bmc.credentialsName: Secret "missing-creds" does not exist; create it first with `ingot secret create missing-creds');
    expect((await api.call('GET', '/api/v1/hosts/no-secret')).status).toBe(404);
  });

  it('422 when the credentials secret lacks password', async () => {
    await api.call('POST', '/api/v1/secrets', { body: secretManifest('half-creds', { username: 'u' }) });
    const res = await api.call('POST', '/api/v1/hosts', { body: hostManifest('half', { bmc: { address: 'fake://half', credentialsName: 'half-creds' } }) });
    expect(res.status).toBe(422);
    expect(res.json.message).toContain('lacks the key password');
  });

  it('checks image checksums and URLs', async () => {
    const md5 = await api.call('POST', '/api/v1/hosts', { body: hostManifest('md5', { image: { url: 'http://i/x.raw', checksum: 'b'.repeat(32), checksumType: 'md5' } }) });
    expect(md5.status).toBe(422);
    expect(md5.json.details[0].field).toBe('spec.image.checksumType');
    const short = await api.call('POST', '/api/v1/hosts', { body: hostManifest('short', { image: { url: 'http://i/x.raw', checksum: 'b'.repeat(40), checksumType: 'sha256' } }) });
    expect(short.status).toBe(400);
    expect(short.json.details[0].field).toBe('spec.image.checksum');
    const ftp = await api.call('POST', '/api/v1/hosts', { body: hostManifest('ftp', { image: { url: 'ftp://i/x.raw', checksum: CHECKSUM_SHA256 } }) });
    expect(ftp.status).toBe(400);
    expect(ftp.json.details[0].field).toBe('spec.image.url');
    const ok = await api.call('POST', '/api/v1/hosts', { body: hostManifest('img-ok', { image: { url: 'https://i/x.qcow2', checksum: CHECKSUM_SHA256, checksumType: 'sha256', format: 'qcow2' } }) });
    expect(ok.status).toBe(201);
  });

  it('422 for spec.image on an externally provisioned host, saying how to adopt it first; nothing changes', async () => {
    const image = { url: 'https://i/x.qcow2', checksum: CHECKSUM_SHA256, checksumType: 'sha256', format: 'qcow2' };
    const created = await api.call('POST', '/api/v1/hosts', { body: hostManifest('ext-prov', { externallyProvisioned: true }) });
    expect(created.status).toBe(201);
    const res = await api.call('PATCH', '/api/v1/hosts/ext-prov', { body: { spec: { image } }, contentType: 'application/merge-patch+json' });
    expect(res.status).toBe(422);
    expect(res.json.code).toBe('INGOT_ERR_UNPROCESSABLE');
    expect(res.json.details[0].field).toBe('spec.image');
    expect(res.json.details[0].message).toContain('first set spec.externallyProvisioned to false');
    expect((await api.call('GET', '/api/v1/hosts/ext-prov')).json.spec.image).toBeUndefined();
    // Both in one request: the adoption is cleared, so the image is accepted.
    const adopted = await api.call('PATCH', '/api/v1/hosts/ext-prov', { body: { spec: { externallyProvisioned: false, image } }, contentType: 'application/merge-patch+json' });
    expect(adopted.status).toBe(200);
  });
});

describe('listing', () => {
  it('pages with limit/continue and filters by labelSelector', async () => {
    for (let i = 0; i < 5; i++) {
      const res = await api.call('POST', '/api/v1/hosts', { body: hostManifest(`page-${i}`, {}, { labels: { group: 'paging', parity: i % 2 === 0 ? 'even' : 'odd' } }) });
      expect(res.status).toBe(201);
    }
    const names: string[] = [];
    let next: string | undefined;
    let pages = 0;
    do {
      const res = await api.call('GET', `/api/v1/hosts?limit=2&labelSelector=${encodeURIComponent('group=paging')}${next ? `&continue=${encodeURIComponent(next)}` : ''}`);
      expect(res.status).toBe(200);
      expect(res.json.kind).toBe('HostList');
      expect(res.json.items.length).toBeLessThanOrEqual(2);
      names.push(...res.json.items.map((h: { metadata: { name: string } }) => h.metadata.name));
      next = res.json.metadata.continue;
      pages++;
    } while (next);
    expect(pages).toBe(3);
    expect(names.sort()).toEqual(['page-0', 'page-1', 'page-2', 'page-3', 'page-4']);
    const even = await api.call('GET', `/api/v1/hosts?labelSelector=${encodeURIComponent('group=paging,parity!=odd')}`);
    expect(even.json.items.map((h: { metadata: { name: string } }) => h.metadata.name).sort()).toEqual(['page-0', 'page-2', 'page-4']);
    const badSelector = await api.call('GET', `/api/v1/hosts?labelSelector=${encodeURIComponent('a in (b)')}`);
    expect(badSelector.status).toBe(400);
    expect(badSelector.json.details[0].field).toBe('labelSelector');
  });
});

describe('secrets', () => {
  it('never returns values, versions on replace, and refuses deletion while a host uses it', async () => {
    const created = await api.call('POST', '/api/v1/secrets', { body: secretManifest('rotating', { username: 'root', password: PASSWORD }) });
    expect(created.status).toBe(201);
    expect(created.json.status).toEqual({ keys: ['password', 'username'], version: 1 });
    const replaced = await api.call('PUT', '/api/v1/secrets/rotating', { body: secretManifest('rotating', { username: 'root', password: `${PASSWORD}-2` }) });
    expect(replaced.status).toBe(200);
    expect(replaced.json.status.version).toBe(2);
    const stored = await api.store.getSecretCiphertext(replaced.json.metadata.uid);
    expect(stored?.version).toBe(2);
    expect(stored?.ciphertext.toString('latin1')).not.toContain(PASSWORD);

    await api.call('POST', '/api/v1/hosts', { body: hostManifest('uses-rotating', { bmc: { address: 'fake://x', credentialsName: 'rotating' } }) });
    const refused = await api.call('DELETE', '/api/v1/secrets/rotating');
    expect(refused.status).toBe(409);
    expect(refused.json.message).toContain('uses-rotating');

    await api.call('POST', '/api/v1/secrets', { body: secretManifest('unused', { token: PASSWORD }) });
    const deleted = await api.call('DELETE', '/api/v1/secrets/unused');
    expect(deleted.status).toBe(200);
    expect((await api.call('GET', '/api/v1/secrets/unused')).status).toBe(404);
    expect(await api.store.getSecretCiphertext(deleted.json.metadata.uid)).toBeUndefined();

    const list = await api.call('GET', '/api/v1/secrets');
    expect(list.status).toBe(200);
    expect(list.json.items.length).toBeGreaterThan(0);
    await api.call('POST', '/api/v1/secrets', { body: secretManifest('labelled', { password: PASSWORD }, { labels: { team: 'infra' } }) });
    const selected = await api.call('GET', '/api/v1/secrets?labelSelector=team%3Dinfra');
    expect(selected.json.items.map((s: { metadata: { name: string } }) => s.metadata.name)).toEqual(['labelled']);
    await api.call('GET', '/api/v1/secrets/rotating');

    // Every response body this file has read so far, not just this test's.
    expect(api.bodies.length).toBeGreaterThan(20);
    for (const body of api.bodies) expect(body).not.toContain(PASSWORD);
  });
});

describe('authentication', () => {
  it('401 with WWW-Authenticate without, or with a malformed or unknown, token', async () => {
    for (const token of [null, 'not-a-token', 'ingot_' + 'A'.repeat(43)]) {
      const res = await api.call('GET', '/api/v1/hosts', { token });
      expect(res.status).toBe(401);
      expect(res.json.code).toBe('INGOT_ERR_UNAUTHENTICATED');
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
      expect(res.headers.get('x-request-id')).toBe(res.json.requestId);
    }
  });

  it('health endpoints need no token', async () => {
    expect((await api.call('GET', '/healthz', { token: null })).status).toBe(200);
    expect((await api.call('GET', '/readyz', { token: null })).status).toBe(200);
  });
});

describe('OpenAPI', () => {
  it('documents every route with its action and the bearer scheme', async () => {
    const res = await api.call('GET', '/api/openapi.json');
    expect(res.status).toBe(200);
    expect(res.json.openapi).toBe('3.0.3');
    expect(res.json.components.securitySchemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
    const { registeredRoutes } = await import('./api-server.js');
    const routes = registeredRoutes(api.app);
    expect(routes.length).toBeGreaterThanOrEqual(14);
    for (const route of routes) {
      const path = route.url.replace(/:([A-Za-z]+)/g, '{$1}');
      const op = res.json.paths[path]?.[route.method.toLowerCase()];
      expect(op, `${route.method} ${route.url}`).toBeDefined();
      expect(op['x-ingot-action']).toBe(route.action);
    }
    expect(res.json.paths['/api/v1/hosts'].post.requestBody.content['application/json'].schema.properties.spec).toBeDefined();
  });
});
