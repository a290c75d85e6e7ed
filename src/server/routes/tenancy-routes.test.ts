// The tenancy API over real HTTP and a real SQLite store: OS images, node types, projects,
// IP pools, claims, claim sets and project secrets; cross-project attempts on every kind; the
// secret-scope advisory case; quotas; inline user data never returned.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addToken, hostManifest, secretManifest, startApiFixture, type ApiFixture } from '../testing/api-fixture.js';

const SHA256 = 'b'.repeat(64);
const INLINE_USER_DATA = '#cloud-config\npassword: inline-user-data-8f3k2q9z\n';
const SECRET_USER_DATA = '#cloud-config\nruncmd: [echo red-project-secret-x7c2m4]\n';

let api: ApiFixture;
const t: Record<string, string> = {};

function image(name: string, spec: Record<string, unknown> = {}) {
  return { apiVersion: 'ingot.dev/v1', kind: 'OSImage', metadata: { name }, spec: { url: `https://images.example/${name}.qcow2`, checksum: SHA256, checksumType: 'sha256', format: 'qcow2', ...spec } };
}
function nodeType(name: string, spec: Record<string, unknown> = {}) {
  return { kind: 'NodeType', metadata: { name }, spec: { selector: { minCpus: 1 }, osImageName: 'ubuntu', ...spec } };
}
function claim(name: string, spec: Record<string, unknown> = {}) {
  return { kind: 'Claim', metadata: { name }, spec: { nodeTypeName: 'metal.small', ...spec } };
}

beforeAll(async () => {
  api = await startApiFixture();
  const ok = async (method: string, path: string, body: unknown) => {
    const res = await api.call(method, path, { body });
    expect(res.status, `${method} ${path}: ${res.text}`).toBeLessThan(300);
    return res;
  };
  await ok('POST', '/api/v1/osimages', image('ubuntu'));
  await ok('POST', '/api/v1/osimages', image('ubuntu-signed', { secureBoot: true }));
  await ok('POST', '/api/v1/nodetypes', nodeType('metal.small'));
  await ok('POST', '/api/v1/nodetypes', nodeType('metal.secure', { osImageName: 'ubuntu-signed', selector: { capabilities: { secureBoot: true } } }));
  await ok('POST', '/api/v1/nodetypes', nodeType('gpu.large'));
  await ok('POST', '/api/v1/projects', { kind: 'Project', metadata: { name: 'red' }, spec: { allowedNodeTypes: ['metal.*'], quotas: { claims: { soft: 2, hard: 3 } } } });
  await ok('POST', '/api/v1/projects', { kind: 'Project', metadata: { name: 'blue' }, spec: { allowedNodeTypes: [{ name: 'gpu.large' }] } });
  await ok('POST', '/api/v1/ippools', { kind: 'IPPool', metadata: { name: 'rack1' }, spec: { ranges: [{ start: '192.0.2.10', end: '192.0.2.20' }], prefix: 24, gateway: '192.0.2.1' } });
  t.redAdmin = await addToken(api.store, ['project-admin'], { project: 'red' });
  t.redMember = await addToken(api.store, ['project-member'], { project: 'red' });
  t.redViewer = await addToken(api.store, ['project-viewer'], { project: 'red' });
  t.blueAdmin = await addToken(api.store, ['project-admin'], { project: 'blue' });
  t.reader = await addToken(api.store, ['platform-reader']);
  expect((await api.call('POST', '/api/v1/projects/red/secrets', { token: t.redAdmin, body: secretManifest('red-ud', { userData: SECRET_USER_DATA }) })).status).toBe(201);
  expect((await api.call('POST', '/api/v1/projects/red/claims', { token: t.redAdmin, body: claim('web-1', { userDataSecretName: 'red-ud', networks: [{ ipPoolName: 'rack1' }] }) })).status).toBe(201);
  expect((await api.call('POST', '/api/v1/projects/red/claimsets', { token: t.redAdmin, body: { kind: 'ClaimSet', metadata: { name: 'workers' }, spec: { replicas: 0, template: { spec: { nodeTypeName: 'metal.small' } } } } })).status).toBe(201);
});
afterAll(async () => {
  await api?.close();
});

describe('OS images and node types (admins publish, tenants choose)', () => {
  it('refuses weak or mismatched checksums, naming the field', async () => {
    const md5 = await api.call('POST', '/api/v1/osimages', { body: image('weak', { checksum: 'c'.repeat(32), checksumType: 'md5' }) });
    expect(md5.status).toBe(400);
    expect(md5.text).toContain('spec.checksumType');
    const short = await api.call('POST', '/api/v1/osimages', { body: image('short', { checksumType: 'sha512' }) });
    expect(short.status).toBe(400);
    expect(short.json.message).toContain('sha512 digest has 128');
    const missing = await api.call('POST', '/api/v1/osimages', { body: { metadata: { name: 'nosum' }, spec: { url: 'https://x/y', format: 'raw', checksumType: 'sha256' } } });
    expect(missing.status).toBe(400);
    expect(missing.text).toContain('checksum');
  });

  it('a node type needs an existing image, and a signed one when it requires secure boot', async () => {
    const none = await api.call('POST', '/api/v1/nodetypes', { body: nodeType('x.none', { osImageName: 'nope' }) });
    expect(none.status).toBe(422);
    expect(none.json.message).toContain('OSImage "nope" does not exist');
    const unsigned = await api.call('POST', '/api/v1/nodetypes', { body: nodeType('x.sb', { selector: { capabilities: { secureBoot: true } } }) });
    expect(unsigned.status).toBe(422);
    expect(unsigned.json.message).toContain('not marked as signed');
    const inUse = await api.call('DELETE', '/api/v1/osimages/ubuntu');
    expect(inUse.status).toBe(409);
    expect(inUse.json.message).toContain('metal.small');
  });

  it('tenants see only the node types their project may claim, and never images', async () => {
    const red = await api.call('GET', '/api/v1/projects/red/nodetypes', { token: t.redViewer });
    expect(red.status).toBe(200);
    expect(red.json.items.map((i: { metadata: { name: string } }) => i.metadata.name).sort()).toEqual(['metal.secure', 'metal.small']);
    const blue = await api.call('GET', '/api/v1/projects/blue/nodetypes', { token: t.blueAdmin });
    expect(blue.json.items.map((i: { metadata: { name: string } }) => i.metadata.name)).toEqual(['gpu.large']);
    expect((await api.call('GET', '/api/v1/projects/blue/nodetypes/metal.small', { token: t.blueAdmin })).status).toBe(404);
    const platformList = await api.call('GET', '/api/v1/nodetypes', { token: t.redAdmin });
    expect(platformList.status).toBe(403);
    expect(platformList.json.message).toContain("your project-admin role applies only on project red's routes (/api/v1/projects/red/…)");
    expect((await api.call('GET', '/api/v1/osimages', { token: t.redAdmin })).status).toBe(403);
    expect((await api.call('GET', '/api/v1/osimages/ubuntu', { token: t.redAdmin })).status).toBe(403);
  });
});

describe('cross-project attempts on every kind', () => {
  // blue's admin against red's objects: every route refuses, and none reveals what red holds.
  const attempts: Array<[string, string, unknown?]> = [
    ['GET', '/api/v1/projects/red'],
    ['PATCH', '/api/v1/projects/red', { spec: { allowedNodeTypes: null } }],
    ['GET', '/api/v1/projects/red/claims'],
    ['GET', '/api/v1/projects/red/claims/web-1'],
    ['POST', '/api/v1/projects/red/claims', claim('intruder')],
    ['PATCH', '/api/v1/projects/red/claims/web-1', { metadata: { labels: { x: 'y' } } }],
    ['DELETE', '/api/v1/projects/red/claims/web-1'],
    ['GET', '/api/v1/projects/red/claimsets'],
    ['GET', '/api/v1/projects/red/claimsets/workers'],
    ['PATCH', '/api/v1/projects/red/claimsets/workers', { spec: { replicas: 5 } }],
    ['DELETE', '/api/v1/projects/red/claimsets/workers'],
    ['GET', '/api/v1/projects/red/secrets'],
    ['GET', '/api/v1/projects/red/secrets/red-ud'],
    ['PUT', '/api/v1/projects/red/secrets/red-ud', secretManifest('red-ud', { userData: 'stolen' })],
    ['DELETE', '/api/v1/projects/red/secrets/red-ud'],
    ['GET', '/api/v1/projects/red/nodetypes'],
    ['GET', '/api/v1/claims'],
    ['GET', '/api/v1/claimsets'],
    ['GET', '/api/v1/projects'],
    ['GET', '/api/v1/hosts'],
    ['GET', '/api/v1/secrets'],
    ['GET', '/api/v1/ippools'],
    ['GET', '/api/v1/ippools/rack1/addresses'],
    ['GET', '/api/v1/tokens'],
    ['GET', '/api/v1/audit'],
  ];
  it.each(attempts)('blue admin: %s %s is refused', async (method, path, body) => {
    const res = await api.call(method, path, { token: t.blueAdmin, ...(body !== undefined ? { body } : {}) });
    expect([403, 404], `${method} ${path}: ${res.status} ${res.text}`).toContain(res.status);
    expect(res.text).not.toContain('web-1');
    expect(res.text).not.toContain('red-ud');
  });

  it("red's objects are unchanged after blue's attempts", async () => {
    const c = await api.call('GET', '/api/v1/projects/red/claims/web-1', { token: t.redViewer });
    expect(c.status).toBe(200);
    expect(c.json.metadata.labels).toEqual({});
    expect(c.json.metadata.deletionTimestamp).toBeUndefined();
    const s = await api.call('GET', '/api/v1/projects/red/claimsets/workers', { token: t.redViewer });
    expect(s.json.spec.replicas).toBe(0);
    expect((await api.call('GET', '/api/v1/projects/red/secrets/red-ud', { token: t.redViewer })).json.status.version).toBe(1);
  });

  it('a viewer reads but cannot change; a member claims but cannot manage secrets', async () => {
    expect((await api.call('GET', '/api/v1/projects/red', { token: t.redViewer })).status).toBe(200);
    expect((await api.call('GET', '/api/v1/projects/red/claims', { token: t.redViewer })).json.items).toHaveLength(1);
    const denied = await api.call('POST', '/api/v1/projects/red/claims', { token: t.redViewer, body: claim('v-1') });
    expect(denied.status).toBe(403);
    expect(denied.json.message).toContain('action claim:create');
    expect((await api.call('DELETE', '/api/v1/projects/red/claims/web-1', { token: t.redViewer })).status).toBe(403);
    expect((await api.call('POST', '/api/v1/projects/red/secrets', { token: t.redMember, body: secretManifest('m', { userData: 'x' }) })).status).toBe(403);
    // Project roles never reach the platform, even where a rule names them.
    expect((await api.call('POST', '/api/v1/secrets', { token: t.redAdmin, body: secretManifest('plat', { username: 'u', password: 'p' }) })).status).toBe(403);
    expect((await api.call('PATCH', '/api/v1/projects/red', { token: t.redAdmin, body: { spec: { quotas: null } } })).status).toBe(403);
  });

  it('blue cannot claim a node type only red may use', async () => {
    const res = await api.call('POST', '/api/v1/projects/blue/claims', { token: t.blueAdmin, body: claim('b-1', { nodeTypeName: 'metal.small' }) });
    expect(res.status).toBe(403);
    expect(res.json.message).toContain('project blue may not claim node type "metal.small"');
  });

  it('platform readers see every project; the platform-wide claim list spans projects', async () => {
    const all = await api.call('GET', '/api/v1/claims', { token: t.reader });
    expect(all.status).toBe(200);
    expect(all.json.items.map((c: { metadata: { project: string; name: string } }) => `${c.metadata.project}/${c.metadata.name}`)).toContain('red/web-1');
    expect((await api.call('POST', '/api/v1/projects/red/claims', { token: t.reader, body: claim('r-1') })).status).toBe(403);
  });
});

describe('secret scope (the Metal3 advisory: secrets of other namespaces through a host)', () => {
  it("a claim naming another project's secret is refused at admission, under any name", async () => {
    expect((await api.call('POST', '/api/v1/projects/blue/secrets', { token: t.blueAdmin, body: secretManifest('blue-ud', { userData: '#cloud-config' }) })).status).toBe(201);
    await api.call('POST', '/api/v1/secrets', { body: secretManifest('platform-ud', { userData: '#cloud-config' }) });
    for (const name of ['red-ud', 'platform-ud', 'bmc-creds']) {
      const res = await api.call('POST', '/api/v1/projects/blue/claims', { token: t.blueAdmin, body: claim(`steal-${name}`, { nodeTypeName: 'gpu.large', userDataSecretName: name }) });
      expect(res.status, name).toBe(422);
      expect(res.json.message).toContain(`Secret "${name}" does not exist in project blue; a claim can use only its own project's secrets`);
    }
    for (const name of ['red/red-ud', '../red/red-ud', 'RED-UD']) {
      const res = await api.call('POST', '/api/v1/projects/blue/claims', { token: t.blueAdmin, body: claim('steal-path', { nodeTypeName: 'gpu.large', userDataSecretName: name }) });
      expect(res.status, name).toBe(400);
    }
    const own = await api.call('POST', '/api/v1/projects/blue/claims', { token: t.blueAdmin, body: claim('own-1', { nodeTypeName: 'gpu.large', userDataSecretName: 'blue-ud' }) });
    expect(own.status, own.text).toBe(201);
  });

  it("a host naming a project's secret is refused at admission", async () => {
    const res = await api.call('POST', '/api/v1/hosts', { body: hostManifest('h-steal', { bmc: { address: 'fake://h-steal', credentialsName: 'red-ud' } }) });
    expect(res.status).toBe(422);
    expect(res.json.message).toContain('Secret "red-ud" does not exist');
  });

  it('a project secret in use by a claim cannot be deleted', async () => {
    const res = await api.call('DELETE', '/api/v1/projects/red/secrets/red-ud', { token: t.redAdmin });
    expect(res.status).toBe(409);
    expect(res.json.message).toContain('claim web-1');
  });
});

describe('claims', () => {
  it('inline user data is sealed: stored and answered as "[sealed]", never in the clear', async () => {
    const res = await api.call('POST', '/api/v1/projects/blue/claims', { token: t.blueAdmin, body: claim('inline-1', { nodeTypeName: 'gpu.large', userData: INLINE_USER_DATA }) });
    expect(res.status, res.text).toBe(201);
    expect(res.json.spec.userData).toBe('[sealed]');
    expect(res.text).not.toContain('inline-user-data-8f3k2q9z');
    const stored = await api.store.get({ kind: 'Claim', project: 'blue', name: 'inline-1' });
    expect(JSON.stringify(stored)).not.toContain('inline-user-data-8f3k2q9z');
    expect(await api.store.getSecretCiphertext(stored!.uid)).toBeDefined();
    for (const body of api.bodies) expect(body).not.toContain('inline-user-data-8f3k2q9z');
    const marker = await api.call('POST', '/api/v1/projects/blue/claims', { token: t.blueAdmin, body: claim('marker', { nodeTypeName: 'gpu.large', userData: '[sealed]' }) });
    expect(marker.status).toBe(400);
  });

  it("a claim's spec cannot change; labels can", async () => {
    const res = await api.call('PATCH', '/api/v1/projects/red/claims/web-1', { token: t.redAdmin, body: { spec: { nodeTypeName: 'metal.secure' } } });
    expect(res.status).toBe(422);
    expect(res.json.message).toContain('spec cannot change');
    const labels = await api.call('PATCH', '/api/v1/projects/red/claims/web-1', { token: t.redAdmin, body: { metadata: { labels: { app: 'web' } } } });
    expect(labels.status, labels.text).toBe(200);
    const reserved = await api.call('PATCH', '/api/v1/projects/red/claims/web-1', { token: t.redAdmin, body: { metadata: { labels: { 'ingot.dev/claim': 'x' } } } });
    expect(reserved.status).toBe(403);
  });

  it('reserved labels cannot enter through a claim-set template, on create or on change', async () => {
    const template = (labels: Record<string, string>) => ({ metadata: { labels }, spec: { nodeTypeName: 'metal.small' } });
    const created = await api.call('POST', '/api/v1/projects/red/claimsets', {
      token: t.redAdmin,
      body: { kind: 'ClaimSet', metadata: { name: 'sneaky' }, spec: { replicas: 0, template: template({ 'ingot.dev/project': 'blue' }) } },
    });
    expect(created.status).toBe(403);
    expect(created.json.message).toContain('spec.template.metadata.labels["ingot.dev/project"]');
    expect((await api.call('GET', '/api/v1/projects/red/claimsets/sneaky', { token: t.redAdmin })).status).toBe(404);
    const patched = await api.call('PATCH', '/api/v1/projects/red/claimsets/workers', { token: t.redAdmin, body: { spec: { template: template({ 'ingot.dev/claim': 'x' }) } } });
    expect(patched.status).toBe(403);
    const plain = await api.call('PATCH', '/api/v1/projects/red/claimsets/workers', { token: t.redAdmin, body: { spec: { template: template({ tier: 'web' }) } } });
    expect(plain.status, plain.text).toBe(200);
  });

  it('quotas: soft warns (header + audit event), hard refuses naming the quota', async () => {
    // red holds web-1 (1 claim); soft 2, hard 3.
    const second = await api.call('POST', '/api/v1/projects/red/claims', { token: t.redMember, body: claim('web-2') });
    expect(second.status).toBe(201);
    expect(second.headers.get('warning')).toBeNull();
    const third = await api.call('POST', '/api/v1/projects/red/claims', { token: t.redMember, body: claim('web-3') });
    expect(third.status).toBe(201);
    expect(third.headers.get('warning')).toContain('soft quota of 2 claims exceeded in project red');
    await api.audit.flush();
    const events = await api.store.listAuditEvents({ action: 'quota:soft-exceeded' });
    expect(events.some((e) => e.target.project === 'red' && e.target.name === 'web-3')).toBe(true);
    const fourth = await api.call('POST', '/api/v1/projects/red/claims', { token: t.redMember, body: claim('web-4') });
    expect(fourth.status).toBe(403);
    expect(fourth.json.code).toBe('INGOT_ERR_QUOTA_EXCEEDED');
    expect(fourth.json.message).toContain('quota of 3 claims reached in project red (spec.quotas.claims.hard');
    const set = await api.call('PATCH', '/api/v1/projects/red/claimsets/workers', { token: t.redMember, body: { spec: { replicas: 1 } } });
    expect(set.status).toBe(403);
    expect(set.json.message).toContain('quota of 3 claims');
  });

  it('a claim naming a missing pool or an unknown node type is refused with the fix', async () => {
    const pool = await api.call('POST', '/api/v1/projects/blue/claims', { token: t.blueAdmin, body: claim('p-1', { nodeTypeName: 'gpu.large', networks: [{ ipPoolName: 'nope' }] }) });
    expect(pool.status).toBe(422);
    expect(pool.json.message).toContain('IPPool "nope" does not exist');
    const nt = await api.call('POST', '/api/v1/projects/blue/claims', { token: t.blueAdmin, body: claim('p-2', { nodeTypeName: 'gpu.none' }) });
    expect(nt.status).toBe(422);
    expect(nt.json.message).toContain('ingot nodetype list --project blue');
  });

  it('delete is asynchronous: the claim is marked and the controller releases it', async () => {
    const res = await api.call('DELETE', '/api/v1/projects/blue/claims/own-1', { token: t.blueAdmin });
    expect(res.status).toBe(202);
    expect(res.json.metadata.deletionTimestamp).toBeDefined();
  });
});

describe('projects and pools', () => {
  it('a project holding objects cannot be deleted; an empty one can', async () => {
    const res = await api.call('DELETE', '/api/v1/projects/red');
    expect(res.status).toBe(409);
    expect(res.json.message).toContain('Claim');
    expect((await api.call('POST', '/api/v1/projects', { body: { metadata: { name: 'empty' }, spec: { allowedNodeTypes: [] } } })).status).toBe(201);
    expect((await api.call('DELETE', '/api/v1/projects/empty')).status).toBe(200);
    expect((await api.call('GET', '/api/v1/projects/empty/claims')).status).toBe(404);
  });

  it('an IP pool is validated and lists its allocations', async () => {
    const bad = await api.call('POST', '/api/v1/ippools', { body: { metadata: { name: 'bad' }, spec: { ranges: [{ start: '192.0.2.20', end: '192.0.2.10' }], prefix: 24 } } });
    expect(bad.status).toBe(400);
    const addresses = await api.call('GET', '/api/v1/ippools/rack1/addresses', { token: t.reader });
    expect(addresses.status).toBe(200);
    expect(addresses.json.kind).toBe('IPAddressList');
  });
});
