// The agent as it runs on a real host: `ingot agent` (agentMain) on this Linux machine's
// inventory, its boot configuration read from the boot medium attached as a block device, and
// inspect, deploy (GPT and MBR images) and clean run against a real block device (a loop
// device over a sparse file), checked afterwards with sfdisk and blkid. Needs root and loop
// devices; skipped with the reason otherwise.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentMain } from '../src/agent/main.js';
import type { AgentPoll, AgentStartRequest } from '../src/conductor/agent-port.js';
import { createAgentQueue, type AgentQueue } from '../src/conductor/agent-queue.js';
import type { Host } from '../src/model/host.js';
import { runServer, type RunningServer } from '../src/server/run-server.js';
import { SecretBox } from '../src/store/secret-box.js';
import { runQueuedOperation } from './support/agent-operation.js';

const MIB = 1024 * 1024;
const DISK_BYTES = 64 * MIB;

function loopDevicesWork(): boolean {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return false;
  const dir = mkdtempSync(join(tmpdir(), 'ingot-loop-probe-'));
  try {
    execFileSync('truncate', ['-s', '1M', join(dir, 'probe')]);
    const dev = execFileSync('losetup', ['-f', '--show', join(dir, 'probe')], { encoding: 'utf8' }).trim();
    execFileSync('losetup', ['-d', dev]);
    return true;
  } catch {
    return false;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const usable = loopDevicesWork();
let dir: string;
let server: RunningServer;
let queue: AgentQueue;
let images: Server;
let imageUrl: string;
let host: Host;
let disk: string;
const attached: string[] = [];
let gptImage: Buffer;
let mbrImage: Buffer;
let opCounter = 0;

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const attach = (file: string, readOnly = false) => {
  const dev = execFileSync('losetup', ['-f', '--show', ...(readOnly ? ['-r'] : []), file], { encoding: 'utf8' }).trim();
  attached.push(dev);
  return dev;
};
const detach = (dev: string) => {
  spawnSync('losetup', ['-d', dev]);
  attached.splice(attached.indexOf(dev), 1);
};
const shortName = (dev: string) => dev.replace('/dev/', '');

/** A whole-disk GPT image made by sfdisk: one Linux partition holding random bytes. */
function buildGptImage(): Buffer {
  const file = join(dir, 'gpt.img');
  execFileSync('truncate', ['-s', String(8 * MIB), file]);
  execFileSync('sfdisk', ['--quiet', '--no-reread', file], { input: 'label: gpt\nstart=2048, size=8192, type=L, name=root\n' });
  const image = readFileSync(file);
  randomBytes(4 * MIB).copy(image, 2048 * 512);
  return image;
}

/** A whole-disk MBR (dos) image made by sfdisk: a bootable Linux partition and swap. */
function buildMbrImage(): Buffer {
  const file = join(dir, 'mbr.img');
  execFileSync('truncate', ['-s', String(8 * MIB), file]);
  execFileSync('sfdisk', ['--quiet', '--no-reread', file], { input: 'label: dos\nstart=2048, size=8192, type=83, bootable\nstart=10240, size=4096, type=82\n' });
  const image = readFileSync(file);
  randomBytes(2 * MIB).copy(image, 2048 * 512);
  return image;
}

/** Boots "the agent" from this boot's medium attached as a block device, runs one operation, then finish(). */
async function operate(request: AgentStartRequest): Promise<{ poll: AgentPoll; stderr: string; medium: string }> {
  const boot = await queue.prepareBoot(host);
  const isoFile = join(dir, `medium-${++opCounter}.iso`);
  writeFileSync(isoFile, Buffer.from(await (await fetch(boot.mediaUrl)).arrayBuffer()));
  const medium = attach(isoFile, true);
  const stderr: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  // agentMain logs JSON lines to stderr; keep them for the assertions.
  process.stderr.write = ((chunk: string | Uint8Array) => (stderr.push(chunk.toString()), true)) as typeof process.stderr.write;
  try {
    const agent = agentMain(['--boot-medium', medium, '--disk', shortName(disk), '--i-mean-it-write-disks', '--backoff-ms', '20,200', '--command-wait-seconds', '1', '--min-root-disk-bytes', '0', '--conversion-min-free-memory-bytes', '0']);
    const operationId = `op-${opCounter}-${request.kind}`;
    const poll = await runQueuedOperation(queue, host, operationId, request);
    await queue.finish(host);
    expect((await agent).reason).toBe('session-ended');
    return { poll, stderr: stderr.join(''), medium };
  } finally {
    process.stderr.write = write;
    detach(medium);
  }
}

describe.skipIf(!usable)('the agent on this Linux machine, against a real block device', () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ingot-agent-linux-'));
    server = await runServer({ dataDir: join(dir, 'data'), listen: '127.0.0.1:0', agentListen: '127.0.0.1:0', role: 'api', fake: false, redfish: false, log: 'silent' });
    const box = await SecretBox.fromKeyFile(join(dir, 'data', 'secrets.key'));
    queue = createAgentQueue({ store: server.store, box, agentApiUrl: server.agentUrl });
    gptImage = buildGptImage();
    mbrImage = buildMbrImage();
    images = createServer((req, res) => {
      const body = req.url === '/gpt.img' ? gptImage : req.url === '/mbr.img' ? mbrImage : undefined;
      if (!body) return void res.writeHead(404).end();
      res.writeHead(200, { 'content-length': body.length });
      res.end(body);
    });
    await new Promise<void>((r) => images.listen(0, '127.0.0.1', r));
    imageUrl = `http://127.0.0.1:${(images.address() as { port: number }).port}`;
    const row = await server.store.create({ kind: 'Host', name: 'linux', spec: {}, status: {} });
    host = { apiVersion: 'ingot.dev/v1', kind: 'Host', metadata: { name: row.name, uid: row.uid }, spec: row.spec, status: {} } as unknown as Host;
    execFileSync('truncate', ['-s', String(DISK_BYTES), join(dir, 'disk.img')]);
    disk = attach(join(dir, 'disk.img'));
  });

  afterAll(async () => {
    for (const dev of [...attached]) detach(dev);
    await new Promise((r) => images?.close(r));
    await server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('inspects: the loop device with its size, and the NICs this machine has', async () => {
    const { poll, stderr, medium } = await operate({ kind: 'inspect' });
    expect(poll.state).toBe('done');
    if (poll.state !== 'done') return;
    expect(poll.inventory?.storage).toEqual([expect.objectContaining({ name: disk, sizeBytes: DISK_BYTES })]);
    const links = JSON.parse(execFileSync('ip', ['-j', 'link'], { encoding: 'utf8' })) as Array<{ address?: string; link_type?: string }>;
    expect(poll.inventory?.nics?.map((n) => n.mac)).toEqual(links.filter((l) => l.link_type === 'ether').map((l) => l.address));
    // The configuration came from the medium's block device, read in place.
    expect(stderr).toContain(`"from":"${medium}"`);
  });

  it('deploys a GPT image made by sfdisk onto the device, config drive included; metadata cleaning leaves no signature', async () => {
    const deployed = await operate({
      kind: 'deploy',
      deploy: { image: { url: `${imageUrl}/gpt.img`, checksum: sha256(gptImage), format: 'raw' }, configDrive: { metaData: { uuid: host.metadata.uid, name: 'linux' }, userData: '#cloud-config\n' } },
    });
    expect(deployed.poll).toMatchObject({ state: 'done', rootDevice: disk });
    const table = JSON.parse(execFileSync('sfdisk', ['--json', disk], { encoding: 'utf8' })) as { partitiontable: { label: string; partitions: Array<{ start: number; size: number; name?: string }> } };
    expect(table.partitiontable.label).toBe('gpt');
    expect(table.partitiontable.partitions.map((p) => p.name)).toEqual(['root', 'config-2']);
    const cd = table.partitiontable.partitions[1]!;
    const probe = execFileSync('blkid', ['-p', '-O', String(cd.start * 512), '-o', 'export', disk], { encoding: 'utf8' });
    expect(probe).toMatch(/^TYPE=iso9660$/m);
    expect(probe).toMatch(/^LABEL=config-2$/m);

    const cleaned = await operate({ kind: 'clean', clean: { mode: 'metadata' } });
    expect(cleaned.poll.state).toBe('done');
    // blkid exits 2 when it finds no signature at all; sfdisk finds no table.
    expect(spawnSync('blkid', ['-p', disk]).status).toBe(2);
    expect(spawnSync('sfdisk', ['--dump', disk]).status).not.toBe(0);
  });

  it('deploys an MBR image made by sfdisk: the config drive is a new primary partition at the end of the device', async () => {
    const deployed = await operate({
      kind: 'deploy',
      deploy: { image: { url: `${imageUrl}/mbr.img`, checksum: sha256(mbrImage), format: 'raw' }, configDrive: { metaData: { uuid: host.metadata.uid, name: 'linux' } } },
    });
    expect(deployed.poll).toMatchObject({ state: 'done', rootDevice: disk });
    const table = (JSON.parse(execFileSync('sfdisk', ['--json', disk], { encoding: 'utf8' })) as { partitiontable: { label: string; partitions: Array<{ start: number; size: number; type: string }> } }).partitiontable;
    expect(table.label).toBe('dos');
    expect(table.partitions.map((p) => [p.start, p.size, p.type])).toEqual([
      [2048, 8192, '83'],
      [10240, 4096, '82'],
      [DISK_BYTES / 512 - 2048, 2048, '83'],
    ]);
    const probe = execFileSync('blkid', ['-p', '-O', String(table.partitions[2]!.start * 512), '-o', 'export', disk], { encoding: 'utf8' });
    expect(probe).toMatch(/^LABEL=config-2$/m);
    // The image's own bytes are on the device as served.
    const written = Buffer.alloc(mbrImage.length - 512);
    const fd = openSync(disk, 'r');
    try {
      readSync(fd, written, 0, written.length, 512);
    } finally {
      closeSync(fd);
    }
    expect(written.equals(mbrImage.subarray(512))).toBe(true);
  });
});
