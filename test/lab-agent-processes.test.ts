// Issue 3, where the lab's agents run: in a small lab in per-agent mode, a system that boots the
// agent medium from an Ingot server runs the agent as its own `ingot agent` child process (the
// compiled CLI), which completes in-band inspection; the process lives while the system is on
// and is gone once it is powered off. A lab (HTTPS Redfish BMCs) and a real server (SQLite, the
// Redfish driver, the conductor, the agent API), joined by enrollLab through the public API.
// Assertions wait for states (bounded polls), never for times.
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrollLab } from '../src/lab/enroll.js';
import type { BootRecord } from '../src/lab/lab-model.js';
import { LabHarness } from '../src/lab/lab-test-harness.js';
import { runServer, type RunningServer } from '../src/server/run-server.js';
import { hostApi, inState } from './support/host-api.js';
import { ensureBuilt } from './support/ingot-process.js';

let dir: string;
let lab: LabHarness;
let server: RunningServer;
let token: string;

beforeAll(async () => {
  ensureBuilt();
  dir = mkdtempSync(join(tmpdir(), 'ingot-lab-agent-processes-'));
  const profile = join(dir, 'profile.yaml');
  writeFileSync(profile, 'groups:\n  - {count: 2, cpus: 1, coresPerCpu: 2, ramGiB: 4, nics: 1, disks: [{sizeMiB: 16, type: nvme}]}\n');
  lab = await LabHarness.start({
    hosts: 2,
    powerTransitionMs: 50,
    profile,
    agentProcesses: 'per-agent',
    agents: { backoff: { initialMs: 50, maxMs: 500 }, commandWaitSeconds: 1, conversion: { minFreeMemoryBytes: 0 } },
  });
  server = await runServer({
    dataDir: join(dir, 'server'),
    listen: '127.0.0.1:0',
    agentListen: '127.0.0.1:0',
    fake: false,
    log: 'silent',
    conductor: {
      pollMs: 50,
      resyncMs: 1_000,
      backoff: { baseMs: 200, capMs: 1_000 },
      handler: { powerPollMs: 100, agentPollMs: 100, idleRecheckMs: 300, agentBootTimeoutMs: 60_000 },
    },
  });
  token = server.bootstrapToken!;
}, 240_000);

afterAll(async () => {
  await server?.close();
  await lab?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const { waitForHost } = hostApi(() => ({ apiUrl: server.apiUrl, token }));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
}

const mode = (path: string) => statSync(path).mode & 0o777;

describe('lab agents, one process each', () => {
  it('the agent of a booted system is its own process: it inspects the host, and goes when the power does', async () => {
    expect(lab.lab.agents?.processes).toBe('per-agent');
    const id = lab.sys(0);
    await enrollLab({ dataDir: lab.dataDir, server: server.apiUrl, token, systems: [id] });
    const system = lab.lab.fleet.get(id)!;

    // 1. The inspection boot from the agent medium started a child process, alive while the system is on.
    const record = await lab.until('the agent process of the inspection boot', async () => {
      const cd = system.bootLog.find((b: BootRecord) => b.source === 'cd' && b.agent?.started);
      return cd?.agent?.pid !== undefined ? cd : undefined;
    }, 60_000);
    const pid = record.agent!.pid!;
    expect(record.agent).toMatchObject({ started: true, mode: 'process' });
    expect(pid).not.toBe(process.pid);
    expect(alive(pid)).toBe(true);
    expect(await lab.powerState(0)).toBe('On');
    expect(lab.lab.agents!.runningSystems).toContain(id);

    // Its files are owner-only: the medium carries the one-boot token.
    const agentDir = join(lab.dataDir, 'systems', id, 'agent');
    expect(mode(agentDir)).toBe(0o700);
    expect(mode(join(agentDir, 'machine.json'))).toBe(0o600);
    expect(mode(join(agentDir, 'agent.log'))).toBe(0o600);
    const description = JSON.parse(readFileSync(join(agentDir, 'machine.json'), 'utf8')) as { disks: Array<{ name: string }> };
    expect(description.disks.map((d) => d.name)).toEqual(['nvme0n1']);

    // 2. The inspection completes: the inventory is what the child saw of the lab machine.
    const available = await waitForHost(id, 'available', inState('available'));
    expect(record.agent!.hostUid).toBe(available.metadata.uid);
    expect(available.status.hardware?.storage).toEqual([expect.objectContaining({ name: '/dev/nvme0n1', sizeBytes: 16 * 1024 * 1024 })]);
    expect(available.status.hardware?.cpu).toMatchObject({ count: 1, cores: 2 });

    // 3. Powered off (the conductor does it after inspection, or we do): the process is gone.
    if ((await lab.powerState(0)) !== 'Off') lab.lab.fleet.reset(system, 'ForceOff');
    await lab.until('the agent process to exit', async () => (alive(pid) ? undefined : true), 30_000);
    expect(lab.lab.agents!.runningSystems).not.toContain(id);
    expect(existsSync(join(agentDir, 'boot.iso'))).toBe(false);
    // The child wrote its own log there: the agent's JSON lines, never the token.
    const log = readFileSync(join(agentDir, 'agent.log'), 'utf8');
    expect(log).toMatch(/"msg":/);
    expect(log).not.toMatch(/ingotagent_/);
  });
});
