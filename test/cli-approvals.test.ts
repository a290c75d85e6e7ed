// The two-person rule through the real `ingot` binary against a real `ingot server` whose
// config holds every destructive change (approvals.destructiveThreshold: 0): a delete is held,
// the requester cannot approve it, a second admin can, and the host is then deleted.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateToken } from '../src/model/api-token.js';
import { hashToken } from '../src/server/auth/tokens.js';
import { openStore } from '../src/store/open-store.js';
import { ensureBuilt, FAST_SERVER_CONFIG, runIngot, startIngotServer, type CliResult, type IngotServerProcess } from './support/ingot-process.js';

describe('ingot approval against ingot server', () => {
  let work: string;
  let baseEnv: NodeJS.ProcessEnv;
  let server: IngotServerProcess;
  let admin: NodeJS.ProcessEnv;
  const ingot = (args: string[], env: NodeJS.ProcessEnv): Promise<CliResult> => runIngot(args, { cwd: work, env: { ...baseEnv, ...env } });

  async function api(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
    const res = await fetch(`${server.apiUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${admin.INGOT_TOKEN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, json: text ? JSON.parse(text) : undefined };
  }

  beforeAll(async () => {
    ensureBuilt();
    work = mkdtempSync(join(tmpdir(), 'ingot-cli-approvals-'));
    baseEnv = { ...process.env, HOME: work, INGOT_CONFIG: join(work, 'config.json'), INGOT_SERVER: '', INGOT_TOKEN: '', NO_COLOR: '1' };
    const config = `${FAST_SERVER_CONFIG}\napprovals:\n  destructiveThreshold: 0\n  ttlSeconds: 600\n`;
    server = await startIngotServer({ dataDir: join(work, 'data'), cwd: work, env: baseEnv, config });
    if (!server.token) throw new Error(`no bootstrap token printed:\n${server.output()}`);
    admin = { INGOT_SERVER: server.apiUrl, INGOT_TOKEN: server.token };
  }, 240_000);

  afterAll(async () => {
    await server?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('holds a host delete, refuses self-approval, and a second admin approves it', async () => {
    expect((await api('POST', '/api/v1/secrets', { apiVersion: 'ingot.dev/v1', kind: 'Secret', metadata: { name: 'bmc' }, stringData: { username: 'u', password: 'p' } })).status).toBe(201);
    const host = { apiVersion: 'ingot.dev/v1', kind: 'Host', metadata: { name: 'n1' }, spec: { bmc: { address: 'fake://n1', credentialsName: 'bmc' }, online: false } };
    expect((await api('POST', '/api/v1/hosts', host)).status).toBe(201);

    const held = await ingot(['host', 'delete', 'n1'], admin);
    expect(held.code, held.stderr).toBe(0);
    const id = /deletion held for approval ([0-9a-f-]{36})/.exec(held.stdout)?.[1];
    expect(id, held.stdout).toBeDefined();
    expect((await api('GET', '/api/v1/hosts/n1')).json.metadata.deletionTimestamp).toBeUndefined();

    const list = await ingot(['approval', 'list', '--state', 'pending'], admin);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(new RegExp(`${id}\\s+pending\\s+host:delete\\s+host/n1`));

    const self = await ingot(['approval', 'approve', id!], admin);
    expect(self.code).toBe(1);
    expect(self.stderr).toContain('you cannot approve your own request');

    // A token the first admin mints acts for the first admin, so it cannot approve either.
    const created = await ingot(['token', 'create', '--role', 'platform-admin', '--description', 'same person', '--expires-in', '1d'], admin);
    expect(created.code, created.stderr).toBe(0);
    const samePerson = { INGOT_SERVER: server.apiUrl, INGOT_TOKEN: /^(ingot_\S+)$/m.exec(created.stdout)![1]! };
    const refused = await ingot(['approval', 'approve', id!], samePerson);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('another token of the same person');

    // A second person: without OIDC, the operator with access to the database issues it (the
    // API cannot: an admin minting "another person" would defeat the rule).
    const secondToken = generateToken();
    const store = await openStore({ database: join(work, 'data', 'ingot.db') });
    try {
      await store.createToken({
        id: randomUUID(),
        hash: hashToken(secondToken),
        description: 'second admin',
        roles: ['platform-admin'],
        project: '',
        type: 'api',
        hostUid: '',
        expiresAt: Date.now() + 86_400_000,
        createdAt: new Date().toISOString(),
        principal: 'second-admin',
      });
    } finally {
      await store.close();
    }
    const second = { INGOT_SERVER: server.apiUrl, INGOT_TOKEN: secondToken };
    const approved = await ingot(['approval', 'approve', id!, '--reason', 'decommission'], second);
    expect(approved.code, approved.stderr).toBe(0);
    expect(approved.stdout).toContain(`approval/${id} executed: host:delete on host/n1`);
    const after = await api('GET', '/api/v1/hosts/n1');
    // The conductor may already have removed it; either way deletion was requested.
    expect(after.status === 404 || typeof after.json.metadata.deletionTimestamp === 'string').toBe(true);

    const json = await ingot(['approval', 'list', '-o', 'json'], admin);
    expect(JSON.parse(json.stdout).items[0]).toMatchObject({ id, state: 'executed', reason: 'decommission' });
  }, 120_000);
});
