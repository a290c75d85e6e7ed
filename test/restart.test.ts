// Restart safety (issue 2, item 8): `kill -9` the whole server process while hosts are
// provisioning; after a restart on the same data dir they resume and finish, and no step is
// recorded twice. The fake fleet's state file plays the part of hardware that kept running
// while the control plane was dead.
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, waitForHostStates, type IngotClient } from '../src/client/index.js';
import { ensureBuilt, startIngotServer, type IngotServerProcess } from './support/ingot-process.js';

const HOSTS = ['rs-a', 'rs-b', 'rs-c'];
const IMAGE = { url: 'http://images.test.invalid/os.qcow2', checksum: 'c'.repeat(64), checksumType: 'sha256', format: 'qcow2' };

// Deploys take a few seconds so the kill lands mid-step; leases are short so the restarted
// process (a new lease holder) takes the hosts over quickly.
const CONFIG = [
  'conductor:',
  '  leaseTtlMs: 2000',
  '  powerPollMs: 100',
  '  agentPollMs: 100',
  '  backoff: {baseMs: 500, capMs: 5000}',
  'fake:',
  '  delays: {powerMs: [50, 100], inspectMs: [100, 200], deployMs: [4000, 5000], cleanMs: [100, 200], callMs: [0, 0]}',
].join('\n');

describe('kill -9 during provisioning', () => {
  let work: string;
  let env: NodeJS.ProcessEnv;
  let server: IngotServerProcess | undefined;

  beforeAll(() => {
    ensureBuilt();
    work = mkdtempSync(join(tmpdir(), 'ingot-restart-'));
    env = { ...process.env, HOME: work, INGOT_SERVER: '', INGOT_TOKEN: '' };
  }, 240_000);

  afterAll(async () => {
    await server?.stop('SIGKILL');
    rmSync(work, { recursive: true, force: true });
  });

  it('resumes every host after a restart and records each transition once', async () => {
    const dataDir = join(work, 'data');
    // 1. First start prints the bootstrap token.
    server = await startIngotServer({ dataDir, cwd: work, env, config: CONFIG });
    const token = server.token!;
    expect(token).toMatch(/^ingot_/);
    let client: IngotClient = createClient({ server: server.apiUrl, token });

    // 2. Enroll three fake hosts and let them become available.
    await client.secrets.apply({ metadata: { name: 'rs-bmc' }, stringData: { username: 'admin', password: 'pw-restart-test' } });
    for (const name of HOSTS) {
      await client.hosts.apply({ metadata: { name }, spec: { bmc: { address: `fake://${name}`, credentialsName: 'rs-bmc' }, online: true } });
    }
    await settleAll(client, 'available');

    // 3. Ask for provisioning and wait until every host is inside the deploy step.
    for (const name of HOSTS) await client.hosts.patch(name, { spec: { image: IMAGE } });
    await until(async () => {
      const hosts = await Promise.all(HOSTS.map((n) => client.hosts.get(n)));
      return hosts.every((h) => h.status.provisioning.state === 'provisioning' && h.status.progress?.step === 'deploy');
    }, 30_000);

    // 4. kill -9: no graceful shutdown, leases stay held, agent operations keep running on the "hardware".
    await server.stop('SIGKILL');

    // 5. Restart on the same data dir: no new token is printed; the old one still works.
    server = await startIngotServer({ dataDir, cwd: work, env, config: CONFIG });
    expect(server.token).toBeUndefined();
    client = createClient({ server: server.apiUrl, token });
    await settleAll(client, 'provisioned');

    // 6. Every transition appears exactly once per host, in lifecycle order.
    for (const name of HOSTS) {
      const events = await client.hosts.events(name, { limit: 1000 });
      const transitions = events.filter((e) => e.reason === 'StateChanged').map((e) => `${e.fromState}>${e.toState}`);
      expect(transitions, name).toEqual([
        'registering>inspecting',
        'inspecting>preparing',
        'preparing>available',
        'available>provisioning',
        'provisioning>provisioned',
      ]);
      const host = await client.hosts.get(name);
      expect(host.status.provisioning.image?.url).toBe(IMAGE.url);
      expect(host.status.poweredOn).toBe(true);
    }

    // 7. The simulated hardware ran one deploy per host: the one started before the kill.
    const fleet = JSON.parse(readFileSync(join(dataDir, 'fake-fleet.json'), 'utf8')) as { machines: Record<string, { operations?: Record<string, { kind: string }> }> };
    for (const name of HOSTS) {
      const ops = Object.values(fleet.machines[name]?.operations ?? {}).filter((op) => op.kind === 'deploy');
      expect(ops, name).toHaveLength(1);
    }
  }, 180_000);
});

async function settleAll(client: IngotClient, target: 'available' | 'provisioned'): Promise<void> {
  const results = await waitForHostStates(client, HOSTS, target, { timeoutMs: 90_000 });
  for (const r of results) if (r.status === 'rejected') throw r.reason;
}

async function until(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
