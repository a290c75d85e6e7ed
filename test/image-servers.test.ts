// Image servers that speak HTTP/1.0 and close the connection after the body: Python's
// http.server and busybox httpd, serving a 256 MiB raw image (sparse on the server's disk), so
// the agent's disk writes hold the download back while the server has already sent
// everything and closed. With undici's HTTP/1 parser this ended the agent process with an
// uncatchable `AssertionError: assert(!this.paused)` (nodejs/undici#5360); the agent runs
// here as its own process (`ingot agent`), so such a crash fails the deploy instead of the
// test runner. Checked against the undici download path: the python server crashed the agent
// (the race needs the FIN to arrive while the parser is paused, so the small image helps).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, mkdtempSync, openSync, readSync, closeSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentPoll } from '../src/conductor/agent-port.js';
import { createAgentQueue, type AgentQueue } from '../src/conductor/agent-queue.js';
import type { Host } from '../src/model/host.js';
import { runServer, type RunningServer } from '../src/server/run-server.js';
import { SecretBox } from '../src/store/secret-box.js';
import { runQueuedOperation } from './support/agent-operation.js';
import { BIN } from './support/ingot-process.js';

const MIB = 1024 * 1024;
const IMAGE_BYTES = 256 * MIB;
const DISK_BYTES = 320 * MIB;

const has = (cmd: string, args: string[]) => {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ENOENT';
  }
};
const hasPython = has('python3', ['-c', 'import http.server']);
const hasBusybox = has('busybox', ['httpd', '--help']);

let dir: string;
let server: RunningServer;
let queue: AgentQueue;
let host: Host;
let digest: string;
let smallDigest: string;
const servers: ChildProcess[] = [];

async function freePort(): Promise<number> {
  const probe = createNetServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const { port } = probe.address() as { port: number };
  await new Promise((r) => probe.close(r));
  return port;
}

async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1', () => (s.end(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listens on 127.0.0.1:${port}`);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ingot-image-servers-'));
  server = await runServer({ dataDir: join(dir, 'data'), listen: '127.0.0.1:0', agentListen: '127.0.0.1:0', role: 'api', fake: false, redfish: false, log: 'silent' });
  const box = await SecretBox.fromKeyFile(join(dir, 'data', 'secrets.key'));
  queue = createAgentQueue({ store: server.store, box, agentApiUrl: server.agentUrl });
  const row = await server.store.create({ kind: 'Host', name: 'servers', spec: {}, status: {} });
  host = { apiVersion: 'ingot.dev/v1', kind: 'Host', metadata: { name: row.name, uid: row.uid }, spec: row.spec, status: {} } as unknown as Host;
  // A sparse 256 MiB whole-disk GPT image with one partition, and a few non-zero bytes in it.
  const image = join(dir, 'www', 'image.raw');
  execFileSync('mkdir', ['-p', join(dir, 'www')]);
  execFileSync('truncate', ['-s', String(IMAGE_BYTES), image]);
  execFileSync('sfdisk', ['--quiet', '--no-reread', image], { input: 'label: gpt\nstart=2048, type=L, name=root\n' });
  const fd = openSync(image, 'r+');
  try {
    writeFileSync(fd, Buffer.from('ingot image-servers marker'), { flag: 'r+' });
  } finally {
    closeSync(fd);
  }
  digest = await sha256Of(image);
  // And a 3 MiB one: the whole response and the server's FIN fit in the socket buffers, so they
  // arrive while the agent is still checking the image's head (backpressure from the start).
  const small = join(dir, 'www', 'small.raw');
  execFileSync('truncate', ['-s', String(3 * MIB), small]);
  execFileSync('sfdisk', ['--quiet', '--no-reread', small], { input: 'label: gpt\nstart=2048, type=L, name=root\n' });
  smallDigest = await sha256Of(small);
}, 120_000);

async function sha256Of(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

afterAll(async () => {
  for (const s of servers) s.kill('SIGTERM');
  await server?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Boots `ingot agent` (its own process) from this boot's medium, deploys from `url`, returns the poll and the agent's stderr. */
async function deployFrom(url: string, name: string, checksum = digest): Promise<{ poll: AgentPoll; stderr: string; disk: string }> {
  const disk = join(dir, `${name}.disk`);
  execFileSync('truncate', ['-s', String(DISK_BYTES), disk]);
  writeFileSync(join(dir, `${name}.json`), JSON.stringify({ hardware: { cpu: { arch: 'x86_64', count: 1 } }, disks: [{ name: 'vda', file: disk }], scratchDir: dir }));
  const boot = await queue.prepareBoot(host);
  writeFileSync(join(dir, `${name}.iso`), Buffer.from(await (await fetch(boot.mediaUrl)).arrayBuffer()));
  const child = spawn(process.execPath, [BIN, 'agent', '--boot-iso', join(dir, `${name}.iso`), '--machine', join(dir, `${name}.json`), '--backoff-ms', '20,200', '--command-wait-seconds', '1', '--min-root-disk-bytes', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', r));
  // A crashed agent stops answering; the queue then reports it lost. Race the two.
  const poll = await Promise.race([
    runQueuedOperation(queue, host, `deploy-${name}`, { kind: 'deploy', deploy: { image: { url, checksum, format: 'raw' } } }),
    exited.then((code) => ({ state: 'failed' as const, message: `the agent process exited (${code}) during the deploy` })),
  ]);
  await queue.finish(host);
  await exited;
  return { poll, stderr, disk };
}

function readAt(file: string, offset: number, length: number): Buffer {
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(length);
    readSync(fd, buf, 0, length, offset);
    return buf;
  } finally {
    closeSync(fd);
  }
}

describe('image servers that speak HTTP/1.0 and close after the body', () => {
  it.skipIf(!hasPython)('python3 -m http.server', async () => {
    const port = await freePort();
    servers.push(spawn('python3', ['-m', 'http.server', String(port), '--bind', '127.0.0.1', '--directory', join(dir, 'www')], { stdio: 'ignore' }));
    await waitForPort(port);
    const { poll, stderr, disk } = await deployFrom(`http://127.0.0.1:${port}/image.raw`, 'python');
    expect(stderr).not.toContain('assert(!this.paused)');
    expect(poll).toMatchObject({ state: 'done', rootDevice: '/dev/vda' });
    expect(readAt(disk, 0, 26).toString()).toBe('ingot image-servers marker');
    for (let i = 0; i < 3; i++) {
      const again = await deployFrom(`http://127.0.0.1:${port}/small.raw`, `python-small-${i}`, smallDigest);
      expect(again.stderr).not.toContain('assert(!this.paused)');
      expect(again.poll).toMatchObject({ state: 'done', rootDevice: '/dev/vda' });
    }
  });

  it.skipIf(!hasBusybox)('busybox httpd', async () => {
    const port = await freePort();
    servers.push(spawn('busybox', ['httpd', '-f', '-p', `127.0.0.1:${port}`, '-h', join(dir, 'www')], { stdio: 'ignore' }));
    await waitForPort(port);
    const { poll, stderr, disk } = await deployFrom(`http://127.0.0.1:${port}/image.raw`, 'busybox');
    expect(stderr).not.toContain('assert(!this.paused)');
    expect(poll).toMatchObject({ state: 'done', rootDevice: '/dev/vda' });
    expect(readAt(disk, 0, 26).toString()).toBe('ingot image-servers marker');
    for (let i = 0; i < 3; i++) {
      const again = await deployFrom(`http://127.0.0.1:${port}/small.raw`, `busybox-small-${i}`, smallDigest);
      expect(again.stderr).not.toContain('assert(!this.paused)');
      expect(again.poll).toMatchObject({ state: 'done', rootDevice: '/dev/vda' });
    }
  });
});
