// An agent that dies mid-deploy: the real `ingot agent` process is killed (SIGKILL) while the
// image is half written, and the conductor's side (the AgentQueue's poll) reports the deploy
// failed once the agent has been silent longer than agentLostAfterMs. The retry boots a new
// agent with eraseFirst (as the provisioning handler asks after a provisioning error): it erases
// what the dead one wrote even when its own image is then refused, and the next retry works.
// Finally the dead agent's medium is replayed: its one-boot token is refused.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAgent } from '../src/agent/agent.js';
import { createFileMachine } from '../src/agent/file-machine.js';
import type { AgentStartRequest } from '../src/conductor/agent-port.js';
import { createAgentQueue, type AgentQueue } from '../src/conductor/agent-queue.js';
import { readBootConfigFromIso } from '../src/images/boot-config-iso.js';
import type { Host } from '../src/model/host.js';
import { runServer, type RunningServer } from '../src/server/run-server.js';
import { SecretBox } from '../src/store/secret-box.js';
import { runQueuedOperation } from './support/agent-operation.js';
import { BIN } from './support/ingot-process.js';
import { writeGpt } from './support/gpt.js';

const MIB = 1024 * 1024;
const DISK_BYTES = 32 * MIB;
const IMAGE_BYTES = 8 * MIB;
const LOST_AFTER_MS = 1500;

let dir: string;
let server: RunningServer;
let queue: AgentQueue;
let images: Server;
let imageUrl: string;
let host: Host;
let image: Buffer;
const stalled: ServerResponse[] = [];
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ingot-agent-lost-'));
  server = await runServer({ dataDir: join(dir, 'data'), listen: '127.0.0.1:0', agentListen: '127.0.0.1:0', role: 'api', fake: false, redfish: false, log: 'silent' });
  const box = await SecretBox.fromKeyFile(join(dir, 'data', 'secrets.key'));
  queue = createAgentQueue({ store: server.store, box, agentApiUrl: server.agentUrl, agentLostAfterMs: LOST_AFTER_MS });
  image = Buffer.alloc(IMAGE_BYTES);
  writeGpt(image, [{ firstLba: 2048, lastLba: 2048 + 8192 - 1, name: 'root' }]);
  randomBytes(4 * MIB).copy(image, 2048 * 512);
  images = createServer((req, res) => {
    if (req.url === '/image.raw') {
      res.writeHead(200, { 'content-length': image.length });
      return void res.end(image);
    }
    if (req.url === '/stalls.raw') {
      // Half the image, then nothing: the agent writes the head and waits for the rest.
      res.writeHead(200, { 'content-length': image.length });
      res.write(image.subarray(0, IMAGE_BYTES / 2));
      return void stalled.push(res);
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => images.listen(0, '127.0.0.1', r));
  imageUrl = `http://127.0.0.1:${(images.address() as { port: number }).port}`;
  const row = await server.store.create({ kind: 'Host', name: 'lost', spec: {}, status: {} });
  host = { apiVersion: 'ingot.dev/v1', kind: 'Host', metadata: { name: row.name, uid: row.uid }, spec: row.spec, status: {} } as unknown as Host;
  writeFileSync(join(dir, 'disk.img'), Buffer.alloc(DISK_BYTES));
  writeFileSync(join(dir, 'machine.json'), JSON.stringify({ hardware: { cpu: { arch: 'x86_64', count: 1 }, ramMebibytes: 512, nics: [] }, disks: [{ name: 'vda', file: join(dir, 'disk.img') }], scratchDir: dir }));
});

afterAll(async () => {
  for (const res of stalled) res.destroy();
  await new Promise((r) => images?.close(r));
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

const deployOf = (url: string, checksum: string, eraseFirst?: boolean): AgentStartRequest => ({
  kind: 'deploy',
  deploy: { image: { url, checksum, format: 'raw' }, configDrive: { metaData: { uuid: host.metadata.uid } }, ...(eraseFirst ? { eraseFirst } : {}) },
});

/** This boot's medium, as the BMC would fetch it. */
async function medium(): Promise<Buffer> {
  const boot = await queue.prepareBoot(host);
  return Buffer.from(await (await fetch(boot.mediaUrl)).arrayBuffer());
}

/** A fresh agent in this process over the same disk file, for the retries. */
async function agentRun(request: AgentStartRequest, operationId: string) {
  const agent = runAgent({
    bootConfig: readBootConfigFromIso(await medium()),
    machine: createFileMachine({ hardware: { cpu: { arch: 'x86_64', count: 1 } }, disks: [{ name: 'vda', file: join(dir, 'disk.img') }], scratchDir: dir }),
    log: { info: () => {}, warn: () => {} },
    backoff: { initialMs: 20, maxMs: 200 },
    commandWaitSeconds: 1,
    minRootDiskBytes: 0,
  });
  const poll = await runQueuedOperation(queue, host, operationId, request);
  await queue.finish(host);
  await agent;
  return poll;
}

describe('an agent lost mid-deploy', () => {
  it('1. is noticed within agentLostAfterMs; 2. the retry erases what it wrote; 3. the next retry works; 4. its medium is refused', async () => {
    // 1. The agent process starts the deploy, writes the first half, and is killed.
    const iso = join(dir, 'dead.iso');
    writeFileSync(iso, await medium());
    const child = spawn(process.execPath, [BIN, 'agent', '--boot-iso', iso, '--machine', join(dir, 'machine.json'), '--backoff-ms', '20,200', '--command-wait-seconds', '1', '--min-root-disk-bytes', '0'], { stdio: 'ignore' });
    const exited = new Promise((r) => child.once('exit', r));
    const operationId = 'deploy-1';
    let poll = await (async () => {
      const started = runQueuedOperation(queue, host, operationId, deployOf(`${imageUrl}/stalls.raw`, sha256(image)));
      // Wait until the head (and its GPT) is on the disk, then kill the agent without warning.
      for (;;) {
        const head = readFileSync(join(dir, 'disk.img')).subarray(512, 520).toString('latin1');
        if (head === 'EFI PART') break;
        await new Promise((r) => setTimeout(r, 50));
      }
      child.kill('SIGKILL');
      await exited;
      return started;
    })();
    expect(poll.state).toBe('failed');
    if (poll.state !== 'failed') return;
    expect(poll.message).toMatch(/^the agent was lost before finishing \(no heartbeat for \d+ s\)/);
    // The dead agent left half an image, partition table included.
    expect(readFileSync(join(dir, 'disk.img')).subarray(512, 520).toString('latin1')).toBe('EFI PART');

    // 2. A retry whose image is refused (wrong checksum) still erased the partial image first.
    poll = await agentRun(deployOf(`${imageUrl}/image.raw`, 'ab'.repeat(32), true), 'deploy-2');
    expect(poll).toMatchObject({ state: 'failed', message: expect.stringContaining('checksum-mismatch') });
    const afterRefusal = readFileSync(join(dir, 'disk.img'));
    expect(afterRefusal.subarray(0, MIB).every((b) => b === 0)).toBe(true);
    expect(afterRefusal.subarray(DISK_BYTES - MIB).every((b) => b === 0)).toBe(true);

    // 3. The next retry writes the image and its config drive.
    poll = await agentRun(deployOf(`${imageUrl}/image.raw`, sha256(image), true), 'deploy-3');
    expect(poll).toMatchObject({ state: 'done', rootDevice: '/dev/vda' });
    const disk = readFileSync(join(dir, 'disk.img'));
    expect(disk.subarray(2048 * 512, 2048 * 512 + 4 * MIB).equals(image.subarray(2048 * 512, 2048 * 512 + 4 * MIB))).toBe(true);

    // 4. The dead agent's medium (its one-boot token) replayed after its operation ended: refused.
    const replay = await runAgent({
      bootConfig: readBootConfigFromIso(readFileSync(iso)),
      machine: createFileMachine({ hardware: {}, disks: [{ name: 'vda', file: join(dir, 'disk.img') }] }),
      log: { info: () => {}, warn: () => {} },
      backoff: { initialMs: 20, maxMs: 200 },
    });
    expect(replay.reason).toBe('session-ended');
    const lookup = await fetch(`${server.agentUrl}/agent/v1/lookup`, {
      method: 'POST',
      headers: { authorization: `Bearer ${readBootConfigFromIso(readFileSync(iso)).token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ hostUid: host.metadata.uid, bootId: readBootConfigFromIso(readFileSync(iso)).bootId, macs: [] }),
    });
    expect(lookup.status).toBe(401);
  });
});
