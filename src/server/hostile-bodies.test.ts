// Bodies built to exhaust the parsers: each must be a 400 that names where, on both
// listeners, and the server must keep answering afterwards.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { secretManifest, startApiFixture, type ApiFixture } from './testing/api-fixture.js';

let api: ApiFixture;

beforeAll(async () => {
  api = await startApiFixture();
});

afterAll(async () => {
  await api?.close();
});

async function expectAlive(): Promise<void> {
  expect((await api.call('GET', '/healthz', { token: null })).status).toBe(200);
  expect((await api.call('GET', '/api/v1/hosts')).status).toBe(200);
}

describe('hostile bodies', () => {
  it('refuses YAML nested 100,000 deep twice and stays up', async () => {
    for (let attempt = 1; attempt <= 2; attempt++) {
      const res = await api.call('POST', '/api/v1/projects/red/claims', { raw: '['.repeat(100_000), contentType: 'application/yaml' });
      expect(res.status).toBe(400);
      expect(res.json.code).toBe('INGOT_ERR_MALFORMED_BODY');
      expect(res.json.message).toMatch(/line 1, column 65.*deeper than 64 levels/);
    }
    await expectAlive();
  });

  it('refuses a block sequence 1,000 levels deep', async () => {
    const res = await api.call('POST', '/api/v1/projects/red/claims', { raw: `${Array(1000).fill('-').join(' ')} x\n`, contentType: 'application/yaml' });
    expect(res.status).toBe(400);
    expect(res.json.message).toMatch(/deeper than 64 levels/);
    await expectAlive();
  });

  it("answers '[' x 300,000 as JSON with a 400 naming the position", async () => {
    const res = await api.call('POST', '/api/v1/hosts', { raw: '['.repeat(300_000) });
    expect(res.status).toBe(400);
    expect(res.json.message).toMatch(/invalid JSON at line 1, column 65/);
    await expectAlive();
  });

  it('does the same on the agent listener', async () => {
    for (const [raw, contentType] of [
      ['['.repeat(100_000), 'application/yaml'],
      ['['.repeat(200_000), 'application/json'],
    ] as const) {
      const res = await api.call('POST', '/agent/v1/lookup', { base: 'agent', token: api.agentToken, raw, contentType });
      expect(res.status).toBe(400);
      expect(res.json.code).toBe('INGOT_ERR_MALFORMED_BODY');
    }
    expect((await api.call('GET', '/healthz', { base: 'agent', token: null })).status).toBe(200);
  });

  it('refuses bytes that are not UTF-8, naming the byte', async () => {
    const bytes = Buffer.concat([Buffer.from('{"apiVersion":"ingot.dev/v1","kind":"Secret","metadata":{"name":"bad-utf8"},"stringData":{"a":"'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}}')]);
    const res = await fetch(`${api.url}/api/v1/secrets`, { method: 'POST', headers: { authorization: `Bearer ${api.adminToken}`, 'content-type': 'application/json' }, body: bytes });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { message: string }).message).toMatch(/not valid UTF-8 \(first bad byte at offset 95\)/);
    expect((await api.call('GET', '/api/v1/secrets/bad-utf8')).status).toBe(404);
  });

  it('stores no secret holding a lone surrogate or NUL', async () => {
    for (const [name, value] of [['lone', '\ud800'], ['nul', 'a\u0000b']] as const) {
      const res = await api.call('POST', '/api/v1/secrets', { raw: JSON.stringify(secretManifest(name, { password: value })) });
      expect(res.status).toBe(400);
      expect(res.json.message).toMatch(/stringData\.password holds (invalid Unicode|a NUL)/);
      expect((await api.call('GET', `/api/v1/secrets/${name}`)).status).toBe(404);
    }
  });
});
