// `ingot secrets rekey` end to end: a real server (HTTP API, SQLite, conductor, fake hosts), the
// real CLI binary, the key files on disk, and a restart after the rekey.
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runServer, type RunningServer } from '../src/server/run-server.js';
import { previousKeysDir, SecretBox } from '../src/store/secret-box.js';
import { readSecretValues } from '../src/store/secret-reader.js';
import { ensureBuilt, runIngot } from './support/ingot-process.js';

const N = 25;
let work: string;
let dataDir: string;
let server: RunningServer | undefined;

async function start(): Promise<RunningServer> {
  server = await runServer({
    dataDir,
    listen: '127.0.0.1:0',
    agentListen: '127.0.0.1:0',
    log: 'silent',
    bootstrapToken: TOKEN,
    fake: { delays: { powerMs: [0, 0], inspectMs: [0, 0], deployMs: [0, 0], cleanMs: [0, 0] } },
    conductor: { pollMs: 50, handler: { powerPollMs: 10, agentPollMs: 10, idleRecheckMs: 100 } },
  });
  return server;
}

const TOKEN = `ingot_${'A'.repeat(43)}`;

async function api(method: string, path: string, body?: unknown, type = 'application/json', token = TOKEN) {
  const res = await fetch(`${server!.apiUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': type } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, body: (await res.json().catch(() => undefined)) as Record<string, any> };
}

async function waitFor(what: string, probe: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const hostState = async (name: string) => (await api('GET', `/api/v1/hosts/${name}`)).body?.status?.provisioning?.state as string | undefined;

beforeAll(() => {
  ensureBuilt();
  work = mkdtempSync(join(tmpdir(), 'ingot-rekey-e2e-'));
  dataDir = join(work, 'data');
}, 240_000);

afterAll(async () => {
  await server?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('ingot secrets rekey', () => {
  it('rotates the key, re-seals every value, keeps hosts working, survives a restart, retires the old key only when asked', async () => {
    await start();
    // 1. N secrets, one of them used by a host.
    for (let i = 0; i < N; i++) {
      const r = await api('PUT', `/api/v1/secrets/rk-${i}`, { apiVersion: 'ingot.dev/v1', kind: 'Secret', metadata: { name: `rk-${i}` }, stringData: { username: `u${i}`, password: `p${i}-secret` } });
      expect(r.status).toBe(201);
    }
    const created = await api('POST', '/api/v1/hosts', { apiVersion: 'ingot.dev/v1', kind: 'Host', metadata: { name: 'rk-host' }, spec: { bmc: { address: 'fake://rk-host', credentialsName: 'rk-0' }, online: false } });
    expect(created.status).toBe(201);
    await waitFor('rk-host available', async () => (await hostState('rk-host')) === 'available');
    const keyFile = join(dataDir, 'secrets.key');
    const oldKeyId = (await SecretBox.fromKeyFile(keyFile)).keyId;

    // 2. A reader is refused (403), the CLI as admin rekeys.
    const reader = await api('POST', '/api/v1/tokens', { roles: ['platform-reader'], description: 'rk', expiresInSeconds: 3600 });
    expect(reader.status).toBe(201);
    const denied = await api('POST', '/api/v1/secrets/-/rekey', {}, 'application/json', reader.body.token);
    expect(denied.status).toBe(403);
    const env = { ...process.env, HOME: work, INGOT_CONFIG: join(work, 'config.json'), INGOT_SERVER: server!.apiUrl, INGOT_TOKEN: TOKEN, NO_COLOR: '1' };
    const cli = await runIngot(['secrets', 'rekey', '--batch-size', '4'], { cwd: work, env });
    expect(cli.stderr).toBe('');
    expect(cli.code).toBe(0);
    expect(cli.stdout).toContain(`(was ${oldKeyId})`);
    expect(cli.stdout).toContain(`secret values: ${N} seen, ${N} re-sealed, 0 still under an older key`);
    expect(cli.stdout).toContain(`previous keys kept: ${oldKeyId}`);
    const newKeyId = /new key ([0-9a-f]{16}) is current/.exec(cli.stdout)?.[1];
    expect(newKeyId).toBeDefined();
    expect(newKeyId).not.toBe(oldKeyId);

    // 3. Every row is under the new key; the host keeps working with its re-sealed credentials.
    for (const row of await server!.store.listSecretCiphertexts()) expect(row.keyId).toBe(newKeyId);
    expect((await api('PATCH', '/api/v1/hosts/rk-host', { spec: { online: true } }, 'application/merge-patch+json')).status).toBe(200);
    await waitFor('rk-host powered on', async () => (await api('GET', '/api/v1/hosts/rk-host')).body.status.poweredOn === true);
    // The rekey was audited, with no value in it.
    const audited = await server!.store.listAuditEvents({ action: 'secret:rekey', limit: 10 });
    expect(audited.map((e) => e.outcome)).toContain('succeeded');
    expect(JSON.stringify(await server!.store.listAuditEvents({ limit: 1000 }))).not.toContain('-secret');

    // 4. Restart: everything opens with the key files on disk; a new host registers with a re-sealed secret.
    await server!.close();
    await start();
    const box = await SecretBox.fromKeyFile(keyFile);
    expect(box.keyId).toBe(newKeyId);
    for (let i = 0; i < N; i++) expect((await readSecretValues(server!.store, box, { name: `rk-${i}` }))?.values).toEqual({ username: `u${i}`, password: `p${i}-secret` });
    expect((await api('POST', '/api/v1/hosts', { apiVersion: 'ingot.dev/v1', kind: 'Host', metadata: { name: 'rk-host-2' }, spec: { bmc: { address: 'fake://rk-host-2', credentialsName: `rk-${N - 1}` }, online: false } })).status).toBe(201);
    await waitFor('rk-host-2 available', async () => (await hostState('rk-host-2')) === 'available');

    // 5. The old key is removed only when asked.
    expect(existsSync(join(previousKeysDir(keyFile), `${oldKeyId}.key`))).toBe(true);
    const retire = await runIngot(['secrets', 'rekey', '--retire-only', '-o', 'json'], { cwd: work, env: { ...env, INGOT_SERVER: server!.apiUrl } });
    expect(retire.code).toBe(0);
    expect(JSON.parse(retire.stdout)).toMatchObject({ keyId: newKeyId, remaining: 0, retiredKeyIds: [oldKeyId], previousKeyIds: [] });
    expect(readdirSync(previousKeysDir(keyFile))).toEqual([]);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    await server!.close();
    await start();
    for (let i = 0; i < N; i++) expect((await readSecretValues(server!.store, box, { name: `rk-${i}` }))?.values.username).toBe(`u${i}`);
  }, 120_000);
});
