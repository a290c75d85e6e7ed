// The lab's boot behaviour (agent-runner.ts): a CD boot of an agent medium runs the real agent
// as the machine (until power goes), a CD boot of anything else runs nothing, a disk boot
// records the partition table and config drive found, and the failDriveWrites fault makes the
// agent's disk writes fail. Against a real lab in a temp dir and, for the agent, a minimal
// agent API on 127.0.0.1 that answers lookup and holds the long poll. The agents run in the
// lab process here (agentProcesses 'shared'); test/lab-agent-processes.test.ts runs them as
// child processes.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { writeConfigDrive } from '../agent/config-drive.js';
import { openFileDisk } from '../agent/file-disk.js';
import { buildBootConfigIso } from '../images/boot-config-iso.js';
import { writeGpt } from '../../test/support/gpt.js';
import { labMachineFor } from './agent-runner.js';
import { ensureDiskFile, type BootRecord, type SystemState } from './lab-model.js';
import { startLab, type RunningLab } from './run-lab.js';

const MIB = 1024 * 1024;
const TOKEN = `ingotagent_${'A'.repeat(43)}`;

let dir: string;
let lab: RunningLab;
let api: Server;
let apiUrl: string;
const seen: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ingot-lab-agents-'));
  api = createServer((req, res) => {
    seen.push(`${req.method} ${req.url?.replace(/\?.*$/, '')}`);
    if (req.url?.startsWith('/medium.iso')) {
      const iso = buildBootConfigIso({ apiUrl, token: TOKEN, hostUid: 'host-uid-1', bootId: 'boot-1' });
      return void res.writeHead(200, { 'content-length': iso.length }).end(iso);
    }
    if (req.url === '/not-a-medium.iso') return void res.writeHead(200).end(Buffer.alloc(64 * 1024));
    if (req.url === '/agent/v1/lookup') {
      return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ hostUid: 'host-uid-1', hostName: 'h1', heartbeatIntervalMs: 60_000, commandWaitSeconds: 1 }));
    }
    // The long poll: no command, after a while.
    if (req.url?.startsWith('/agent/v1/commands')) return void setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end('{"command":null}'), 200);
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => api.listen(0, '127.0.0.1', r));
  apiUrl = `http://127.0.0.1:${(api.address() as { port: number }).port}`;
  const profile = join(dir, 'profile.yaml');
  writeFileSync(profile, 'groups:\n  - {count: 2, cpus: 1, ramGiB: 2, disks: [{sizeMiB: 8, type: nvme}, {sizeMiB: 4, type: sata}]}\n');
  lab = await startLab({ hosts: 2, listen: '127.0.0.1:0', dataDir: join(dir, 'lab'), profile, powerTransitionMs: 10, agentProcesses: 'shared', agents: { backoff: { initialMs: 20, maxMs: 100 } } });
});

afterAll(async () => {
  await lab?.close();
  await new Promise((r) => api?.close(r));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

afterEach(() => {
  for (const s of lab.fleet.systems) lab.fleet.reset(s, 'ForceOff');
});

async function until<T>(what: string, check: () => T | undefined | Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Powers the system on with a one-time override to `target`; resolves with the boot record. */
async function bootFrom(system: SystemState, target: 'Cd' | 'Hdd', mediaUrl?: string): Promise<BootRecord> {
  await until('power off', () => (lab.fleet.powerState(system) === 'Off' ? true : undefined));
  const before = system.bootLog.length;
  system.media = mediaUrl ? { image: mediaUrl, inserted: true, writeProtected: true } : { image: null, inserted: false, writeProtected: true };
  system.boot = { target, enabled: 'Once', mode: 'UEFI' };
  expect(lab.fleet.reset(system, 'On').kind).toBe('started');
  return until('the boot', () => (lab.fleet.powerState(system) === 'On' && system.bootLog.length > before ? system.bootLog.at(-1) : undefined));
}

describe('lab agent boots', () => {
  it('a CD boot of an agent medium runs the agent as the machine until the power goes off', async () => {
    const system = lab.fleet.systems[0]!;
    const record = await bootFrom(system, 'Cd', `${apiUrl}/medium.iso`);
    // 1. The agent read its boot configuration from the medium and looked itself up.
    await until('the agent lookup', () => (seen.includes('POST /agent/v1/lookup') ? true : undefined));
    expect(record.agent).toEqual({ started: true, mode: 'in-process', hostUid: 'host-uid-1', bootId: 'boot-1' });
    expect(lab.agents!.runningSystems).toEqual([system.id]);
    await until('a long poll', () => (seen.includes('GET /agent/v1/commands') ? true : undefined));
    // 2. Power off: the agent stops.
    lab.fleet.reset(system, 'ForceOff');
    expect(lab.agents!.runningSystems).toEqual([]);
  });

  it('a CD that is not an agent medium, or is not on loopback, runs nothing', async () => {
    const system = lab.fleet.systems[1]!;
    const bad = await bootFrom(system, 'Cd', `${apiUrl}/not-a-medium.iso`);
    await until('the refusal', () => bad.agent);
    expect(bad.agent).toMatchObject({ started: false, error: expect.stringContaining('not an Ingot agent medium') });
    lab.fleet.reset(system, 'ForceOff');
    const fetchesBefore = seen.length;
    const far = await bootFrom(system, 'Cd', 'http://images.example/agent.iso');
    await until('the refusal', () => far.agent);
    expect(far.agent).toMatchObject({ started: false, error: expect.stringContaining('only from loopback') });
    expect(seen.length).toBe(fetchesBefore);
    expect(lab.agents!.runningSystems).toEqual([]);
  });

  it('a disk boot records the partition table and the config drive (a digest of the user data, never the data)', async () => {
    const system = lab.fleet.systems[1]!;
    // 1. An empty disk: no partition table.
    const empty = await bootFrom(system, 'Hdd');
    await until('the disk findings', () => empty.disk);
    expect(empty.disk).toMatchObject({ drive: 0, partitionTable: 'none', partitions: [] });
    lab.fleet.reset(system, 'ForceOff');
    // 2. A GPT disk with a config drive, as a deploy leaves it.
    const path = await ensureDiskFile(lab.fleet.dataDir, system, 0);
    const disk = await openFileDisk(path, 8 * MIB);
    const gpt = Buffer.alloc(8 * MIB);
    writeGpt(gpt, [{ firstLba: 2048, lastLba: 4095, name: 'root' }]);
    await disk.write(gpt, 0);
    const userData = '#cloud-config\nhostname: lab\n';
    await writeConfigDrive(disk, { metaData: { uuid: 'u-1', name: 'lab' }, userData });
    await disk.close();
    const booted = await bootFrom(system, 'Hdd');
    await until('the disk findings', () => booted.disk);
    expect(booted.disk).toMatchObject({
      partitionTable: 'gpt',
      partitions: [expect.objectContaining({ name: 'root', firstLba: 2048 }), expect.objectContaining({ name: 'config-2' })],
      configDrive: { metaData: { uuid: 'u-1', name: 'lab' }, userDataSha256: createHash('sha256').update(userData).digest('hex') },
    });
    expect(booted.disk!.configDrive!.files).toEqual(expect.arrayContaining(['openstack/latest/user_data', 'openstack/latest/meta_data.json']));
    expect(JSON.stringify(system.bootLog)).not.toContain('hostname: lab');
  });

  it('the failDriveWrites fault makes writes to that drive fail, and only that drive', async () => {
    const system = lab.fleet.systems[0]!;
    lab.faults.set(system.id, { failDriveWrites: [1] });
    try {
      const machine = await labMachineFor(lab.fleet.dataDir, system, lab.faults);
      expect((await machine.disks()).map((d) => [d.name, d.sizeBytes, d.rotational])).toEqual([
        ['nvme0n1', 8 * MIB, false],
        ['sda', 4 * MIB, true],
      ]);
      const good = await machine.openDisk('nvme0n1');
      await good.write(Buffer.from('ok'), 0);
      await good.close();
      const failing = await machine.openDisk('sda');
      await expect(failing.write(Buffer.from('no'), 0)).rejects.toThrow(/I\/O error.*failDriveWrites/);
      await failing.close();
      // The inventory is the system's description.
      const inventory = await machine.inventory();
      expect(inventory.nics?.map((n) => n.mac)).toEqual(system.hardware.nics.map((n) => n.mac));
      expect(inventory.storage?.map((d) => d.serialNumber)).toEqual(system.hardware.drives.map((d) => d.serialNumber));
    } finally {
      lab.faults.clear(system.id);
    }
  });
});
