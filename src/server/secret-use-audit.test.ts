// Every secret the conductor uses is audited with the host it was used for, and no
// audit row carries a secret value. Real server: HTTP API, SQLite, the conductor, fake hosts.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runServer, type RunningServer } from './run-server.js';

const PASSWORD = 'pw-Zq8vN3-never-in-audit';
const USER_DATA = '#cloud-config\nhostname: ud-Kp4w9-never-in-audit\n';
const dirs: string[] = [];
const servers: RunningServer[] = [];

afterEach(async () => {
  while (servers.length > 0) await servers.pop()!.close();
  while (dirs.length > 0) rmSync(dirs.pop()!, { recursive: true, force: true });
});

describe('secret use audit', () => {
  it('registering and provisioning a host audit secret:use naming the host and purpose, never the value', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ingot-secret-use-'));
    dirs.push(dir);
    const server = await runServer({
      dataDir: join(dir, 'data'),
      listen: '127.0.0.1:0',
      agentListen: '127.0.0.1:0',
      log: 'silent',
      fake: { delays: { powerMs: [0, 0], inspectMs: [0, 0], deployMs: [0, 0], cleanMs: [0, 0] } },
      conductor: { pollMs: 50, handler: { powerPollMs: 10, agentPollMs: 10 } },
    });
    servers.push(server);
    const token = server.bootstrapToken!;
    const api = async (method: string, path: string, body?: unknown, type = 'application/json') => {
      const res = await fetch(`${server.apiUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': type } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      return { status: res.status, body: (await res.json().catch(() => undefined)) as Record<string, any> };
    };
    const secret = async (name: string, stringData: Record<string, string>) =>
      expect((await api('PUT', `/api/v1/secrets/${name}`, { apiVersion: 'ingot.dev/v1', kind: 'Secret', metadata: { name }, stringData })).status).toBeLessThan(300);
    await secret('node-bmc', { username: 'admin', password: PASSWORD });
    await secret('node-ud', { userData: USER_DATA });

    // 1. Registering the host uses its BMC credentials.
    const created = await api('POST', '/api/v1/hosts', {
      apiVersion: 'ingot.dev/v1',
      kind: 'Host',
      metadata: { name: 'audited-1' },
      spec: { bmc: { address: 'fake://audited-1', credentialsName: 'node-bmc' }, online: false },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const uid = created.body.metadata.uid as string;
    const uses = async () => (await server.store.listAuditEvents({ action: 'secret:use', limit: 1000 })).filter((e) => e.reason.includes('audited-1'));
    await waitFor('a bmc-credentials use', async () => (await uses()).some((e) => e.reason.includes('bmc-credentials')));
    const first = (await uses()).find((e) => e.reason.includes('bmc-credentials'))!;
    expect(first).toMatchObject({ actor: 'system:conductor', action: 'secret:use', outcome: 'succeeded', target: { kind: 'Secret', project: '', name: 'node-bmc' } });
    expect(first.reason).toContain(uid);
    expect(first.reason).toContain('version 1');

    // 2. Provisioning with user data uses the user-data secret for this host.
    await waitFor('available', async () => (await api('GET', '/api/v1/hosts/audited-1')).body.status.provisioning.state === 'available');
    const image = { url: 'http://images.test/os.raw', checksum: 'a'.repeat(64), checksumType: 'sha256', format: 'raw' };
    const patched = await api('PATCH', '/api/v1/hosts/audited-1', { spec: { image, userDataName: 'node-ud' } }, 'application/merge-patch+json');
    expect(patched.status, JSON.stringify(patched.body)).toBe(200);
    await waitFor('a user-data use', async () => (await uses()).some((e) => e.reason.includes('user-data') && e.target.name === 'node-ud'));

    // 3. Repeated reads of the same version for the same host and step are not repeated rows.
    const registering = (await uses()).filter((e) => e.reason.includes('bmc-credentials') && e.reason.includes('while registering'));
    expect(registering).toHaveLength(1);

    // 4. No audit row (database or JSONL copy) holds a secret value.
    const all = JSON.stringify(await server.store.listAuditEvents({ limit: 1000 }));
    expect(all).not.toContain(PASSWORD);
    expect(all).not.toContain('ud-Kp4w9-never-in-audit');
    await server.audit.flush(5_000);
    const jsonl = readFileSync(join(dir, 'data', 'audit.jsonl'), 'utf8');
    expect(jsonl).toContain('secret:use');
    expect(jsonl).not.toContain(PASSWORD);
    expect(jsonl).not.toContain('ud-Kp4w9-never-in-audit');
  });
});

async function waitFor(what: string, probe: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}
