// `ingot server --tls-dev` and `--tls-cert/--tls-key/--tls-client-ca` through the real binary,
// with the CLI as the client (INGOT_CA_FILE, INGOT_CLIENT_CERT/KEY).
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, runIngot, startIngotServer, type IngotServerProcess } from './support/ingot-process.js';
import { issueClientCert, issueServerCert, makeCa } from './support/test-pki.js';

describe('ingot server with TLS', () => {
  let work: string;
  let baseEnv: NodeJS.ProcessEnv;
  const started: IngotServerProcess[] = [];
  const cleanup: string[] = [];

  beforeAll(() => {
    ensureBuilt();
    work = mkdtempSync(join(tmpdir(), 'ingot-cli-tls-'));
    baseEnv = { ...process.env, HOME: work, INGOT_CONFIG: join(work, 'config.json'), INGOT_SERVER: '', INGOT_TOKEN: '', INGOT_CA_FILE: '', INGOT_CLIENT_CERT: '', INGOT_CLIENT_KEY: '', NO_COLOR: '1' };
  }, 240_000);

  afterAll(async () => {
    for (const s of started) await s.stop();
    for (const d of [work, ...cleanup]) if (d) rmSync(d, { recursive: true, force: true });
  });

  it('--tls-dev serves https, warns and prints the CA; the CLI works with INGOT_CA_FILE and fails clearly without', async () => {
    const dataDir = join(work, 'dev-data');
    const server = await startIngotServer({ dataDir, cwd: work, env: baseEnv, extraArgs: ['--tls-dev'] });
    started.push(server);
    expect(server.apiUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const caFile = join(dataDir, 'tls', 'ca.crt');
    expect(server.output()).toContain(`WARNING: development TLS certificate (self-signed CA, not for production). Clients must trust the CA: export INGOT_CA_FILE=${caFile}`);
    expect(statSync(join(dataDir, 'tls', 'server.key')).mode & 0o777).toBe(0o600);
    const env = { ...baseEnv, INGOT_SERVER: server.apiUrl, INGOT_TOKEN: server.token! };

    const trusted = await runIngot(['host', 'list'], { cwd: work, env: { ...env, INGOT_CA_FILE: caFile } });
    expect(trusted.stderr).toBe('');
    expect(trusted.code).toBe(0);

    const untrusted = await runIngot(['host', 'list'], { cwd: work, env });
    expect(untrusted.code).not.toBe(0);
    expect(untrusted.stderr).toMatch(/not trusted/);
  });

  it('--tls-client-ca refuses the CLI without a client certificate and accepts it with INGOT_CLIENT_CERT/KEY', async () => {
    const serverCa = makeCa('cli-server');
    const clientCa = makeCa('cli-clients');
    cleanup.push(serverCa.dir, clientCa.dir);
    issueServerCert(serverCa, 'api');
    issueClientCert(clientCa, 'ops');
    const server = await startIngotServer({
      dataDir: join(work, 'mtls-data'),
      cwd: work,
      env: baseEnv,
      extraArgs: ['--tls-cert', join(serverCa.dir, 'api.crt'), '--tls-key', join(serverCa.dir, 'api.key'), '--tls-client-ca', clientCa.certFile],
    });
    started.push(server);
    const env = { ...baseEnv, INGOT_SERVER: server.apiUrl, INGOT_TOKEN: server.token!, INGOT_CA_FILE: serverCa.certFile };
    const without = await runIngot(['host', 'list'], { cwd: work, env });
    expect(without.code).not.toBe(0);
    const withCert = await runIngot(['host', 'list'], { cwd: work, env: { ...env, INGOT_CLIENT_CERT: join(clientCa.dir, 'ops.crt'), INGOT_CLIENT_KEY: join(clientCa.dir, 'ops.key') } });
    expect(withCert.stderr).toBe('');
    expect(withCert.code).toBe(0);
  });

  it('refuses --tls-cert without --tls-key', async () => {
    const r = await runIngot(['server', '--data-dir', join(work, 'bad'), '--tls-cert', '/nonexistent.crt'], { cwd: work, env: baseEnv, timeoutMs: 30_000 });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('--tls-cert and --tls-key go together');
  });
});
