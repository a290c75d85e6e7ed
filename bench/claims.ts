// Tenancy throughput: N claims for N hosts, from create to bound, to ready (provisioned), and
// from delete to gone (cleaned and freed). It measures the claim controller's passes (each
// reads every claim, host, node type, pool and binding) together with the conductor working
// the same hosts, so its cost per pass at scale shows here.
//
// Setup: runServer in-process on a fresh SQLite file in a temp dir, fake:// hosts whose
// simulated hardware answers in tens of milliseconds (so the figures are Ingot's own cost, not
// the hardware's), rate limits off, the conductor with 32 workers and its default caps (at most
// 50 cleanings at once, so releasing N > 50 claims runs in waves). Hosts, node type, project,
// pool and claims are all created THROUGH THE API, validated and audited like any client's.
//
// Bounded: loopback only; every phase has a deadline (BENCH_TIMEOUT_SECONDS, default 600).
// Run with `npm run bench:claims` (BENCH_CLAIMS=N, default 200).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runServer } from '../src/server/run-server.js';

const N = Number(process.env.BENCH_CLAIMS ?? 200);
const TIMEOUT_MS = Number(process.env.BENCH_TIMEOUT_SECONDS ?? 600) * 1000;
const PARALLEL = 16;
const SHA256 = 'd'.repeat(64);

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ingot-bench-claims-'));
  const server = await runServer({
    dataDir: dir,
    listen: '127.0.0.1:0',
    agentListen: '127.0.0.1:0',
    log: 'warn',
    rateLimits: false,
    approvals: false,
    // In memory: the simulated fleet's own state file is not Ingot's cost.
    fake: { statePath: false, delays: { powerMs: [10, 30], inspectMs: [20, 60], deployMs: [20, 60], cleanMs: [20, 60], callMs: [0, 0] } },
    conductor: { workers: 32, pollMs: 200, resyncMs: 5_000, handler: { powerPollMs: 50, agentPollMs: 50, idleRecheckMs: 500 } },
    tenancy: { pollMs: 500 },
  });
  const token = server.bootstrapToken!;
  const call = async (method: string, path: string, body?: unknown): Promise<any> => {
    const res = await fetch(`${server.apiUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 300)}`);
    return text ? JSON.parse(text) : undefined;
  };
  const inParallel = async (count: number, fn: (i: number) => Promise<unknown>) => {
    let next = 0;
    await Promise.all(Array.from({ length: PARALLEL }, async () => {
      while (next < count) await fn(next++);
    }));
  };
  const listAll = async (path: string): Promise<any[]> => {
    const items: any[] = [];
    let cursor = '';
    do {
      const page = await call('GET', `${path}${path.includes('?') ? '&' : '?'}limit=1000${cursor ? `&continue=${encodeURIComponent(cursor)}` : ''}`);
      items.push(...page.items);
      cursor = page.metadata?.continue ?? '';
    } while (cursor);
    return items;
  };
  const until = async (what: string, done: () => Promise<boolean>): Promise<number> => {
    const started = performance.now();
    while (!(await done())) {
      if (performance.now() - started > TIMEOUT_MS) throw new Error(`timed out waiting for ${what}`);
      // Listing N claims is itself work for the server: look twice a second, not more.
      await new Promise((r) => setTimeout(r, 500));
    }
    return (performance.now() - started) / 1000;
  };
  const figures: Array<[string, string]> = [];
  try {
    await call('POST', '/api/v1/secrets', { metadata: { name: 'bmc' }, stringData: { username: 'admin', password: 'bench-password-123' } });
    const name = (i: number) => `h-${String(i).padStart(5, '0')}`;
    await inParallel(N, (i) => call('POST', '/api/v1/hosts', { metadata: { name: name(i) }, spec: { bmc: { address: `fake://${name(i)}`, credentialsName: 'bmc' } } }));
    const inspected = await until(`${N} hosts available`, async () => (await listAll('/api/v1/hosts')).filter((h) => h.status.provisioning.state === 'available').length === N);
    figures.push([`${N} hosts enrolled -> available`, `${inspected.toFixed(1)} s`]);
    await call('POST', '/api/v1/osimages', { metadata: { name: 'img' }, spec: { url: 'http://127.0.0.1:9/img.raw', checksum: SHA256, checksumType: 'sha256', format: 'raw' } });
    await call('POST', '/api/v1/nodetypes', { metadata: { name: 'std' }, spec: { selector: { minCpus: 1 }, osImageName: 'img' } });
    await call('POST', '/api/v1/projects', { metadata: { name: 'bench' }, spec: {} });
    await call('POST', '/api/v1/ippools', { metadata: { name: 'pool' }, spec: { ranges: [{ start: '10.0.0.10', end: '10.0.255.250' }], prefix: 16, gateway: '10.0.0.1' } });

    const t0 = performance.now();
    await inParallel(N, (i) => call('POST', '/api/v1/projects/bench/claims', { metadata: { name: `c-${String(i).padStart(5, '0')}` }, spec: { nodeTypeName: 'std', networks: [{ ipPoolName: 'pool' }] } }));
    const createdS = (performance.now() - t0) / 1000;
    figures.push([`${N} claims created through the API (${PARALLEL} at a time)`, `${createdS.toFixed(1)} s (${(N / createdS).toFixed(0)}/s)`]);
    const claims = () => listAll('/api/v1/projects/bench/claims');
    const bound = await until('every claim bound', async () => (await claims()).filter((c) => c.status.hostName).length === N);
    figures.push(['create -> every claim bound, with an address', `${(createdS + bound).toFixed(1)} s`]);
    const ready = await until('every claim ready', async () => (await claims()).filter((c) => c.status.state === 'ready').length === N);
    figures.push(['create -> every claim ready (host provisioned)', `${(createdS + bound + ready).toFixed(1)} s`]);
    const all = await claims();
    if (new Set(all.map((c) => c.status.hostName)).size !== N) throw new Error('a host was bound twice');
    if (new Set(all.map((c) => c.status.addresses?.[0]?.address)).size !== N) throw new Error('an address was handed out twice');

    const t1 = performance.now();
    await inParallel(N, (i) => call('DELETE', `/api/v1/projects/bench/claims/c-${String(i).padStart(5, '0')}`));
    const gone = await until('every claim gone', async () => (await claims()).length === 0);
    figures.push(['delete -> every claim gone (hosts cleaned, addresses freed)', `${((performance.now() - t1) / 1000).toFixed(1)} s (waiting ${gone.toFixed(1)} s)`]);
    const free = (await listAll('/api/v1/hosts')).filter((h) => h.status.provisioning.state === 'available' && !h.metadata.labels['ingot.dev/claim']).length;
    figures.push(['hosts available and unlabelled afterwards', `${free} of ${N}`]);
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(`claims bench: ${N} claims, ${N} fake hosts, SQLite, one process`);
  for (const [what, value] of figures) console.log(`  ${what.padEnd(62)} ${value}`);
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
