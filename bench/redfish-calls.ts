// Redfish requests per host for each lifecycle step: what one host costs its BMC.
//
// Prints, per step, the requests the lab's BMC served for that host (GET /lab/v1/stats,
// attributed per system): register, inspect in-band (agent booted from virtual media; this
// includes the power-off after inspection and the preparing step), inspect out-of-band
// (spec.inspection: bmc), power on and power off. Steps are split where the host's state
// changes, read by polling the API every 20 ms, so a request or two may land in the
// neighbouring step. Provision and deprovision are not measured here yet (they need an image
// with a partition table served to the agent; test/lab-deploy.test.ts does that).
//
// Setup: the lab (standard personality, 200 ms power transitions, agents in-process) and an
// Ingot server run in this process on loopback port 0 in temp dirs, embedded SQLite, 100 ms
// power and agent polls. Run with
//   npm run bench:redfish-calls
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { enrollLab } from '../src/lab/enroll.js';
import { startLab } from '../src/lab/run-lab.js';
import { runServer } from '../src/server/run-server.js';

interface HostView {
  status: { provisioning: { state: string }; poweredOn?: boolean; errorType?: string; errorMessage?: string };
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'ingot-bench-redfish-calls-'));
  const lab = await startLab({ hosts: 2, listen: '127.0.0.1:0', dataDir: join(dir, 'lab'), powerTransitionMs: 200, agentProcesses: 'shared', agents: { backoff: { initialMs: 50, maxMs: 500 }, commandWaitSeconds: 1 } });
  const server = await runServer({
    dataDir: join(dir, 'server'),
    listen: '127.0.0.1:0',
    agentListen: '127.0.0.1:0',
    fake: false,
    log: 'silent',
    conductor: { pollMs: 50, resyncMs: 1_000, handler: { powerPollMs: 100, agentPollMs: 100, idleRecheckMs: 60_000 } },
  });
  const token = server.bootstrapToken!;
  const api = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${server.apiUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': method === 'PATCH' ? 'application/merge-patch+json' : 'application/json' },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    return (await res.json()) as T;
  };
  const served = (id: string) => lab.stats.snapshot().systems[id] ?? 0;
  async function until(id: string, what: string, check: (h: HostView) => boolean): Promise<void> {
    const deadline = Date.now() + 5 * 60_000;
    for (;;) {
      const h = await api<HostView>('GET', `/api/v1/hosts/${id}`);
      if (check(h)) return;
      if (h.status?.provisioning.state === 'error' || Date.now() > deadline) throw new Error(`${id} did not reach ${what}: ${JSON.stringify(h.status)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  const rows: Array<[string, number]> = [];
  const started = Date.now();
  try {
    for (const [index, mode] of [[0, 'agent'], [1, 'bmc']] as const) {
      const id = lab.systems[index]!.id;
      const before = served(id);
      await enrollLab({ dataDir: join(dir, 'lab'), server: server.apiUrl, token, systems: [id], inspection: mode });
      await until(id, 'past registering', (h) => h.status?.provisioning.state !== undefined && h.status.provisioning.state !== 'registering');
      const registered = served(id);
      await until(id, 'available', (h) => h.status.provisioning.state === 'available');
      const available = served(id);
      if (index === 0) rows.push(['register', registered - before]);
      rows.push([`inspect (${mode === 'agent' ? 'agent, in-band, with preparing' : 'bmc, out-of-band'})`, available - registered]);
      if (index === 0) {
        const off = served(id);
        await api('PATCH', `/api/v1/hosts/${id}`, { spec: { online: true } });
        await until(id, 'powered on', (h) => h.status.poweredOn === true);
        const on = served(id);
        rows.push(['power on', on - off]);
        await api('PATCH', `/api/v1/hosts/${id}`, { spec: { online: false } });
        await until(id, 'powered off', (h) => h.status.poweredOn === false);
        rows.push(['power off (soft)', served(id) - on]);
      }
    }
  } finally {
    await server.close();
    await lab.close();
    await rm(dir, { recursive: true, force: true });
  }
  const width = Math.max(...rows.map(([name]) => name.length));
  console.log('Redfish requests served by the lab BMC, per host and step');
  for (const [name, n] of rows) console.log(`  ${name.padEnd(width)}  ${String(n).padStart(4)}`);
  console.log(`wall time ${((Date.now() - started) / 1000).toFixed(1)} s; load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
