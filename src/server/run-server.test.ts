import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { generateToken, hashToken } from './auth/tokens.js';
import { parseListenAddress, runServer, type RunningServer } from './run-server.js';

const dirs: string[] = [];
const servers: RunningServer[] = [];

function tempDataDir(): string {
  const parent = mkdtempSync(join(tmpdir(), 'ingot-run-'));
  dirs.push(parent);
  return join(parent, 'data');
}

async function start(dataDir: string, extra: Partial<Parameters<typeof runServer>[0]> = {}): Promise<RunningServer> {
  const server = await runServer({
    dataDir,
    listen: '127.0.0.1:0',
    agentListen: '127.0.0.1:0',
    log: 'silent',
    fake: { delays: { powerMs: [0, 0], inspectMs: [0, 0], deployMs: [0, 0], cleanMs: [0, 0] } },
    conductor: { pollMs: 100 },
    ...extra,
  });
  servers.push(server);
  return server;
}

afterEach(async () => {
  while (servers.length > 0) await servers.pop()!.close();
  while (dirs.length > 0) rmSync(dirs.pop()!, { recursive: true, force: true });
});

describe('runServer', () => {
  it('on first start creates a 0700 data dir, a key file and one admin token it returns once, stored only as a hash', async () => {
    const dataDir = tempDataDir();
    // 1. first start: a token is returned and works
    const first = await start(dataDir);
    expect(statSync(dataDir).mode & 0o777).toBe(0o700);
    expect(statSync(join(dataDir, 'secrets.key')).mode & 0o777).toBe(0o600);
    expect(first.bootstrapToken).toMatch(/^ingot_[A-Za-z0-9_-]{43}$/);
    const token = first.bootstrapToken!;
    const res = await fetch(`${first.apiUrl}/api/v1/hosts`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    const tokens = await first.store.listTokens();
    expect(tokens).toHaveLength(1);
    expect(tokens[0]).toMatchObject({ hash: hashToken(token), roles: ['platform-admin'] });
    await first.close();
    servers.pop();

    // 2. the token text is nowhere in the data directory (database, WAL, key file)
    for (const file of readdirSync(dataDir)) {
      if (!statSync(join(dataDir, file)).isFile()) continue;
      expect(readFileSync(join(dataDir, file)).toString('latin1'), file).not.toContain(token);
    }

    // 3. second start: no new token, the old one still works
    const second = await start(dataDir);
    expect(second.bootstrapToken).toBeUndefined();
    expect(await second.store.listTokens()).toHaveLength(1);
    expect((await fetch(`${second.apiUrl}/api/v1/hosts`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
  });

  it('uses a supplied bootstrap token without echoing it, and refuses a malformed one', async () => {
    const supplied = generateToken();
    const server = await start(tempDataDir(), { bootstrapToken: supplied });
    expect(server.bootstrapToken).toBeUndefined();
    expect((await fetch(`${server.apiUrl}/api/v1/secrets`, { headers: { authorization: `Bearer ${supplied}` } })).status).toBe(200);
    await expect(start(tempDataDir(), { bootstrapToken: 'hunter2' })).rejects.toThrow(/bootstrap token/);
  });

  it('role conductor opens no listeners; role api serves both APIs', async () => {
    const dataDir = tempDataDir();
    const api = await start(dataDir, { role: 'api' });
    expect(api.apiUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect((await fetch(`${api.agentUrl}/healthz`)).status).toBe(200);
    expect((await fetch(`${api.apiUrl}/readyz`)).status).toBe(200);
    const conductorOnly = await start(tempDataDir(), { role: 'conductor' });
    expect(conductorOnly.apiUrl).toBe('');
    expect(conductorOnly.agentUrl).toBe('');
  });

  it('parses listen addresses', () => {
    expect(parseListenAddress('0.0.0.0:7385', 'listen')).toEqual({ host: '0.0.0.0', port: 7385 });
    expect(parseListenAddress('[::1]:0', 'listen')).toEqual({ host: '::1', port: 0 });
    expect(() => parseListenAddress('localhost', 'listen')).toThrow(/HOST:PORT/);
    expect(() => parseListenAddress('1.2.3.4:70000', 'listen')).toThrow(/HOST:PORT/);
  });

  it('wires the conductor: a fake host enrolled through the API leaves registering', async () => {
    const server = await start(tempDataDir());
    const auth = { authorization: `Bearer ${server.bootstrapToken}`, 'content-type': 'application/json' };
    const secret = await fetch(`${server.apiUrl}/api/v1/secrets`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({ metadata: { name: 'creds' }, stringData: { username: 'admin', password: 'pw' } }),
    });
    expect(secret.status).toBe(201);
    const host = await fetch(`${server.apiUrl}/api/v1/hosts`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({ metadata: { name: 'n1' }, spec: { bmc: { address: 'fake://n1', credentialsName: 'creds' } } }),
    });
    expect(host.status).toBe(201);
    let state = 'registering';
    for (let i = 0; i < 300 && state === 'registering'; i++) {
      await new Promise((r) => setTimeout(r, 50));
      const got = (await (await fetch(`${server.apiUrl}/api/v1/hosts/n1`, { headers: auth })).json()) as { status: { provisioning: { state: string } } };
      state = got.status.provisioning.state;
    }
    expect(state).not.toBe('registering');
    expect(state).not.toBe('error');
  });
});
