// Issue 6, "correctness under concurrency", with two real `ingot server` processes on one
// PostgreSQL database: 50 claims created in parallel through both APIs against 20 matching
// hosts. Exactly 20 are bound, no host twice, no address twice, 30 wait with a reason; when
// two claims are released, the two oldest waiting claims are bound next. Each process runs the
// API, the conductor (fake hosts, each leased by one of them) and the tenancy controllers, so
// schedulers and allocators in two processes race for the same rows.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, postgresForTests, type TestDatabase } from './support/postgres.js';
import { FAST_SERVER_CONFIG, startIngotServer, type IngotServerProcess } from './support/ingot-process.js';

const HOSTS = 20;
const CLAIMS = 50;
const SHA256 = 'c'.repeat(64);

interface ClaimView {
  metadata: { name: string; createdAt: string; deletionTimestamp?: string };
  status: { state: string; hostName?: string; reason?: string; addresses?: Array<{ address: string }> };
}

const pg = await postgresForTests();
const skip = 'skipReason' in pg ? pg.skipReason : undefined;

let work: string;
let database: TestDatabase;
const servers: IngotServerProcess[] = [];
const token = `ingot_${randomBytes(32).toString('base64url')}`;

async function call(server: IngotServerProcess, method: string, path: string, body?: unknown): Promise<{ status: number; json: any; text: string }> {
  const res = await fetch(`${server.apiUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, text, json: text ? JSON.parse(text) : undefined };
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, describeState: () => Promise<string>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; now: ${await describeState()}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

async function claims(): Promise<ClaimView[]> {
  return (await call(servers[0]!, 'GET', '/api/v1/projects/race/claims?limit=1000')).json.items as ClaimView[];
}
const bound = (c: ClaimView) => c.status.hostName !== undefined && c.status.hostName !== '';
const summary = async () => {
  const all = await claims();
  const counts: Record<string, number> = {};
  for (const c of all) counts[c.status.state] = (counts[c.status.state] ?? 0) + 1;
  return `${all.length} claims ${JSON.stringify(counts)}, ${all.filter(bound).length} bound`;
};
const byCreation = (a: ClaimView, b: ClaimView) => a.metadata.createdAt.localeCompare(b.metadata.createdAt) || a.metadata.name.localeCompare(b.metadata.name);

describe.skipIf(skip !== undefined)('two server processes on one PostgreSQL: 50 claims, 20 hosts', () => {
  beforeAll(async () => {
    if ('skipReason' in pg) return;
    work = mkdtempSync(join(tmpdir(), 'ingot-two-servers-'));
    database = await createTestDatabase(pg.url);
    const env = { ...process.env, HOME: work, INGOT_BOOTSTRAP_TOKEN: token };
    const extraArgs = ['--database', database.url, '--key-file', join(work, 'shared.key')];
    // One after the other: the first runs the migrations and creates the key file.
    servers.push(await startIngotServer({ dataDir: join(work, 'a'), cwd: work, env, config: FAST_SERVER_CONFIG, extraArgs }));
    servers.push(await startIngotServer({ dataDir: join(work, 'b'), cwd: work, env, config: FAST_SERVER_CONFIG, extraArgs }));
    const [a] = servers as [IngotServerProcess];
    const ok = async (method: string, path: string, body: unknown) => {
      const res = await call(a, method, path, body);
      expect(res.status, `${method} ${path}: ${res.text}`).toBeLessThan(300);
    };
    await ok('POST', '/api/v1/secrets', { metadata: { name: 'bmc' }, stringData: { username: 'admin', password: 'two-servers-bmc-pw' } });
    await Promise.all(
      Array.from({ length: HOSTS }, (_, i) =>
        ok('POST', '/api/v1/hosts', { metadata: { name: `node-${String(i).padStart(2, '0')}` }, spec: { bmc: { address: `fake://node-${String(i).padStart(2, '0')}`, credentialsName: 'bmc' }, online: false } }),
      ),
    );
    await ok('POST', '/api/v1/osimages', { metadata: { name: 'img' }, spec: { url: 'http://127.0.0.1:9/img.raw', checksum: SHA256, checksumType: 'sha256', format: 'raw' } });
    await ok('POST', '/api/v1/nodetypes', { metadata: { name: 'std' }, spec: { selector: { minCpus: 1 }, osImageName: 'img' } });
    await ok('POST', '/api/v1/projects', { metadata: { name: 'race' }, spec: {} });
    await ok('POST', '/api/v1/ippools', { metadata: { name: 'pool' }, spec: { ranges: [{ start: '198.51.100.10', end: '198.51.100.39' }], prefix: 24, gateway: '198.51.100.1' } });
    await until(
      `${HOSTS} hosts available`,
      async () => {
        const hosts = (await call(a, 'GET', '/api/v1/hosts?limit=1000')).json.items as Array<{ status: { provisioning: { state: string } } }>;
        return hosts.filter((h) => h.status.provisioning.state === 'available').length === HOSTS ? true : undefined;
      },
      async () => JSON.stringify(((await call(a, 'GET', '/api/v1/hosts?limit=1000')).json.items as Array<{ status: { provisioning: { state: string } } }>).map((h) => h.status.provisioning.state)),
    );
  }, 240_000);

  afterAll(async () => {
    for (const s of servers) await s.stop();
    await database?.drop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('binds exactly 20 claims to 20 different hosts with 20 different addresses; 30 wait with a reason; freed hosts go to the oldest waiting claims', async () => {
    // 50 creates at once, alternating between the two processes.
    const created = await Promise.all(
      Array.from({ length: CLAIMS }, (_, i) =>
        call(servers[i % 2]!, 'POST', '/api/v1/projects/race/claims', { metadata: { name: `c-${String(i).padStart(2, '0')}` }, spec: { nodeTypeName: 'std', networks: [{ ipPoolName: 'pool' }] } }),
      ),
    );
    for (const r of created) expect(r.status, r.text).toBe(201);

    const settled = await until(
      '20 bound claims with addresses and 30 pending with a reason',
      async () => {
        const all = await claims();
        const withHost = all.filter(bound);
        // Seen by a scheduler (not just created): the reason says what is missing.
        const pending = all.filter((c) => c.status.state === 'pending' && /no available host matches/.test(c.status.reason ?? '') && !bound(c));
        const addressed = withHost.filter((c) => (c.status.addresses ?? []).length === 1);
        return withHost.length === HOSTS && addressed.length === HOSTS && pending.length === CLAIMS - HOSTS ? all : undefined;
      },
      summary,
    );
    const withHost = settled.filter(bound);
    expect(new Set(withHost.map((c) => c.status.hostName)).size).toBe(HOSTS);
    const addresses = withHost.map((c) => c.status.addresses![0]!.address);
    expect(new Set(addresses).size).toBe(HOSTS);
    // The pool's own record agrees: 20 allocations, each address once.
    const allocations = (await call(servers[1]!, 'GET', '/api/v1/ippools/pool/addresses')).json.items as Array<{ address: string; claim: { name: string } }>;
    expect(allocations.map((a) => a.address).sort()).toEqual([...addresses].sort());
    // Fairness: the bound claims are the 20 oldest.
    const ordered = [...settled].sort(byCreation);
    expect(ordered.slice(0, HOSTS).every(bound)).toBe(true);
    for (const c of ordered.slice(HOSTS)) expect(c.status.reason, c.metadata.name).toMatch(/no available host matches/);

    // Two bound claims go away (through the other process); their hosts are cleaned and freed,
    // and the two oldest waiting claims get them.
    const released = ordered.slice(0, 2).map((c) => c.metadata.name);
    for (const name of released) expect((await call(servers[1]!, 'DELETE', `/api/v1/projects/race/claims/${name}`)).status).toBe(202);
    const nextTwo = ordered.slice(HOSTS, HOSTS + 2).map((c) => c.metadata.name);
    const after = await until(
      `${released.join(', ')} gone and ${nextTwo.join(', ')} bound`,
      async () => {
        const all = await claims();
        const names = new Set(all.map((c) => c.metadata.name));
        const next = all.filter((c) => nextTwo.includes(c.metadata.name) && bound(c) && (c.status.addresses ?? []).length === 1);
        return released.every((n) => !names.has(n)) && next.length === 2 ? all : undefined;
      },
      summary,
    );
    const nowBound = after.filter(bound);
    expect(nowBound).toHaveLength(HOSTS);
    expect(new Set(nowBound.map((c) => c.status.hostName)).size).toBe(HOSTS);
    const nowAddresses = nowBound.map((c) => c.status.addresses![0]!.address);
    expect(new Set(nowAddresses).size).toBe(HOSTS);
    // Everyone younger than the two is still waiting.
    const stillWaiting = [...after].sort(byCreation).slice(HOSTS);
    expect(stillWaiting.every((c) => !bound(c))).toBe(true);
  }, 300_000);
});
