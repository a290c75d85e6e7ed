// API throughput and latency: GET one host and list 1,000 hosts, at concurrency 8 and 32,
// with Bearer authentication on every request (so token checking is part of the cost).
//
// Setup: runServer in-process on a fresh SQLite file in a temp dir, with `role: 'api'` so no
// conductor competes for the CPU; 1,000 hosts are inserted THROUGH THE API (POST, 16 at a
// time), i.e. validated and audited like any client's writes. Hosts point at fake:// BMCs,
// but with the conductor off nobody acts on them.
//
// Bounded: loopback only, each measurement runs for a fixed time (BENCH_SECONDS, default 5)
// and stops by itself. Run with `npm run bench:api`.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import { runServer } from '../src/server/run-server.js';

const HOSTS = Number(process.env.BENCH_HOSTS ?? 1000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONCURRENCY = [8, 32];

interface Result {
  name: string;
  concurrency: number;
  requests: number;
  errors: number;
  seconds: number;
  p50: number;
  p99: number;
  max: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function measure(pool: Pool, token: string, name: string, concurrency: number, path: () => string): Promise<Result> {
  const latencies: number[] = [];
  let errors = 0;
  const started = performance.now();
  const deadline = started + SECONDS * 1000;
  const worker = async () => {
    while (performance.now() < deadline) {
      const t0 = performance.now();
      try {
        const res = await pool.request({ method: 'GET', path: path(), headers: { authorization: `Bearer ${token}`, accept: 'application/json' } });
        await res.body.arrayBuffer();
        if (res.statusCode !== 200) errors++;
      } catch {
        errors++;
      }
      latencies.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return { name, concurrency, requests: latencies.length, errors, seconds, p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies.at(-1) ?? NaN };
}

async function insertHosts(pool: Pool, token: string): Promise<void> {
  let next = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= HOSTS) return;
      const name = `bench-${String(i).padStart(4, '0')}`;
      const body = JSON.stringify({
        apiVersion: 'ingot.dev/v1',
        kind: 'Host',
        metadata: { name, labels: { rack: `r${i % 20}` } },
        spec: { bmc: { address: `fake://${name}`, credentialsName: 'bench-bmc' }, online: false },
      });
      const res = await pool.request({ method: 'POST', path: '/api/v1/hosts', body, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } });
      const text = await res.body.text();
      if (res.statusCode !== 201 && res.statusCode !== 200) throw new Error(`creating ${name} answered ${res.statusCode}: ${text.slice(0, 300)}`);
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
}

async function main(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'ingot-bench-'));
  // Rate limits off: the benchmark is one identity making thousands of requests a second, which
  // the per-identity limits (docs/server-config.md) exist to refuse.
  const server = await runServer({ dataDir, listen: '127.0.0.1:0', agentListen: '127.0.0.1:0', role: 'api', log: 'warn', rateLimits: false });
  const token = server.bootstrapToken;
  if (!token) throw new Error('the fresh server did not hand out a bootstrap token');
  const pool = new Pool(server.apiUrl, { connections: Math.max(...CONCURRENCY), pipelining: 1, keepAliveTimeout: 30_000 });
  try {
    const secret = await pool.request({
      method: 'PUT',
      path: '/api/v1/secrets/bench-bmc',
      body: JSON.stringify({ apiVersion: 'ingot.dev/v1', kind: 'Secret', metadata: { name: 'bench-bmc' }, stringData: { username: 'admin', password: 'bench' } }),
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    });
    await secret.body.text();
    const t0 = performance.now();
    await insertHosts(pool, token);
    const insertSeconds = (performance.now() - t0) / 1000;
    console.log(`inserted ${HOSTS} hosts through POST /api/v1/hosts in ${insertSeconds.toFixed(1)} s (${(HOSTS / insertSeconds).toFixed(0)}/s, concurrency 16)`);
    console.log(`server: ${server.apiUrl} (role api, SQLite in ${dataDir}); ${SECONDS} s per measurement; Node ${process.version}\n`);

    const results: Result[] = [];
    for (const c of CONCURRENCY) {
      results.push(await measure(pool, token, 'GET /api/v1/hosts/NAME', c, () => `/api/v1/hosts/bench-${String(Math.floor(Math.random() * HOSTS)).padStart(4, '0')}`));
    }
    for (const c of CONCURRENCY) {
      results.push(await measure(pool, token, `GET /api/v1/hosts?limit=${HOSTS}`, c, () => `/api/v1/hosts?limit=${HOSTS}`));
    }
    const rows = results.map((r) => [
      r.name,
      String(r.concurrency),
      String(r.requests),
      (r.requests / r.seconds).toFixed(0),
      r.p50.toFixed(2),
      r.p99.toFixed(2),
      r.max.toFixed(2),
      String(r.errors),
    ]);
    const headers = ['endpoint', 'conc', 'requests', 'req/s', 'p50 ms', 'p99 ms', 'max ms', 'errors'];
    const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
    console.log(line(headers));
    for (const r of rows) console.log(line(r));
    if (results.some((r) => r.errors > 0)) process.exitCode = 1;
  } finally {
    await pool.close();
    await server.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

await main();
