// The agent against an unreliable or hostile agent API (issue 4):
// - a real server (SQLite in a temp dir, fixed ports) that is stopped while an agent is
//   polling and started again on the same data and ports: the agent backs off, resumes, and
//   runs the command queued through the new server;
// - a finished session's token is refused by the agent API, and an agent holding it stops with
//   a clear log line;
// - a server (a fake speaking the agent protocol on 127.0.0.1) handing the agent a command
//   for another host: the agent does not act on it.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAgent, type AgentExit } from '../src/agent/agent.js';
import { createFileMachine } from '../src/agent/file-machine.js';
import { AgentUnavailable, type AgentPoll } from '../src/conductor/agent-port.js';
import { createAgentQueue, type AgentQueue } from '../src/conductor/agent-queue.js';
import { readBootConfigFromIso } from '../src/images/boot-config-iso.js';
import type { BootConfig } from '../src/model/agent-protocol.js';
import type { Host } from '../src/model/host.js';
import { runServer, type RunningServer } from '../src/server/run-server.js';
import { SecretBox } from '../src/store/secret-box.js';

const MIB = 1024 * 1024;
const DISK_BYTES = 4 * MIB;

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ingot-agent-resilience-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

async function freePort(): Promise<number> {
  const srv = createNetServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as { port: number };
  await new Promise((r) => srv.close(r));
  return port;
}

/** Resolves once `predicate` holds (checked every 20 ms); rejects after `timeoutMs` so a hung agent fails the test. */
function until(predicate: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const tick = () => {
      if (predicate()) return resolve();
      if (Date.now() - started > timeoutMs) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 20);
    };
    tick();
  });
}

function diskFile(name: string, fill?: number): string {
  const path = join(dir, name);
  if (fill === undefined) {
    writeFileSync(path, Buffer.alloc(0));
    execFileSync('truncate', ['-s', String(DISK_BYTES), path]);
  } else {
    writeFileSync(path, Buffer.alloc(DISK_BYTES, fill));
  }
  return path;
}

function machineOn(file: string) {
  return createFileMachine({
    hardware: { cpu: { arch: 'x86_64', count: 2 }, ramMebibytes: 1024, nics: [{ name: 'eth0', mac: '52:54:00:12:34:56' }] },
    disks: [{ name: 'vda', file, serial: 'S-RES' }],
    scratchDir: dir,
  });
}

interface Logged {
  level: 'info' | 'warn';
  message: string;
}

function startAgent(bootConfig: BootConfig, file: string) {
  const logs: Logged[] = [];
  const exit: Promise<AgentExit> = runAgent({
    bootConfig,
    machine: machineOn(file),
    log: { info: (message) => logs.push({ level: 'info', message }), warn: (message) => logs.push({ level: 'warn', message }) },
    backoff: { initialMs: 20, maxMs: 200 },
    commandWaitSeconds: 1,
    minRootDiskBytes: 0,
  });
  return { logs, exit };
}

async function startOnce(queue: AgentQueue, host: Host, operationId: string): Promise<void> {
  for (;;) {
    try {
      await queue.start(host, operationId, { kind: 'inspect' });
      return;
    } catch (err) {
      if (!(err instanceof AgentUnavailable)) throw err;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

async function pollToEnd(queue: AgentQueue, host: Host, operationId: string): Promise<AgentPoll> {
  for (;;) {
    const poll = await queue.poll(host, operationId);
    if (poll.state !== 'running') return poll;
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('agent against a restarting server', () => {
  let server: RunningServer | undefined;
  afterAll(async () => {
    await server?.close();
  });

  it('backs off while the server is down, then resumes and runs a command queued on the restarted server', async () => {
    const dataDir = join(dir, 'restart-data');
    const [apiPort, agentPort] = [await freePort(), await freePort()];
    const start = () =>
      runServer({ dataDir, listen: `127.0.0.1:${apiPort}`, agentListen: `127.0.0.1:${agentPort}`, role: 'api', fake: false, redfish: false, log: 'silent' });
    const queueOf = async (s: RunningServer) => createAgentQueue({ store: s.store, box: await SecretBox.fromKeyFile(join(dataDir, 'secrets.key')), agentApiUrl: s.agentUrl });

    server = await start();
    let queue = await queueOf(server);
    const row = await server.store.create({ kind: 'Host', name: 'restart-1', spec: { bootMACAddress: '52:54:00:12:34:56' }, status: {} });
    const host = { apiVersion: 'ingot.dev/v1', kind: 'Host', metadata: { name: row.name, uid: row.uid }, spec: row.spec, status: {} } as unknown as Host;
    const boot = await queue.prepareBoot(host);
    const bootConfig = readBootConfigFromIso(Buffer.from(await (await fetch(boot.mediaUrl)).arrayBuffer()));
    const agent = startAgent(bootConfig, diskFile('restart.img'));
    let exited = false;
    agent.exit.then(
      () => (exited = true),
      () => (exited = true),
    );

    // 1. The agent has looked up and runs a first command.
    await startOnce(queue, host, 'op-before');
    expect((await pollToEnd(queue, host, 'op-before')).state).toBe('done');

    // 2. The server goes away; the agent fails to poll (at least twice: it keeps trying) and does not exit.
    await server.close();
    server = undefined;
    const failedPolls = () => agent.logs.filter((l) => l.level === 'warn' && l.message.startsWith('polling for commands failed')).length;
    await until(() => failedPolls() >= 2 || exited, 'the agent to fail polling twice');
    expect(exited).toBe(false);

    // 3. Back on the same data and ports: a command queued now is picked up and completed.
    server = await start();
    queue = await queueOf(server);
    await startOnce(queue, host, 'op-after');
    const poll = await pollToEnd(queue, host, 'op-after');
    expect(poll.state).toBe('done');
    expect((poll as { inventory?: { storage?: Array<{ serialNumber?: string }> } }).inventory?.storage?.[0]?.serialNumber).toBe('S-RES');
    expect(exited).toBe(false);

    // 4. finish() revokes the token: the agent stops, saying why.
    await queue.finish(host);
    expect((await agent.exit).reason).toBe('session-ended');
    expect(agent.logs.some((l) => l.level === 'warn' && /refused this boot's token/.test(l.message))).toBe(true);
  });
});

describe('a finished session', () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await runServer({ dataDir: join(dir, 'finish-data'), listen: '127.0.0.1:0', agentListen: '127.0.0.1:0', role: 'api', fake: false, redfish: false, log: 'silent' });
  });
  afterAll(async () => {
    await server?.close();
  });

  it("has its token refused by the agent API, and an agent booted with it stops with a clear log line", async () => {
    const queue = createAgentQueue({ store: server.store, box: await SecretBox.fromKeyFile(join(dir, 'finish-data', 'secrets.key')), agentApiUrl: server.agentUrl });
    const row = await server.store.create({ kind: 'Host', name: 'finish-1', spec: { bootMACAddress: '52:54:00:12:34:56' }, status: {} });
    const host = { apiVersion: 'ingot.dev/v1', kind: 'Host', metadata: { name: row.name, uid: row.uid }, spec: row.spec, status: {} } as unknown as Host;
    const boot = await queue.prepareBoot(host);
    const bootConfig = readBootConfigFromIso(Buffer.from(await (await fetch(boot.mediaUrl)).arrayBuffer()));
    const call = (path: string, body?: unknown) =>
      fetch(`${server.agentUrl}${path}`, {
        method: body === undefined ? 'GET' : 'POST',
        headers: { authorization: `Bearer ${boot.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    // While the session is live the token works.
    expect((await call('/agent/v1/heartbeat', { bootId: boot.bootId })).status).toBeLessThan(300);

    await queue.finish(host);
    await queue.finish(host); // idempotent
    expect((await call('/agent/v1/commands?wait=0')).status).toBe(401);
    expect((await call('/agent/v1/heartbeat', { bootId: boot.bootId })).status).toBe(401);
    expect((await call('/agent/v1/lookup', { hostUid: bootConfig.hostUid, bootId: bootConfig.bootId, macs: [] })).status).toBe(401);
    // The boot medium is gone with the session.
    expect((await fetch(boot.mediaUrl)).status).toBe(404);

    const agent = startAgent(bootConfig, diskFile('finished.img'));
    expect(await agent.exit).toMatchObject({ reason: 'session-ended' });
    expect(agent.logs.some((l) => l.level === 'warn' && /refused this boot's token/.test(l.message))).toBe(true);
    expect(agent.logs.some((l) => l.message === 'looked up')).toBe(false);
  });
});

describe('a command meant for another host', () => {
  let fake: Server;
  afterAll(async () => {
    await new Promise((r) => fake?.close(r));
  });

  it('is never acted on: the disk is untouched, no result is sent for it, and it is logged', async () => {
    const OWN = 'host-own-0001';
    const OTHER = 'host-other-0002';
    const token = `ingotagent_${'A'.repeat(43)}`;
    const results: Array<{ commandId: string; state: string }> = [];
    let polls = 0;
    let ownDone = false;
    const body = async (req: IncomingMessage) => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      return chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : undefined;
    };
    // The agent protocol as a (compromised or buggy) server might speak it: first a full clean
    // for another host, then an inspect for this one, then the session ends (401).
    fake = createServer(async (req, res) => {
      const json = (status: number, value: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(value));
      if (req.headers.authorization !== `Bearer ${token}`) return json(401, { message: 'bad token' });
      const url = new URL(req.url ?? '/', 'http://x');
      const payload = await body(req);
      if (url.pathname === '/agent/v1/lookup') return json(200, { hostUid: OWN, hostName: 'own', heartbeatIntervalMs: 60_000, commandWaitSeconds: 1 });
      if (url.pathname === '/agent/v1/heartbeat') return json(200, {});
      if (url.pathname === '/agent/v1/results') {
        results.push(payload);
        if (payload.commandId === 'cmd-own' && payload.state === 'done') ownDone = true;
        return json(200, {});
      }
      if (url.pathname === '/agent/v1/commands') {
        polls++;
        if (polls === 1) return json(200, { command: { id: 'cmd-foreign', hostUid: OTHER, operationId: 'op-foreign', kind: 'clean', clean: { mode: 'full' } } });
        if (!ownDone) return json(200, { command: { id: 'cmd-own', hostUid: OWN, operationId: 'op-own', kind: 'inspect' } });
        return json(401, { message: 'the agent session of this token has ended' });
      }
      return json(404, { message: 'no such route' });
    });
    await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
    const apiUrl = `http://127.0.0.1:${(fake.address() as { port: number }).port}`;

    const file = diskFile('foreign.img', 0x5a);
    const agent = startAgent({ apiUrl, token, hostUid: OWN, bootId: 'boot-own-0001' }, file);
    expect((await agent.exit).reason).toBe('session-ended');

    // The foreign full clean would have zeroed the disk; every byte is still the old pattern.
    expect(readFileSync(file).every((b) => b === 0x5a)).toBe(true);
    expect(results.filter((r) => r.commandId === 'cmd-foreign')).toEqual([]);
    expect(agent.logs.some((l) => l.level === 'warn' && l.message === 'ignoring a command for another host')).toBe(true);
    // The agent did act on its own host's command (so it was listening, not just idle).
    expect(results.filter((r) => r.commandId === 'cmd-own').map((r) => r.state)).toContain('done');
  });
});
