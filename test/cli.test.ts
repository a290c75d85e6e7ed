// The real `ingot` binary (bin/ingot.js -> dist/) against a real `ingot server` child
// process on 127.0.0.1 with the fake driver: every command a person would type, with its
// output and exit code. Steps are numbered because each builds on the previous ones.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QUICKSTART_IMAGE_BYTES, QUICKSTART_IMAGE_MARKER } from '../src/cli/quickstart-image.js';
import { FIRST_USABLE_LBA } from './support/gpt.js';
import { BIN, ensureBuilt, FAST_SERVER_CONFIG, runIngot, startIngotServer, type CliResult, type IngotServerProcess } from './support/ingot-process.js';
import YAML from 'yaml';

const CHECKSUM = 'a'.repeat(64);

let work: string;
let baseEnv: NodeJS.ProcessEnv;

function ingot(args: string[], options: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  return runIngot(args, { cwd: work, env: { ...baseEnv, ...options.env }, ...(options.input !== undefined ? { input: options.input } : {}), ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}) });
}

async function startServer(dataDir: string): Promise<IngotServerProcess & { token: string }> {
  const server = await startIngotServer({ dataDir, cwd: work, env: baseEnv, config: FAST_SERVER_CONFIG });
  if (!server.token) throw new Error(`no bootstrap token printed:\n${server.output()}`);
  return server as IngotServerProcess & { token: string };
}

describe('ingot CLI against ingot server', () => {
  let server: Awaited<ReturnType<typeof startServer>>;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    ensureBuilt();
    work = mkdtempSync(join(tmpdir(), 'ingot-cli-'));
    baseEnv = { ...process.env, HOME: work, INGOT_CONFIG: join(work, 'config.json'), INGOT_SERVER: '', INGOT_TOKEN: '', NO_COLOR: '1' };
    server = await startServer(join(work, 'data'));
    env = { INGOT_SERVER: server.apiUrl, INGOT_TOKEN: server.token };
  }, 240_000);

  afterAll(async () => {
    if (server?.child.exitCode === null) {
      server.child.kill('SIGTERM');
      await new Promise((r) => server.child.once('close', r));
    }
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('1. prints the exact listening lines and how to use the bootstrap token', () => {
    expect(server.output()).toContain(`export INGOT_SERVER=${server.apiUrl} INGOT_TOKEN=${server.token}`);
  });

  it('2. without a token it says which variables to set or to log in', async () => {
    const r = await ingot(['host', 'list'], { env: { INGOT_SERVER: server.apiUrl } });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`ingot: error: no API token is configured for ${server.apiUrl}: set INGOT_SERVER and INGOT_TOKEN, or run \`ingot login --server URL --token TOKEN\``);
  });

  it('3. an unreachable server is named, with what to check', async () => {
    const port = await unusedPort();
    const r = await ingot(['host', 'list'], { env: { INGOT_SERVER: `http://127.0.0.1:${port}`, INGOT_TOKEN: 'ingot_x' } });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`cannot reach the Ingot API at http://127.0.0.1:${port}: connection refused. Is \`ingot server\` running? Set INGOT_SERVER or run \`ingot login\``);
  });

  it('4. a wrong token is refused with a hint to log in', async () => {
    const r = await ingot(['host', 'list'], { env: { INGOT_SERVER: server.apiUrl, INGOT_TOKEN: 'ingot_not-a-real-token' } });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/the token was refused: .*ingot login/);
  });

  it('5. login checks the token, then saves it owner-only for later commands', async () => {
    const bad = await ingot(['login', '--server', server.apiUrl, '--token', 'ingot_wrong']);
    expect(bad.code).toBe(1);
    expect(existsSync(join(work, 'config.json'))).toBe(false);
    const r = await ingot(['login', '--server', server.apiUrl, '--token', server.token]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(statSync(join(work, 'config.json')).mode & 0o777).toBe(0o600);
    const list = await ingot(['host', 'list']); // no INGOT_* variables: the saved config is used
    expect(list.code).toBe(0);
    expect(list.stdout).toContain('no hosts yet');
  });

  it('6. secret create stores values; show and list print keys and version, never values', async () => {
    const r = await ingot(['secret', 'create', 'cli-bmc', '--from-literal', 'username=admin', '--from-literal', 'password=s3cr3t-value'], { env });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('secret/cli-bmc created');
    for (const args of [['secret', 'show', 'cli-bmc'], ['secret', 'show', 'cli-bmc', '-o', 'json'], ['secret', 'list', '-o', 'yaml']]) {
      const s = await ingot(args, { env });
      expect(s.code).toBe(0);
      expect(s.stdout).toContain('password');
      expect(s.stdout).not.toContain('s3cr3t-value');
    }
    const show = await ingot(['secret', 'show', 'cli-bmc'], { env });
    expect(show.stdout).toMatch(/^Keys:\s+password, username$/m);
    const again = await ingot(['secret', 'create', 'cli-bmc', '--from-literal', 'password=x'], { env });
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('already exists');
  });

  it('7. malformed YAML is reported with line and column, and nothing is applied', async () => {
    const file = join(work, 'broken.yaml');
    writeFileSync(file, hostYaml('cli-broken', 'fake://cli-broken') + '---\napiVersion: ingot.dev/v1\nkind: Host\nmetadata: {name: cli-x\nspec: {}\n');
    const r = await ingot(['apply', '-f', file], { env });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/broken\.yaml: invalid YAML at line \d+, column \d+/);
    expect(r.stderr).toContain('nothing was applied');
    const show = await ingot(['host', 'show', 'cli-broken'], { env });
    expect(show.code).toBe(1);
    expect(show.stderr).toContain('does not exist');
  });

  it('8. an unknown field is named, and the other documents are not applied either', async () => {
    const file = join(work, 'typo.yaml');
    writeFileSync(file, hostYaml('cli-typo-ok', 'fake://cli-typo-ok') + '---\n' + hostYaml('cli-typo', 'fake://cli-typo').replace('online: false', 'onlin: false'));
    const r = await ingot(['apply', '-f', file], { env });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('spec.onlin: unknown field "onlin"');
    expect((await ingot(['host', 'show', 'cli-typo-ok'], { env })).code).toBe(1);
  });

  it('9. apply creates a secret and two hosts and waits until both are available', async () => {
    const file = join(work, 'fleet.yaml');
    const secret = 'apiVersion: ingot.dev/v1\nkind: Secret\nmetadata: {name: cli-fleet-bmc}\nstringData: {username: admin, password: pw}\n';
    writeFileSync(file, [secret, hostYaml('cli-n1', 'fake://cli-n1', 'cli-fleet-bmc'), hostYaml('cli-n2', 'fake://cli-n2', 'cli-fleet-bmc')].join('---\n'));
    const r = await ingot(['apply', '-f', file, '--wait', 'available', '--timeout', '3m'], { env, timeoutMs: 200_000 });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('secret/cli-fleet-bmc created\nhost/cli-n1 created\nhost/cli-n2 created\n');
    // not a terminal: one line per state change
    expect(r.stdout).toMatch(/^cli-n1: \S+ -> available \(\d+\.\ds\)$/m);
    expect(r.stdout).toMatch(/all 2 hosts are available\n$/);
    const again = await ingot(['apply', '-f', file], { env });
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('host/cli-n1 unchanged\nhost/cli-n2 unchanged\n');
  }, 240_000);

  it('10. host list in table, json and yaml', async () => {
    const table = await ingot(['host', 'list'], { env });
    expect(table.code).toBe(0);
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines[0]!.split(/\s+/)).toEqual(['NAME', 'STATE', 'POWER', 'ERROR', 'AGE']);
    expect(lines.slice(1).map((l) => l.split(/\s+/).slice(0, 2))).toEqual([
      ['cli-n1', 'available'],
      ['cli-n2', 'available'],
    ]);
    const json = JSON.parse((await ingot(['host', 'list', '-o', 'json'], { env })).stdout) as { items: Array<{ metadata: { name: string } }> };
    expect(json.items.map((h) => h.metadata.name)).toEqual(['cli-n1', 'cli-n2']);
    const yaml = YAML.parse((await ingot(['host', 'list', '-o', 'yaml', '-l', 'rack=cli'], { env })).stdout) as { items: Array<{ status: { provisioning: { state: string } } }> };
    expect(yaml.items.map((h) => h.status.provisioning.state)).toEqual(['available', 'available']);
    const none = await ingot(['host', 'list', '-l', 'rack=nowhere'], { env });
    expect(none.stdout).toContain('no hosts match rack=nowhere');
    const bad = await ingot(['host', 'list', '-o', 'xml'], { env });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('unknown output format');
  });

  it('11. host show and host events', async () => {
    const show = await ingot(['host', 'show', 'cli-n1'], { env });
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(/^State:\s+available$/m);
    expect(show.stdout).toMatch(/^BMC:\s+fake:\/\/cli-n1 \(credentials: cli-fleet-bmc\)$/m);
    const events = await ingot(['host', 'events', 'cli-n1'], { env });
    expect(events.code).toBe(0);
    expect(events.stdout.split('\n')[0]!.split(/\s+/)).toEqual(['AGE', 'TYPE', 'REASON', 'TRANSITION', 'MESSAGE']);
    expect(events.stdout).toMatch(/-> available/);
    const missing = await ingot(['host', 'events', 'no-such-host'], { env });
    expect(missing.code).toBe(1);
  });

  it('12. host power on sets spec.online and waits for the power state', async () => {
    const r = await ingot(['host', 'power', 'cli-n2', 'on', '--wait', '--timeout', '2m'], { env, timeoutMs: 150_000 });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('host/cli-n2 is powered on');
    const h = JSON.parse((await ingot(['host', 'show', 'cli-n2', '-o', 'json'], { env })).stdout) as { spec: { online: boolean }; status: { poweredOn: boolean } };
    expect(h.spec.online).toBe(true);
    expect(h.status.poweredOn).toBe(true);
    const bad = await ingot(['host', 'power', 'cli-n2', 'sideways'], { env });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('use on or off');
  }, 180_000);

  it('13. provision --wait provisioned, then deprovision --wait available', async () => {
    const p = await ingot(['host', 'provision', 'cli-n1', '--image-url', 'http://images.invalid/os.qcow2', '--checksum', CHECKSUM, '--format', 'qcow2', '--wait', 'provisioned', '--timeout', '3m'], { env, timeoutMs: 200_000 });
    expect(p.stderr).toBe('');
    expect(p.code).toBe(0);
    expect(p.stdout).toMatch(/host\/cli-n1 is provisioned\n$/);
    const shown = JSON.parse((await ingot(['host', 'show', 'cli-n1', '-o', 'json'], { env })).stdout) as { spec: { image?: { url: string } } };
    expect(shown.spec.image?.url).toBe('http://images.invalid/os.qcow2');
    const d = await ingot(['host', 'deprovision', 'cli-n1', '--wait', 'available', '--timeout', '3m'], { env, timeoutMs: 200_000 });
    expect(d.stderr).toBe('');
    expect(d.code).toBe(0);
    expect(d.stdout).toMatch(/^cli-n1: (provisioned -> )?deprovisioning/m);
    const after = JSON.parse((await ingot(['host', 'show', 'cli-n1', '-o', 'json'], { env })).stdout) as { spec: { image?: unknown }; status: { provisioning: { state: string } } };
    expect(after.spec.image).toBeUndefined();
    expect(after.status.provisioning.state).toBe('available');
    const badSum = await ingot(['host', 'provision', 'cli-n1', '--image-url', 'http://x/y', '--checksum', 'nothex'], { env });
    expect(badSum.code).toBe(1);
    expect(badSum.stderr).toContain('--checksum must be the hex digest');
  }, 420_000);

  it('14. a host failing inspection makes --wait exit 1 saying where it failed and what to do', async () => {
    const file = join(work, 'bad.yaml');
    writeFileSync(file, hostYaml('cli-bad', 'fake://fail-inspect-cli', 'cli-fleet-bmc'));
    const r = await ingot(['apply', '-f', file, '--wait', 'available', '--timeout', '3m'], { env, timeoutMs: 200_000 });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/host cli-bad failed in \S+: inspection: /);
    expect(r.stderr).toContain('ingot host events cli-bad');
  }, 240_000);

  it('15. host delete --wait removes the hosts', async () => {
    for (const name of ['cli-n1', 'cli-n2', 'cli-bad']) {
      const r = await ingot(['host', 'delete', name, '--wait', '--timeout', '3m'], { env, timeoutMs: 200_000 });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`host/${name} is deleted`);
    }
    const list = await ingot(['host', 'list', '-o', 'json'], { env });
    expect((JSON.parse(list.stdout) as { items: unknown[] }).items).toEqual([]);
    const del = await ingot(['secret', 'delete', 'cli-bmc'], { env });
    expect(del.code).toBe(0);
  }, 420_000);

  it('16. the server stops cleanly on SIGTERM', async () => {
    server.child.kill('SIGTERM');
    const code = await new Promise((r) => server.child.once('close', r));
    expect(code).toBe(0);
  });
});

describe('ingot server --config', () => {
  it('refuses a config file with an unknown field, naming it, and does not start', async () => {
    work = mkdtempSync(join(tmpdir(), 'ingot-config-'));
    baseEnv = { ...process.env, HOME: work, INGOT_SERVER: '', INGOT_TOKEN: '' };
    try {
      writeFileSync(join(work, 'bad.yaml'), 'conductor:\n  wrokers: 3\n');
      const r = await ingot(['server', '--data-dir', join(work, 'data'), '--config', join(work, 'bad.yaml'), '--listen', '127.0.0.1:0', '--agent-listen', '127.0.0.1:0']);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`config file ${join(work, 'bad.yaml')}: conductor.wrokers: unknown field`);
      expect(existsSync(join(work, 'data', 'ingot.db'))).toBe(false);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});

describe('ingot quickstart', () => {
  beforeAll(() => {
    ensureBuilt();
  }, 240_000);

  const MIB = 1024 * 1024;
  /** The image's partitions region (the config drive's GPT edit rewrites the headers, not this). */
  const partitions = (b: Buffer) => b.subarray(FIRST_USABLE_LBA * 512, QUICKSTART_IMAGE_BYTES - 33 * 512);
  const diskOf = (dataDir: string, host: string) => readFileSync(join(dataDir, 'lab', 'systems', host, 'disk-0.img'));
  /** Every host inspected; the claim's host (the first: equal hosts go in name order) provisioned. */
  const expectLifecycle = (stdout: string, hosts: string[]) => {
    for (const h of hosts) {
      expect(stdout).toContain(`${h}: registering -> inspecting`);
      expect(stdout).toContain(`${h}: preparing -> available`);
    }
    const [claimed, ...rest] = hosts;
    expect(stdout).toContain(`claim/demo-1 is bound to host ${claimed}`);
    expect(stdout).toContain(`${claimed}: provisioning -> provisioned`);
    expect(stdout).toMatch(new RegExp(`^${claimed}\\s+provisioned\\s+on\\s`, 'm'));
    for (const h of rest) expect(stdout).toMatch(new RegExp(`^${h}\\s+available\\s`, 'm'));
    expect(stdout).toMatch(new RegExp(`claim/demo-1 is ready on host ${claimed} \\(addresses 198\\.51\\.100\\.10\\)`));
    expect(stdout).toMatch(/^demo-1\s+lab\.small\s+ready\s+/m);
    // The tenant's token is printed once for the tour; the tenant view never shows a BMC.
    expect(stdout).toMatch(/export INGOT_TOKEN=ingot_\S+ INGOT_PROJECT=demo/);
  };

  it('inspects 2 lab hosts with the real agent, publishes a qcow2 image built locally, a project claims a machine that is provisioned onto its lab disk, exits 0 and reuses the installation', async () => {
    work = mkdtempSync(join(tmpdir(), 'ingot-qs-'));
    baseEnv = { ...process.env, HOME: work, INGOT_CONFIG: join(work, 'config.json'), INGOT_SERVER: '', INGOT_TOKEN: '' };
    const dataDir = join(work, 'qs');
    try {
      const r = await ingot(['quickstart', '--hosts', '2', '--data-dir', dataDir], { timeoutMs: 240_000 });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('all 2 hosts are available');
      expectLifecycle(r.stdout, ['node-001', 'node-002']);
      expect(r.stdout).toMatch(/OSImage quickstart-disk \(qcow2, .* served at http:\/\/127\.0\.0\.1:\d+\/quickstart-disk\.qcow2\)/);
      expect(r.stdout).toMatch(/osimage\/quickstart-disk verified: qcow2/);
      expect(r.stdout).toMatch(/export INGOT_SERVER=http:\/\/127\.0\.0\.1:\d+ INGOT_TOKEN=ingot_\S+/);
      // The lab disks hold the image as qemu-img converts it, and the marker of its root partition.
      execFileSync('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', join(dataDir, 'images', 'quickstart-disk.qcow2'), join(work, 'expected.raw')]);
      const expected = readFileSync(join(work, 'expected.raw'));
      expect(expected.length).toBe(QUICKSTART_IMAGE_BYTES);
      const disk = diskOf(dataDir, 'node-001');
      expect(disk.length).toBe(64 * MIB);
      expect(partitions(disk).equals(partitions(expected))).toBe(true);
      expect(disk.toString('utf8', 2 * MIB, 2 * MIB + QUICKSTART_IMAGE_MARKER.length)).toBe(QUICKSTART_IMAGE_MARKER);
      // The unclaimed host's disk was only inspected, never written.
      expect(partitions(diskOf(dataDir, 'node-002')).equals(partitions(expected))).toBe(false);
      // The second disk of each machine was left alone (rootDeviceHints chose the NVMe disk).
      const second = join(dataDir, 'lab', 'systems', 'node-001', 'disk-1.img');
      expect(!existsSync(second) || readFileSync(second).every((b) => b === 0)).toBe(true);

      // A second run reuses the installation: same hosts, nothing inspected or written again.
      const again = await ingot(['quickstart', '--hosts', '2', '--data-dir', dataDir], { timeoutMs: 240_000 });
      expect(again.stderr).toBe('');
      expect(again.code).toBe(0);
      expect(again.stdout).toContain('Reusing the quickstart installation');
      expect(again.stdout).toContain('claim/demo-1 is ready on host node-001');
      expect(again.stdout).not.toContain('node-001: registering');
      expect(partitions(diskOf(dataDir, 'node-001')).equals(partitions(expected))).toBe(true);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }, 540_000);

  it('falls back to a raw image, and says so, when qemu-img is not on PATH', async () => {
    work = mkdtempSync(join(tmpdir(), 'ingot-qs-raw-'));
    // A PATH with openssl (the lab CA needs it) but no qemu-img; node is started by its full path.
    const bin = join(work, 'bin');
    mkdirSync(bin);
    symlinkSync(execFileSync('sh', ['-c', 'command -v openssl'], { encoding: 'utf8' }).trim(), join(bin, 'openssl'));
    baseEnv = { ...process.env, PATH: bin, HOME: work, INGOT_CONFIG: join(work, 'config.json'), INGOT_SERVER: '', INGOT_TOKEN: '' };
    const dataDir = join(work, 'qs');
    try {
      const r = await ingot(['quickstart', '--hosts', '1', '--data-dir', dataDir], { timeoutMs: 240_000 });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('note: qemu-img is not installed, so the image is raw');
      expect(r.stdout).toMatch(/OSImage quickstart-disk \(raw, .* served at http:\/\/127\.0\.0\.1:\d+\/quickstart-disk\.raw\)/);
      expect(r.stdout).toContain('host/node-001 is provisioned');
      expectLifecycle(r.stdout, ['node-001']);
      const image = readFileSync(join(dataDir, 'images', 'quickstart-disk.raw'));
      expect(partitions(diskOf(dataDir, 'node-001')).equals(partitions(image))).toBe(true);
      expect(existsSync(join(dataDir, 'images', 'quickstart-disk.qcow2'))).toBe(false);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }, 240_000);
});

/** A port nothing listens on: bound and released at once. */
function unusedPort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const s = createNetServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolvePort(port));
    });
  });
}

describe('ingot lab', () => {
  beforeAll(() => {
    ensureBuilt();
  }, 240_000);

  it('starts a lab, injects and clears faults, and enrolls its systems into a server', async () => {
    work = mkdtempSync(join(tmpdir(), 'ingot-lab-'));
    baseEnv = { ...process.env, HOME: work, INGOT_CONFIG: join(work, 'config.json'), INGOT_SERVER: '', INGOT_TOKEN: '' };
    const labDir = join(work, 'lab');
    const lab = spawn(process.execPath, [BIN, 'lab', '--hosts', '2', '--listen', '127.0.0.1:0', '--data-dir', labDir], { cwd: work, env: baseEnv });
    let labOut = '';
    lab.stdout.on('data', (c: Buffer) => (labOut += c.toString()));
    lab.stderr.on('data', (c: Buffer) => (labOut += c.toString()));
    let server: Awaited<ReturnType<typeof startServer>> | undefined;
    try {
      const deadline = Date.now() + 60_000;
      while (!/Press Ctrl-C/.test(labOut)) {
        if (lab.exitCode !== null || Date.now() > deadline) throw new Error(`ingot lab did not start:\n${labOut}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(labOut).toMatch(/^Ingot lab: 2 simulated servers, Redfish at https:\/\/127\.0\.0\.1:\d+$/m);

      const list = await ingot(['lab', 'fault', 'list', '--data-dir', labDir, '-o', 'json']);
      expect(list.code).toBe(0);
      const ids = (JSON.parse(list.stdout) as { systems: Array<{ id: string }> }).systems.map((x) => x.id);
      expect(ids).toHaveLength(2);
      const set = await ingot(['lab', 'fault', 'set', ids[0]!, '--data-dir', labDir, '--error-burst', '2', '--delay', '10']);
      expect(set.stdout).toBe(`${ids[0]}: delay 10ms, next 2 answers 503\n`);
      const table = await ingot(['lab', 'fault', 'list', '--data-dir', labDir]);
      expect(table.stdout).toMatch(new RegExp(`^${ids[0]}\\s+\\S+\\s+delay 10ms, next 2 answers 503$`, 'm'));
      const clear = await ingot(['lab', 'fault', 'clear', ids[0]!, '--data-dir', labDir]);
      expect(clear.stdout).toBe(`${ids[0]}: no faults\n`);
      const none = await ingot(['lab', 'fault', 'set', ids[0]!, '--data-dir', labDir]);
      expect(none.code).toBe(1);
      expect(none.stderr).toContain('say which fault to inject');

      server = await startServer(join(work, 'data'));
      const env = { INGOT_SERVER: server.apiUrl, INGOT_TOKEN: server.token };
      const enroll = await ingot(['lab', 'enroll', '--data-dir', labDir], { env });
      expect(enroll.stderr).toBe('');
      expect(enroll.code).toBe(0);
      expect(enroll.stdout).toContain('2 hosts enrolled (CA in secret/lab-ca)');
      const hosts = JSON.parse((await ingot(['host', 'list', '-o', 'json'], { env })).stdout) as { items: Array<{ metadata: { name: string }; spec: { bmc: { address: string } } }> };
      expect(hosts.items.map((h) => h.metadata.name).sort()).toEqual([...ids].sort());
      expect(hosts.items[0]!.spec.bmc.address).toMatch(/^redfish-virtualmedia:\/\/127\.0\.0\.1:\d+\/redfish\/v1\/Systems\//);
    } finally {
      for (const child of [lab, server?.child]) {
        if (child && child.exitCode === null) {
          child.kill('SIGTERM');
          await new Promise((r) => child.once('close', r));
        }
      }
      rmSync(work, { recursive: true, force: true });
    }
  }, 240_000);
});

function hostYaml(name: string, address: string, secret = 'cli-bmc'): string {
  return `apiVersion: ingot.dev/v1
kind: Host
metadata:
  name: ${name}
  labels: {rack: cli}
spec:
  bmc:
    address: "${address}"
    credentialsName: ${secret}
  online: false
`;
}
