// The agent API over real HTTP: a SQLite store in a temp dir, the agent listener on
// 127.0.0.1:0 and the real AgentQueue minting tokens and queueing commands.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgentQueue, type AgentQueue } from '../conductor/agent-queue.js';
import { AgentUnavailable } from '../conductor/agent-port.js';
import { readBootConfigFromIso } from '../images/boot-config-iso.js';
import { buildIso9660 } from '../images/iso9660.js';
import { CONFIG_SLOT_BYTES } from '../boot/agent-boot-iso.js';
import type { StoredRamdisk } from '../boot/ramdisk-store.js';
import type { Host } from '../model/host.js';
import { openStore } from '../store/open-store.js';
import { SecretBox } from '../store/secret-box.js';
import type { Store } from '../store/store.js';
import { buildAgentServer } from './agent-server.js';
import { createAuditWriter } from './audit/audit-writer.js';
import { createPolicy } from './auth/policy.js';
import { createLogger } from './logger.js';

let dir: string;
let store: Store;
let app: FastifyInstance;
let url: string;
let queue: AgentQueue;
const box = new SecretBox(randomBytes(32));
/** The ramdisk the listener boots hosts with; none unless a test sets one. */
let ramdisk: StoredRamdisk | undefined;

function asHost(row: { name: string; uid: string; spec: Record<string, unknown> }): Host {
  return { apiVersion: 'ingot.dev/v1', kind: 'Host', metadata: { name: row.name, uid: row.uid }, spec: row.spec, status: {} } as unknown as Host;
}

async function call(method: string, path: string, token: string | null, body?: unknown) {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const buf = Buffer.from(await res.arrayBuffer());
  let json: any;
  try {
    json = JSON.parse(buf.toString('utf8'));
  } catch {
    json = undefined;
  }
  return { status: res.status, json, buf };
}

async function bootedHost(name: string, mac = '52:54:00:00:00:01') {
  const row = await store.create({ kind: 'Host', name, spec: { bootMACAddress: mac, bmc: { address: 'redfish://10.0.0.1/redfish/v1/Systems/1', credentialsName: 'c' } }, status: {} });
  const host = asHost(row);
  const boot = await queue.prepareBoot(host);
  const lookup = await call('POST', '/agent/v1/lookup', boot.token, { hostUid: host.metadata.uid, bootId: boot.bootId, macs: [mac] });
  expect(lookup.status).toBe(200);
  return { host, boot };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ingot-agent-api-'));
  store = await openStore({ database: join(dir, 'ingot.db') });
  const audit = createAuditWriter({ store, sinks: [], alertRules: [], log: () => undefined });
  app = buildAgentServer({ store, policy: createPolicy(), log: createLogger({ level: 'silent' }), secretBox: box, commandPollMs: 20, audit, ramdisk: () => ramdisk });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address() as { port: number };
  url = `http://127.0.0.1:${address.port}`;
  queue = createAgentQueue({ store, box, agentApiUrl: url, caPem: 'CA-PEM' });
});
afterAll(async () => {
  await app?.close();
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('agent API', () => {
  it('serves the boot medium under its unguessable URL until the session ends', async () => {
    const row = await store.create({ kind: 'Host', name: 'media', spec: {}, status: {} });
    const host = asHost(row);
    const boot = await queue.prepareBoot(host);
    expect(boot.mediaUrl.startsWith(`${url}/agent/v1/boot/`)).toBe(true);
    const res = await fetch(boot.mediaUrl);
    expect(res.status).toBe(200);
    const config = readBootConfigFromIso(Buffer.from(await res.arrayBuffer()));
    expect(config).toEqual({ apiUrl: url, caPem: 'CA-PEM', token: boot.token, hostUid: row.uid, bootId: boot.bootId });
    // The token is stored only as a hash.
    const tokens = await store.listTokens();
    expect(JSON.stringify(tokens)).not.toContain(boot.token);
    expect(tokens.find((t) => t.hostUid === row.uid)).toMatchObject({ type: 'agent', roles: ['agent'] });
    // A new boot kills the old medium and token.
    const second = await queue.prepareBoot(host);
    expect((await fetch(boot.mediaUrl)).status).toBe(404);
    expect((await call('POST', '/agent/v1/heartbeat', boot.token, { bootId: boot.bootId })).status).toBe(401);
    await queue.finish(host);
    expect((await fetch(second.mediaUrl)).status).toBe(404);
  });

  it('with a built ramdisk, streams the ramdisk\'s boot ISO with the host\'s configuration in its slot; the template on disk keeps no token', async () => {
    // A stand-in template: an ISO whose configuration file is the empty slot (src/boot builds
    // the real one with xorriso; test/agent-ramdisk-vm.test.ts boots it).
    const marker = '{"slot":"empty"}';
    const slot = Buffer.alloc(CONFIG_SLOT_BYTES, 0x20);
    slot.write(marker);
    const templatePath = join(dir, 'template.iso');
    writeFileSync(templatePath, buildIso9660([{ path: 'ingot/boot_config.json', data: slot }, { path: 'boot/marker.txt', data: Buffer.from('BOOTABLE-TEMPLATE') }], { volumeId: 'INGOT_AGENT' }));
    const template = readFileSync(templatePath);
    ramdisk = { bootIso: { path: templatePath, configOffset: template.indexOf(marker), configLength: CONFIG_SLOT_BYTES, size: template.length } } as StoredRamdisk;
    try {
      const row = await store.create({ kind: 'Host', name: 'media-bootable', spec: {}, status: {} });
      const boot = await queue.prepareBoot(asHost(row));
      const res = await fetch(boot.mediaUrl);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-length')).toBe(String(template.length));
      const iso = Buffer.from(await res.arrayBuffer());
      expect(iso.length).toBe(template.length);
      expect(iso.includes('BOOTABLE-TEMPLATE')).toBe(true);
      expect(readBootConfigFromIso(iso)).toEqual({ apiUrl: url, caPem: 'CA-PEM', token: boot.token, hostUid: row.uid, bootId: boot.bootId });
      expect(readFileSync(templatePath).equals(template)).toBe(true);
      await queue.finish(asHost(row));
    } finally {
      ramdisk = undefined;
    }
  });

  it('start waits for the agent to look up, then queues once per operation; the long poll hands out only own commands', async () => {
    const rowA = await store.create({ kind: 'Host', name: 'host-a0', spec: {}, status: {} });
    await expect(queue.start(asHost(rowA), 'op-x', { kind: 'inspect' })).rejects.toBeInstanceOf(AgentUnavailable);
    const a = await bootedHost('host-a');
    const b = await bootedHost('host-b', '52:54:00:00:00:02');
    await queue.start(b.host, 'op-b', { kind: 'clean', clean: { mode: 'metadata' } });
    await queue.start(a.host, 'op-a', { kind: 'deploy', deploy: { image: { url: 'http://img/x.raw', checksum: 'a'.repeat(64) }, configDrive: { metaData: { uuid: 'u' }, userData: 'SECRET-USER-DATA' } } });
    await queue.start(a.host, 'op-a', { kind: 'inspect' }); // idempotent: ignored
    // User data is never stored in clear.
    const stored = await store.findAgentCommand(a.host.metadata.uid, 'op-a');
    expect(JSON.stringify(stored)).not.toContain('SECRET-USER-DATA');

    const polled = await call('GET', '/agent/v1/commands?wait=0', a.boot.token);
    expect(polled.status).toBe(200);
    expect(polled.json.command).toMatchObject({ hostUid: a.host.metadata.uid, operationId: 'op-a', kind: 'deploy' });
    expect(polled.json.command.deploy.configDrive.userData).toBe('SECRET-USER-DATA');
    expect(polled.json.command.deploy.policy).toEqual({ allowMd5: false, requireHttps: false });
    expect(await queue.poll(a.host, 'op-a')).toMatchObject({ state: 'running' });

    // A's token cannot report on B's command.
    const bCommand = await store.findAgentCommand(b.host.metadata.uid, 'op-b');
    const cross = await call('POST', '/agent/v1/results', a.boot.token, { commandId: bCommand!.id, state: 'done' });
    expect(cross.status).toBe(404);
    expect((await store.getAgentCommand(bCommand!.id))?.state).toBe('queued');
    // ... nor look up as B.
    expect((await call('POST', '/agent/v1/lookup', a.boot.token, { hostUid: b.host.metadata.uid, bootId: a.boot.bootId, macs: [] })).status).toBe(401);

    // A's long poll after its only command is claimed times out empty (B's command stays B's).
    await call('POST', '/agent/v1/results', a.boot.token, { commandId: polled.json.command.id, state: 'running', percent: 40, message: 'writing' });
    const empty = await call('GET', '/agent/v1/commands?wait=1', a.boot.token);
    expect(empty.json).toEqual({ command: null });
    expect(await queue.poll(a.host, 'op-a')).toEqual({ state: 'running', percent: 40, message: 'writing' });

    expect((await call('POST', '/agent/v1/results', a.boot.token, { commandId: polled.json.command.id, state: 'done', rootDevice: '/dev/sda' })).status).toBe(200);
    expect(await queue.poll(a.host, 'op-a')).toEqual({ state: 'done', rootDevice: '/dev/sda' });
    expect(await queue.poll(a.host, 'never')).toMatchObject({ state: 'failed' });

    // After finish() the token is dead: replaying it is refused everywhere.
    const auditBefore = (await store.getAuditHead()).seq;
    await queue.finish(a.host);
    for (const [method, path, body] of [
      ['GET', '/agent/v1/commands?wait=0', undefined],
      ['POST', '/agent/v1/heartbeat', { bootId: a.boot.bootId }],
      ['POST', '/agent/v1/results', { commandId: polled.json.command.id, state: 'failed' }],
    ] as const) {
      const res = await call(method, path, a.boot.token, body);
      expect(res.status, path).toBe(401);
      expect(res.json.message).toContain('revoked');
    }
    expect(await queue.poll(b.host, 'op-b')).toMatchObject({ state: 'running' });

    // The refusals above are in the audit trail: the cross-host lookup (as the agent of host A)
    // and the replay of the revoked token (an authentication failure; the identical replays
    // after the first are counted into one event when their minute ends, refusal-coalescer.ts).
    const denied = await store.listAuditEvents({ outcome: 'denied', limit: 100 });
    const crossHost = denied.find((e) => e.action === 'agent:lookup' && e.target.name === a.host.metadata.uid);
    expect(crossHost?.reason).toContain('agent lookup names another host than its token');
    expect(denied.filter((e) => e.seq > auditBefore && e.action === 'auth:failed' && e.reason?.includes('revoked'))).toHaveLength(1);
    expect(JSON.stringify(denied)).not.toContain(a.boot.token);
  });

  it('refuses a lookup from a machine without the boot MAC, expired tokens and a long poll across finish()', async () => {
    const row = await store.create({ kind: 'Host', name: 'macs', spec: { bootMACAddress: '52:54:00:00:00:09' }, status: {} });
    const host = asHost(row);
    const boot = await queue.prepareBoot(host);
    const wrong = await call('POST', '/agent/v1/lookup', boot.token, { hostUid: row.uid, bootId: boot.bootId, macs: ['52:54:00:00:00:10'] });
    expect(wrong.status).toBe(403);
    expect(wrong.json.message).toContain('bootMACAddress');
    expect((await call('POST', '/agent/v1/lookup', boot.token, { hostUid: row.uid, bootId: 'other-boot', macs: ['52:54:00:00:00:09'] })).status).toBe(401);
    const bad = await call('POST', '/agent/v1/lookup', boot.token, { hostUid: row.uid, bootId: boot.bootId, macs: ['nope'] });
    expect(bad.status).toBe(400);

    const longPoll = call('GET', '/agent/v1/commands?wait=30', boot.token);
    await new Promise((r) => setTimeout(r, 100));
    await queue.finish(host);
    expect((await longPoll).status).toBe(401);

    const shortLived = createAgentQueue({ store, box, agentApiUrl: url, tokenTtlMs: -1 });
    const expired = await shortLived.prepareBoot(host);
    const res = await call('POST', '/agent/v1/heartbeat', expired.token, { bootId: expired.bootId });
    expect(res.status).toBe(401);
    expect(res.json.message).toContain('expired');
    expect((await fetch(expired.mediaUrl)).status).toBe(404);
  });
});
