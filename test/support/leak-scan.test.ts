// The secret-leak check must be able to fail: planted leaks are found (scanner alone, and
// through the real capture of an in-process server), clean output passes, and the report
// never contains the value.
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createBaseServer } from '../../src/server/api-server.js';
import { createPolicy } from '../../src/server/auth/policy.js';
import { createLogger } from '../../src/server/logger.js';
import { secretManifest, startApiFixture } from '../../src/server/testing/api-fixture.js';
import { recordSecret } from './leak-capture-hook.mjs';
import { formatLeakReport, hashPrefix, scanCaptureDir } from './leak-scan.js';

const known = (kind: string, value: string) => `${kind}\t${Buffer.from(value).toString('base64')}\n`;

describe('secret leak scanner', () => {
  const dirs: string[] = [];
  const tempDir = () => {
    const dir = mkdtempSync(join(tmpdir(), 'ingot-leak-scan-test-'));
    dirs.push(dir);
    return dir;
  };
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it('finds a planted value in raw, JSON-escaped and base64 form, naming file and kind but never the value', () => {
    const dir = tempDir();
    const plain = 'planted-bmc-password-4711';
    const quoted = 'pa"ss\\word-with-quotes';
    writeFileSync(join(dir, 'known-1.tsv'), known('Secret stringData value', plain) + known('bearer token (API, agent or OIDC)', quoted) + known('Secret stringData value', 'short'));
    writeFileSync(join(dir, 'out-test_a.test.ts.10.stderr.txt'), `{"level":40,"msg":"login failed for ${plain}"}\n`);
    writeFileSync(join(dir, 'out-test_b.test.ts.11.http.txt'), `GET /x -> 200\n${JSON.stringify({ note: quoted })}\nshort short\n`);
    writeFileSync(join(dir, 'out-test_c.test.ts.12.http.txt'), `GET /y -> 200\n{"data":"${Buffer.from(plain).toString('base64')}"}\n`);
    writeFileSync(join(dir, 'out-test_d.test.ts.13.http.txt'), 'GET /z -> 200\n{"clean":true}\n');

    const result = scanCaptureDir(dir);
    expect(result.knownValues).toBe(2);
    expect(result.ignoredShortValues).toBe(1);
    expect(result.outputFiles).toBe(4);
    expect(result.findings.map((f) => [f.file, f.kinds, f.form, f.hashPrefix]).sort()).toEqual(
      [
        ['out-test_a.test.ts.10.stderr.txt', ['Secret stringData value'], 'raw', hashPrefix(plain)],
        ['out-test_b.test.ts.11.http.txt', ['bearer token (API, agent or OIDC)'], 'json-escaped', hashPrefix(quoted)],
        ['out-test_c.test.ts.12.http.txt', ['Secret stringData value'], 'base64', hashPrefix(plain)],
      ].sort(),
    );
    const report = formatLeakReport(result, dir);
    expect(report).toContain('out-test_a.test.ts.10.stderr.txt: Secret stringData value (sha256 ');
    expect(report).not.toContain(plain);
    expect(report).not.toContain('pa"ss');
    expect(report).not.toContain(Buffer.from(plain).toString('base64'));
  });

  it('passes clean output, and with no known values', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'out-x.1.http.txt'), 'nothing to see\n');
    expect(scanCaptureDir(dir).findings).toEqual([]);
    writeFileSync(join(dir, 'known-1.tsv'), known('api token', 'ingot_not-in-any-output-0123456789'));
    expect(scanCaptureDir(dir).findings).toEqual([]);
  });

  describe('through the capture hook of an in-process server', () => {
    const saved = process.env.INGOT_TEST_CAPTURE_DIR;
    afterEach(() => {
      if (saved === undefined) delete process.env.INGOT_TEST_CAPTURE_DIR;
      else process.env.INGOT_TEST_CAPTURE_DIR = saved;
    });

    it('learns stringData from a request and catches a route that echoes it', async () => {
      const dir = tempDir();
      process.env.INGOT_TEST_CAPTURE_DIR = dir;
      const app = createBaseServer({ log: createLogger({ level: 'silent' }), bodyLimit: 1024 * 1024 });
      app.post('/echo', async (request) => ({ echoed: request.body }));
      app.get('/bearer', async (request) => ({ you: request.headers.authorization }));
      const url = await app.listen({ host: '127.0.0.1', port: 0 });
      try {
        const value = 'echo-me-if-you-dare-9081';
        const res = await fetch(`${url}/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(secretManifest('s', { password: value })) });
        expect(res.status).toBe(200);
        await res.text();
        const bearer = await fetch(`${url}/bearer`, { headers: { authorization: 'Bearer ingot_echoed-bearer-token-value' } });
        await bearer.text();
      } finally {
        await app.close();
      }
      const result = scanCaptureDir(dir);
      expect(result.findings.map((f) => f.kinds[0]).sort()).toEqual(['Secret stringData value', 'bearer token (API, agent or OIDC)']);
      expect(result.findings.every((f) => /^out-test_support_leak-scan\.test\.ts\.\d+\.http\.txt$/.test(f.file))).toBe(true);
    });

    it('the real API keeps secrets out of its answers and logs: reveal and token creation are the only disclosures, and are not captured', async () => {
      const dir = tempDir();
      process.env.INGOT_TEST_CAPTURE_DIR = dir;
      const api = await startApiFixture({ policy: createPolicy({ overrides: { 'secret:reveal': 'role:platform-admin' } }) });
      try {
        const value = 'real-api-secret-value-5150';
        expect((await api.call('POST', '/api/v1/secrets', { body: secretManifest('db', { password: value }) })).status).toBe(201);
        expect((await api.call('GET', '/api/v1/secrets/db')).status).toBe(200);
        const reveal = await api.call('GET', '/api/v1/secrets/db/reveal');
        expect(reveal.text).toContain(value);
        const minted = await api.call('POST', '/api/v1/tokens', { body: { roles: ['platform-reader'], description: 'leak test', expiresInSeconds: 600 } });
        expect(minted.status).toBe(201);
        expect((await api.call('GET', '/api/v1/tokens', { token: minted.json.token })).status).toBe(200);
        recordSecret('planted by the test', 'never-sent-anywhere-31337');
      } finally {
        await api.close();
      }
      const files = readdirSync(dir);
      expect(files.some((f) => f.endsWith('.api-fixture-log.txt'))).toBe(true);
      expect(files.some((f) => f.endsWith('.http.txt'))).toBe(true);
      const result = scanCaptureDir(dir);
      // stringData, the minted token, the fixture's tokens, and the planted value are all known.
      expect(result.knownValues).toBeGreaterThanOrEqual(5);
      expect(result.findings).toEqual([]);
      // And the same run with the value planted into the captured output fails.
      writeFileSync(join(dir, 'out-planted.1.http.txt'), 'GET /x -> 200\n{"oops":"real-api-secret-value-5150"}\n');
      expect(scanCaptureDir(dir).findings.map((f) => [f.file, f.kinds])).toEqual([['out-planted.1.http.txt', ['Secret stringData value']]]);
    });
  });
});
