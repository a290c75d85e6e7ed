import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runServer, type RunningServer } from '../run-server.js';
import { secretManifest } from '../testing/api-fixture.js';
import { parseServerConfig } from '../server-config.js';
import { createOidcVerifier, looksLikeJwt, validateOidcConfig, type OidcConfig } from './oidc.js';

const ISSUER = 'https://idp.example.test/realms/ops';
const AUDIENCE = 'ingot';
const ROLE_MAP = { 'ingot-admins': 'platform-admin', 'ingot-readers': 'platform-reader', 'ingot-ops': 'controller' };

interface SigningKey {
  kid: string;
  alg: 'ES256' | 'RS256' | 'EdDSA';
  privateKey: CryptoKey;
  publicJwk: JWK;
}

async function signingKey(kid: string, alg: SigningKey['alg']): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, alg === 'EdDSA' ? { crv: 'Ed25519' } : {});
  return { kid, alg, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

let es: SigningKey;
let rs: SigningKey;
let ed: SigningKey;
/** Same kid as `es`, a different key: what a forger without the issuer's key can do. */
let forger: SigningKey;
let dir: string;
let jwksFile: string;

beforeAll(async () => {
  [es, rs, ed, forger] = await Promise.all([signingKey('k-es', 'ES256'), signingKey('k-rs', 'RS256'), signingKey('k-ed', 'EdDSA'), signingKey('k-es', 'ES256')]);
  dir = mkdtempSync(join(tmpdir(), 'ingot-oidc-'));
  jwksFile = join(dir, 'jwks.json');
  writeFileSync(jwksFile, JSON.stringify({ keys: [es.publicJwk, rs.publicJwk, ed.publicJwk] }));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Claims {
  sub?: string;
  groups?: unknown;
  iss?: string;
  aud?: string | string[];
  expSeconds?: number;
  nbfSeconds?: number;
  [k: string]: unknown;
}

async function jwt(key: SigningKey, claims: Claims = {}): Promise<string> {
  const { sub = 'alice', groups = ['ingot-admins'], iss = ISSUER, aud = AUDIENCE, expSeconds = 300, nbfSeconds, ...rest } = claims;
  const now = Math.floor(Date.now() / 1000);
  const builder = new SignJWT({ groups, ...rest })
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT' })
    .setSubject(sub)
    .setIssuer(iss)
    .setAudience(aud)
    .setIssuedAt(now - 10)
    .setExpirationTime(now + expSeconds);
  if (nbfSeconds !== undefined) builder.setNotBefore(now + nbfSeconds);
  return builder.sign(key.privateKey);
}

function b64(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

const servers: RunningServer[] = [];
const dataDirs: string[] = [];

async function start(oidc: Partial<OidcConfig> = {}): Promise<RunningServer> {
  const dataDir = mkdtempSync(join(tmpdir(), 'ingot-oidc-run-'));
  dataDirs.push(dataDir);
  const server = await runServer({
    dataDir: join(dataDir, 'data'),
    listen: '127.0.0.1:0',
    agentListen: '127.0.0.1:0',
    role: 'api',
    fake: false,
    log: 'silent',
    rateLimits: false,
    oidc: { issuer: ISSUER, audience: AUDIENCE, jwksFile, roleMap: ROLE_MAP, ...oidc },
  });
  servers.push(server);
  return server;
}

async function call(base: string, method: string, path: string, token: string, body?: unknown): Promise<{ status: number; json: any; text: string }> {
  const res = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, text, json: text ? JSON.parse(text) : undefined };
}

afterEach(async () => {
  while (servers.length > 0) await servers.pop()!.close();
  while (dataDirs.length > 0) rmSync(dataDirs.pop()!, { recursive: true, force: true });
});

describe('OIDC bearer tokens on the public API', () => {
  it('a valid token is allowed per its mapped role and audited under oidc:<sub>; Ingot tokens keep working', async () => {
    const server = await start();
    for (const key of [es, rs, ed]) {
      const res = await call(server.apiUrl, 'GET', '/api/v1/hosts', await jwt(key));
      expect(res.status, key.alg).toBe(200);
    }
    const created = await call(server.apiUrl, 'POST', '/api/v1/secrets', await jwt(es, { preferred_username: 'alice@example.test' }), secretManifest('from-oidc', { password: 'x' }));
    expect(created.status).toBe(201);
    const events = await server.store.listAuditEvents({ action: 'secret:create' });
    expect(events.map((e) => e.actor)).toContain('oidc:alice (alice@example.test)');
    expect((await call(server.apiUrl, 'GET', '/api/v1/hosts', server.bootstrapToken!)).status).toBe(200);
  });

  it('a token mapped to platform-reader reads but cannot write', async () => {
    const server = await start();
    const reader = await jwt(es, { sub: 'bob', groups: ['ingot-readers', 'unrelated-group'] });
    expect((await call(server.apiUrl, 'GET', '/api/v1/hosts', reader)).status).toBe(200);
    const write = await call(server.apiUrl, 'POST', '/api/v1/secrets', reader, secretManifest('nope', { password: 'x' }));
    expect(write.status).toBe(403);
    expect(write.json.code).toBe('INGOT_ERR_FORBIDDEN');
    expect(write.json.message).toContain('platform-reader');
  });

  it('groups that map to no role give no access (403 on every action), and a string claim counts as one group', async () => {
    const server = await start({ rolesClaim: 'realm.roles' });
    const none = await jwt(es, { sub: 'carol', groups: ['ingot-admins'], realm: { roles: ['marketing'] } });
    expect((await call(server.apiUrl, 'GET', '/api/v1/hosts', none)).status).toBe(403);
    // The default `groups` claim is not read when rolesClaim points elsewhere.
    const nested = await jwt(es, { sub: 'carol', groups: [], realm: { roles: 'ingot-readers' } });
    expect((await call(server.apiUrl, 'GET', '/api/v1/hosts', nested)).status).toBe(200);
  });

  it.each([
    ['expired', () => jwt(es, { expSeconds: -3600 }), /expired/],
    ['not yet valid', () => jwt(es, { nbfSeconds: 3600 }), /not valid yet/],
    ['wrong issuer', () => jwt(es, { iss: 'https://evil.example.test' }), /wrong issuer/],
    ['wrong audience', () => jwt(es, { aud: 'some-other-app' }), /wrong audience/],
    ['signed by another key with the same kid', () => jwt(forger), /signature does not verify/],
    ['signed by an unknown key', () => jwt({ ...forger, kid: 'k-unknown' }), /no key of the issuer matches/],
    ['unsigned (alg none)', async () => `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'eve', iss: ISSUER, aud: AUDIENCE, exp: Math.floor(Date.now() / 1000) + 300, groups: ['ingot-admins'] })}.`, /algorithm is not allowed|not a valid signed JWT/],
    ['HS256 with a shared secret', async () => new SignJWT({ groups: ['ingot-admins'] }).setProtectedHeader({ alg: 'HS256', kid: 'k-es' }).setSubject('eve').setIssuer(ISSUER).setAudience(AUDIENCE).setExpirationTime('5m').sign(new TextEncoder().encode('x'.repeat(32))), /algorithm is not allowed/],
  ])('refuses a token that is %s with 401 saying why, audited without the token', async (_name, make, reason) => {
    const server = await start();
    const token = await make();
    const res = await call(server.apiUrl, 'GET', '/api/v1/hosts', token);
    expect(res.status).toBe(401);
    expect(res.json.code).toBe('INGOT_ERR_UNAUTHENTICATED');
    expect(res.json.message).toMatch(reason);
    expect(res.text).not.toContain(token.split('.')[1]);
    const failures = await server.store.listAuditEvents({ action: 'auth:failed' });
    expect(failures).toHaveLength(1);
    expect(failures[0]!.reason).toMatch(reason);
    expect(JSON.stringify(failures[0])).not.toContain(token.split('.')[1]);
  });

  it('fetches the key set from jwksUrl (a local JWKS endpoint)', async () => {
    let fetched = 0;
    const jwks: Server = createServer((req, res) => {
      fetched++;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [es.publicJwk] }));
    });
    await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve));
    try {
      const port = (jwks.address() as { port: number }).port;
      const server = await start({ jwksFile: undefined, jwksUrl: `http://127.0.0.1:${port}/jwks` } as Partial<OidcConfig>);
      expect((await call(server.apiUrl, 'GET', '/api/v1/hosts', await jwt(es))).status).toBe(200);
      expect(fetched).toBeGreaterThanOrEqual(1);
      // rs is not in the served set.
      expect((await call(server.apiUrl, 'GET', '/api/v1/hosts', await jwt(rs))).status).toBe(401);
    } finally {
      await new Promise<void>((resolve) => jwks.close(() => resolve()));
    }
  });

  it('an unreachable key set gives 401 to the caller and a warning to the operator', async () => {
    const broken: Server = createServer((_req, res) => res.writeHead(500).end('down'));
    await new Promise<void>((resolve) => broken.listen(0, '127.0.0.1', resolve));
    try {
      const port = (broken.address() as { port: number }).port;
      const warnings: string[] = [];
      const verifier = createOidcVerifier({ issuer: ISSUER, audience: AUDIENCE, jwksUrl: `http://127.0.0.1:${port}/jwks`, roleMap: ROLE_MAP }, { onKeySetError: (m) => warnings.push(m) });
      const token = await jwt(es);
      await expect(verifier.verify(token)).rejects.toMatchObject({ code: 'INGOT_ERR_UNAUTHENTICATED', message: expect.stringMatching(/key set/) });
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain(`http://127.0.0.1:${port}/jwks`);
      expect(warnings[0]).not.toContain(token.split('.')[1]);
      // A caller's mistake is not the key set's fault: no warning.
      await expect(createOidcVerifier({ ...{ issuer: ISSUER, audience: AUDIENCE, jwksFile, roleMap: ROLE_MAP } }, { onKeySetError: (m) => warnings.push(m) }).verify(await jwt(es, { expSeconds: -600 }))).rejects.toThrow(/expired/);
      expect(warnings).toHaveLength(1);
    } finally {
      await new Promise<void>((resolve) => broken.close(() => resolve()));
    }
  });

  it('JWTs are not accepted on the agent listener', async () => {
    const server = await start();
    const res = await call(server.agentUrl, 'POST', '/agent/v1/lookup', await jwt(es), {});
    expect(res.status).toBe(401);
  });
});

describe('OIDC settings', () => {
  const base: OidcConfig = { issuer: ISSUER, audience: AUDIENCE, jwksFile: '/x', roleMap: {} };
  it('refuse mistakes with a message naming the field', () => {
    expect(() => validateOidcConfig({ ...base, roleMap: { g: 'agent' } })).toThrow(/oidc\.roleMap\.g: "agent" is not an Ingot role/);
    expect(() => validateOidcConfig({ ...base, roleMap: { g: 'root' } })).toThrow(/oidc\.roleMap\.g/);
    expect(() => validateOidcConfig({ ...base, jwksUrl: 'https://idp/jwks' })).toThrow(/exactly one of/);
    expect(() => validateOidcConfig({ ...base, jwksFile: undefined, jwksUrl: 'http://idp.example.test/jwks' } as OidcConfig)).toThrow(/must be https/);
    expect(() => validateOidcConfig({ ...base, clockToleranceSeconds: 3600 })).toThrow(/clockToleranceSeconds/);
    expect(() => validateOidcConfig(base)).not.toThrow();
  });

  it('a JWKS file holding only symmetric keys is refused', () => {
    const file = join(dir, 'oct.json');
    writeFileSync(file, JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0', alg: 'HS256' }] }));
    expect(() => createOidcVerifier({ ...base, jwksFile: file })).toThrow(/no public keys/);
  });

  it('looksLikeJwt tells JWTs from Ingot tokens', () => {
    expect(looksLikeJwt('aaa.bbb.ccc')).toBe(true);
    expect(looksLikeJwt('aaa.bbb.')).toBe(true);
    expect(looksLikeJwt('ingot_abc.def.ghi')).toBe(false);
    expect(looksLikeJwt('ingot_' + 'a'.repeat(43))).toBe(false);
    expect(looksLikeJwt('a.b')).toBe(false);
  });

  it('the config file accepts oidc and tls sections and validates them', () => {
    const ok = parseServerConfig(
      `tls:\n  certFile: /etc/ingot/api.crt\n  keyFile: /etc/ingot/api.key\n  clientCaFile: /etc/ingot/clients.crt\noidc:\n  issuer: ${ISSUER}\n  audience: ingot\n  jwksUrl: https://idp.example.test/jwks\n  roleMap:\n    ingot-admins: platform-admin\n`,
      'c.yaml',
    );
    expect(ok.tls?.clientCaFile).toBe('/etc/ingot/clients.crt');
    expect(ok.oidc?.roleMap).toEqual({ 'ingot-admins': 'platform-admin' });
    expect(() => parseServerConfig('tls:\n  certFile: /a\n', 'c.yaml')).toThrow(/tls: give both certFile and keyFile/);
    expect(() => parseServerConfig('tls:\n  dev: true\n  certFile: /a\n', 'c.yaml')).toThrow(/tls: dev/);
    expect(() => parseServerConfig(`oidc:\n  issuer: ${ISSUER}\n  audience: ingot\n  jwksFile: /j\n  roleMap:\n    g: superuser\n`, 'c.yaml')).toThrow(/oidc\.roleMap\.g/);
    expect(() => parseServerConfig('tls:\n  cert: /a\n', 'c.yaml')).toThrow(/unknown field/);
  });
});
