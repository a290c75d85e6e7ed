import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { connect } from 'node:tls';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { createClient } from '../../client/client.js';
import { issueClientCert, issueServerCert, makeCa, type TestCa } from '../../../test/support/test-pki.js';
import { createLogger } from '../logger.js';
import { runServer, type RunningServer, type RunServerOptions } from '../run-server.js';
import { loadApiHttpsOptions } from './api-tls.js';

const dirs: string[] = [];
const servers: RunningServer[] = [];
const agents: Agent[] = [];

function tempDir(prefix = 'ingot-tls-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

async function start(extra: Partial<RunServerOptions>): Promise<RunningServer> {
  const server = await runServer({
    dataDir: join(tempDir(), 'data'),
    listen: '127.0.0.1:0',
    agentListen: '127.0.0.1:0',
    role: 'api',
    fake: false,
    log: 'silent',
    ...extra,
  });
  servers.push(server);
  return server;
}

function agent(connectOptions: { ca?: string; cert?: string; key?: string }): Agent {
  const a = new Agent({ connect: connectOptions });
  agents.push(a);
  return a;
}

async function get(url: string, dispatcher: Agent, token?: string): Promise<number> {
  const res = await undiciFetch(url, { dispatcher, ...(token ? { headers: { authorization: `Bearer ${token}` } } : {}) });
  await res.arrayBuffer();
  return res.status;
}

function serverCa(): { ca: TestCa; certFile: string; keyFile: string } {
  const ca = makeCa('api-server');
  issueServerCert(ca, 'api');
  return { ca, certFile: join(ca.dir, 'api.crt'), keyFile: join(ca.dir, 'api.key') };
}

afterEach(async () => {
  while (servers.length > 0) await servers.pop()!.close();
  while (agents.length > 0) await agents.pop()!.close();
  while (dirs.length > 0) rmSync(dirs.pop()!, { recursive: true, force: true });
});

describe('public API TLS', () => {
  it('serves HTTPS from the given certificate and key; clients trusting the CA get through, others do not', async () => {
    const pki = serverCa();
    dirs.push(pki.ca.dir);
    const server = await start({ tls: { certFile: pki.certFile, keyFile: pki.keyFile } });
    expect(server.apiUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const token = server.bootstrapToken!;

    // Trusting the CA: the typed client with caFile.
    const client = createClient({ server: server.apiUrl, token, caFile: pki.ca.certFile });
    expect((await client.request('GET', '/api/v1/hosts')).status).toBe(200);

    // Not trusting it: the certificate is refused by the client.
    await expect(undiciFetch(`${server.apiUrl}/healthz`)).rejects.toThrow();
    // Plain HTTP to the TLS port gets no HTTP answer.
    await expect(undiciFetch(server.apiUrl.replace('https:', 'http:') + '/healthz')).rejects.toThrow();
  });

  it('the client trusts INGOT_CA_FILE from the environment when no caFile is given', async () => {
    const pki = serverCa();
    dirs.push(pki.ca.dir);
    const server = await start({ tls: { certFile: pki.certFile, keyFile: pki.keyFile } });
    const saved = process.env.INGOT_CA_FILE;
    process.env.INGOT_CA_FILE = pki.ca.certFile;
    try {
      const client = createClient({ server: server.apiUrl, token: server.bootstrapToken! });
      expect((await client.request('GET', '/api/v1/hosts')).status).toBe(200);
    } finally {
      if (saved === undefined) delete process.env.INGOT_CA_FILE;
      else process.env.INGOT_CA_FILE = saved;
    }
  });

  it('negotiates TLS 1.2 or later and offers no older version', async () => {
    const pki = serverCa();
    dirs.push(pki.ca.dir);
    const opts = loadApiHttpsOptions({ certFile: pki.certFile, keyFile: pki.keyFile }, tempDir());
    expect(opts.https.minVersion).toBe('TLSv1.2');
    const server = await start({ tls: { certFile: pki.certFile, keyFile: pki.keyFile } });
    const port = Number(new URL(server.apiUrl).port);
    const protocol = await new Promise<string | null>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port, ca: pki.ca.certPem, servername: 'localhost', maxVersion: 'TLSv1.2' }, () => {
        resolve(socket.getProtocol());
        socket.end();
      });
      socket.on('error', reject);
    });
    expect(protocol).toBe('TLSv1.2');
  });

  it('dev mode generates a CA and a server certificate (keys 0600), warns, and clients trusting that CA connect; a restart reuses it', async () => {
    const lines: string[] = [];
    const sink = new Writable({ write(chunk, _enc, cb) { lines.push(String(chunk)); cb(); } });
    const dataDir = join(tempDir(), 'data');
    const server = await start({ dataDir, tls: { dev: true }, log: createLogger({ level: 'info', destination: sink }) });
    expect(server.apiUrl).toMatch(/^https:\/\//);
    const caFile = join(dataDir, 'tls', 'ca.crt');
    expect(server.tlsCaFile).toBe(caFile);
    for (const key of ['ca.key', 'server.key']) expect(statSync(join(dataDir, 'tls', key)).mode & 0o777).toBe(0o600);
    const warning = lines.find((l) => l.includes('TLS dev mode'));
    expect(warning).toBeDefined();
    expect(warning).toContain('"level":40');
    expect(warning).toContain('development only');
    expect(warning).toContain(caFile);

    const token = server.bootstrapToken!;
    const client = createClient({ server: server.apiUrl, token, caFile });
    expect((await client.request('GET', '/api/v1/hosts')).status).toBe(200);
    // Reachable by name too (the certificate names localhost).
    const byName = createClient({ server: server.apiUrl.replace('127.0.0.1', 'localhost'), token, caFile });
    expect((await byName.request('GET', '/api/v1/hosts')).status).toBe(200);

    const caBefore = readFileSync(caFile, 'utf8');
    await server.close();
    servers.pop();
    const again = await start({ dataDir, tls: { dev: true } });
    expect(readFileSync(caFile, 'utf8')).toBe(caBefore);
    expect((await createClient({ server: again.apiUrl, token, caFile }).request('GET', '/api/v1/hosts')).status).toBe(200);
  });

  it('refuses bad settings with a message naming the field', async () => {
    const dir = tempDir();
    expect(() => loadApiHttpsOptions({ certFile: join(dir, 'missing.crt') }, dir)).toThrow(/tls\.certFile and tls\.keyFile/);
    expect(() => loadApiHttpsOptions({ dev: true, certFile: 'x' }, dir)).toThrow(/not both/);
    writeFileSync(join(dir, 'not-a-cert.pem'), 'hello');
    writeFileSync(join(dir, 'key.pem'), '-----BEGIN PRIVATE KEY-----\n');
    expect(() => loadApiHttpsOptions({ certFile: join(dir, 'not-a-cert.pem'), keyFile: join(dir, 'key.pem') }, dir)).toThrow(/tls\.certFile .* is not a PEM file/);
    expect(() => loadApiHttpsOptions({ certFile: join(dir, 'nope.pem'), keyFile: join(dir, 'key.pem') }, dir)).toThrow(/tls\.certFile .* cannot be read/);
  });
});

describe('public API mutual TLS', () => {
  it('requires a client certificate from the configured CA in the handshake, and still the bearer token', async () => {
    const pki = serverCa();
    const clientCa = makeCa('clients');
    const rogueCa = makeCa('rogue');
    dirs.push(pki.ca.dir, clientCa.dir, rogueCa.dir);
    const good = issueClientCert(clientCa, 'alice');
    const rogue = issueClientCert(rogueCa, 'mallory');
    const server = await start({ tls: { certFile: pki.certFile, keyFile: pki.keyFile, clientCaFile: clientCa.certFile } });
    const token = server.bootstrapToken!;
    const url = `${server.apiUrl}/api/v1/hosts`;

    // No client certificate: the TLS handshake is refused; no HTTP status at all.
    await expect(get(url, agent({ ca: pki.ca.certPem }), token)).rejects.toThrow();
    // A certificate from another CA: refused too.
    await expect(get(url, agent({ ca: pki.ca.certPem, cert: rogue.cert, key: rogue.key }), token)).rejects.toThrow();
    // The right certificate but no token: TLS passes, the API still answers 401.
    const ok = agent({ ca: pki.ca.certPem, cert: good.cert, key: good.key });
    expect(await get(url, ok)).toBe(401);
    // Certificate and token: allowed.
    expect(await get(url, ok, token)).toBe(200);
    // Unauthenticated probes still need the certificate (mTLS covers the whole listener).
    await expect(get(`${server.apiUrl}/healthz`, agent({ ca: pki.ca.certPem }))).rejects.toThrow();

    // The typed client presents a certificate from files.
    const client = createClient({
      server: server.apiUrl,
      token,
      caFile: pki.ca.certFile,
      clientCertFile: join(clientCa.dir, 'alice.crt'),
      clientKeyFile: join(clientCa.dir, 'alice.key'),
    });
    expect((await client.request('GET', '/api/v1/hosts')).status).toBe(200);
  });
});
