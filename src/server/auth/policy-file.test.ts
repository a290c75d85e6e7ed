import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runServer } from '../run-server.js';
import { generateToken } from './tokens.js';
import { parsePolicyFile } from './policy-file.js';
import { createPolicy, isAllowed } from './policy.js';
import { parseRule, evaluateRule, formatRule } from './rule-expression.js';

describe('rule language', () => {
  it('parses and evaluates or/and/parentheses, @, ! and approval:required (fails closed)', () => {
    const r = parseRule('role:platform-admin or (role:controller and role:platform-reader)');
    expect(evaluateRule(r, ['platform-admin'])).toBe(true);
    expect(evaluateRule(r, ['controller'])).toBe(false);
    expect(evaluateRule(r, ['controller', 'platform-reader'])).toBe(true);
    expect(evaluateRule(parseRule('@'), [])).toBe(true);
    expect(evaluateRule(parseRule('!'), ['platform-admin'])).toBe(false);
    expect(evaluateRule(parseRule('role:platform-admin and approval:required'), ['platform-admin'])).toBe(false);
    expect(formatRule(r)).toBe('role:platform-admin or role:controller and role:platform-reader');
  });

  it('syntax errors name the column', () => {
    expect(() => parseRule('role:platform-admin or')).toThrow(/ends where/);
    try {
      parseRule('role:a orr role:b');
    } catch (e) {
      expect((e as { column: number }).column).toBe(8);
    }
  });
});

describe('policy file', () => {
  it('overrides named actions and keeps the rest', () => {
    const overrides = parsePolicyFile('secret:reveal: "role:platform-admin"\nhost:delete: "!"\n');
    const policy = createPolicy({ overrides });
    expect(isAllowed(policy, ['platform-admin'], 'secret:reveal')).toBe(true);
    expect(isAllowed(policy, ['platform-admin'], 'host:delete')).toBe(false);
    expect(isAllowed(policy, ['platform-admin'], 'host:create')).toBe(true);
  });

  it('refuses unknown actions, unknown roles and syntax errors, naming action and position', () => {
    expect(() => parsePolicyFile('host:frobnicate: "@"', 'f')).toThrow(/f, line 1: unknown action "host:frobnicate"/);
    expect(() => parsePolicyFile('host:get: "@"\nhost:list: "role:wizard"', 'f')).toThrow(/line 2: rule for action "host:list" names unknown role "wizard"/);
    expect(() => parsePolicyFile('host:get: "role:controller or or"', 'f')).toThrow(/line 1 column 31: rule for action "host:get"/);
    expect(() => parsePolicyFile('host:get: [1, 2]', 'f')).toThrow(/must be a quoted string/);
    expect(() => parsePolicyFile('host:get: "@"\nhost:get: "!"', 'f')).toThrow(/not valid YAML/);
  });

  it('runServer --policy-file: reload swaps the rules; a bad file is refused and the running policy kept', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ingot-policy-'));
    const policyFile = join(dir, 'policy.yaml');
    writeFileSync(policyFile, 'secret:reveal: "role:platform-admin"\n');
    const token = generateToken();
    const server = await runServer({ dataDir: join(dir, 'data'), listen: '127.0.0.1:0', agentListen: '127.0.0.1:0', role: 'api', log: 'silent', bootstrapToken: token, policyFile });
    const call = (method: string, path: string, body?: unknown) =>
      fetch(server.apiUrl + path, { method, headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}) });
    try {
      expect((await call('POST', '/api/v1/secrets', { apiVersion: 'ingot.dev/v1', kind: 'Secret', metadata: { name: 's1' }, stringData: { password: 'hunter2-value' } })).status).toBe(201);
      const revealed = await call('GET', '/api/v1/secrets/s1/reveal');
      expect(revealed.status).toBe(200);
      expect(((await revealed.json()) as { stringData: Record<string, string> }).stringData.password).toBe('hunter2-value');
      // The reveal was audited (without the value).
      const events = await server.store.listAuditEvents({ action: 'secret:reveal' });
      expect(events.length).toBe(1);
      expect(JSON.stringify(events)).not.toContain('hunter2-value');

      writeFileSync(policyFile, 'secret:reveal: "role:nobody-such"\n');
      const bad = await server.reloadPolicy();
      expect(bad.ok).toBe(false);
      expect(!bad.ok && bad.error).toContain('unknown role "nobody-such"');
      expect((await call('GET', '/api/v1/secrets/s1/reveal')).status).toBe(200);

      writeFileSync(policyFile, 'secret:reveal: "!"\n');
      expect((await server.reloadPolicy()).ok).toBe(true);
      expect((await call('GET', '/api/v1/secrets/s1/reveal')).status).toBe(403);
    } finally {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('runServer refuses to start with a bad policy file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ingot-policy-'));
    writeFileSync(join(dir, 'p.yaml'), 'host:get: "role:"\n');
    try {
      await expect(runServer({ dataDir: join(dir, 'data'), listen: '127.0.0.1:0', agentListen: '127.0.0.1:0', role: 'api', log: 'silent', policyFile: join(dir, 'p.yaml') })).rejects.toThrow(/host:get/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
