import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadServerConfig, parseServerConfig, serverOptionsFromConfig } from './server-config.js';

describe('server config file', () => {
  it('turns a full file into runServer options', () => {
    const config = parseServerConfig(
      [
        'listen: 127.0.0.1:9000',
        'conductor:',
        '  workers: 4',
        '  backoff: {baseMs: 500, capMs: 10000}',
        '  powerPollMs: 100',
        'fake:',
        '  delays: {deployMs: [2000, 3000]}',
        'images: {allowMd5Checksums: true}',
        'cleaning: {resetBios: false, approvedFirmware: {bios: ["1.2.3"]}}',
      ].join('\n'),
      'ingot.yaml',
    );
    const options = serverOptionsFromConfig(config);
    expect(options.listen).toBe('127.0.0.1:9000');
    expect(options.conductor).toEqual({
      workers: 4,
      backoff: { baseMs: 500, capMs: 10000 },
      handler: { powerPollMs: 100, resetBiosOnClean: false, approvedFirmware: { bios: ['1.2.3'] } },
    });
    expect(options.fake).toEqual({ delays: { deployMs: [2000, 3000] } });
    expect(options.policy?.allowMd5Checksums).toBe(true);
  });

  it('maps the image download settings, and refuses an unknown download source', () => {
    const text = 'images:\n  downloadSource: local\n  cacheMaxBytes: 1073741824\n  caBundleFile: /etc/ingot/image-ca.pem\n  requireHttps: true\n';
    expect(serverOptionsFromConfig(parseServerConfig(text, 'i.yaml')).images).toEqual({
      downloadSource: 'local',
      cacheMaxBytes: 1073741824,
      caBundleFile: '/etc/ingot/image-ca.pem',
      requireHttps: true,
    });
    expect(() => parseServerConfig('images: {downloadSource: proxy}', 'i.yaml')).toThrow(/i\.yaml: images\.downloadSource/);
    expect(() => parseServerConfig('images: {cacheMaxBytes: 10}', 'i.yaml')).toThrow(/images\.cacheMaxBytes/);
  });

  it('maps the concurrency caps, and refuses a cap of 0', () => {
    const options = serverOptionsFromConfig(parseServerConfig('conductor:\n  maxConcurrentDeploys: 2\n  maxConcurrentCleanings: 1\n  slotRecheckMs: 500\n', 'ingot.yaml'));
    expect(options.conductor).toEqual({ maxConcurrentDeploys: 2, maxConcurrentCleanings: 1, slotRecheckMs: 500 });
    expect(() => parseServerConfig('conductor:\n  maxConcurrentDeploys: 0\n', 'ingot.yaml')).toThrow(/maxConcurrentDeploys/);
  });

  it('maps the agent API URL hosts use (lab VMs reach it at 10.0.2.100), and refuses a URL without http(s)', () => {
    expect(serverOptionsFromConfig(parseServerConfig('agentApiUrl: http://10.0.2.100:7386\n', 'a.yaml')).agent).toEqual({ apiUrl: 'http://10.0.2.100:7386' });
    expect(() => parseServerConfig('agentApiUrl: 10.0.2.100:7386\n', 'a.yaml')).toThrow('agentApiUrl');
  });

  it('maps the time after which a silent agent is lost, and refuses one shorter than two heartbeats', () => {
    expect(serverOptionsFromConfig(parseServerConfig('conductor:\n  agentLostAfterMs: 120000\n', 'a.yaml')).agent).toEqual({ agentLostAfterMs: 120000 });
    expect(serverOptionsFromConfig(parseServerConfig('agentApiUrl: http://10.0.2.100:7386\nconductor:\n  agentLostAfterMs: 600000\n', 'a.yaml')).agent).toEqual({ apiUrl: 'http://10.0.2.100:7386', agentLostAfterMs: 600000 });
    expect(() => parseServerConfig('conductor:\n  agentLostAfterMs: 30000\n', 'a.yaml')).toThrow(/agentLostAfterMs/);
  });

  it('maps body bounds and the request limits of both listeners, and refuses a bucket of 0', () => {
    const text = [
      'limits:',
      '  body: {maxBytes: 65536, maxDepth: 32, maxNodes: 5000, maxAliases: 0}',
      '  api:',
      '    authFailures: {maxFailures: 5, windowMs: 30000, maxUnknownTotal: 100}',
      '    requests: {default: {burst: 10, perSecond: 2}, perRole: {platform-admin: {burst: 50, perSecond: 5}}}',
      '  agent:',
      '    requests: {perRole: {agent: {burst: 20, perSecond: 4}}}',
    ].join('\n');
    const options = serverOptionsFromConfig(parseServerConfig(text, 'l.yaml'));
    expect(options.bodyLimit).toBe(65536);
    expect(options.bodyBounds).toEqual({ maxDepth: 32, maxNodes: 5000, maxAliases: 0 });
    expect(options.rateLimits).toEqual({
      authFailures: { maxFailures: 5, windowMs: 30000, maxUnknownTotal: 100 },
      default: { burst: 10, perSecond: 2 },
      perRole: { 'platform-admin': { burst: 50, perSecond: 5 } },
    });
    expect(options.agentRateLimits).toEqual({ perRole: { agent: { burst: 20, perSecond: 4 } } });
    expect(() => parseServerConfig('limits: {api: {requests: {default: {burst: 0, perSecond: 1}}}}', 'l.yaml')).toThrow(/limits\.api\.requests\.default\.burst/);
    expect(() => parseServerConfig('limits: {body: {maxDepth: 100000}}', 'l.yaml')).toThrow(/limits\.body\.maxDepth/);
  });

  it('an empty file means defaults', () => {
    expect(serverOptionsFromConfig(parseServerConfig('', 'empty.yaml'))).toEqual({});
  });

  it('disabling the fake fleet maps to fake: false', () => {
    expect(serverOptionsFromConfig(parseServerConfig('fake: {enabled: false}', 'f.yaml')).fake).toBe(false);
  });

  it.each([
    ['conductor: {wrokers: 4}', /config file c\.yaml: conductor\.wrokers: unknown field/],
    ['conductor: {workers: 0}', /conductor\.workers/],
    ['fake: {delays: {powerMs: [5, 1]}}', /fake\.delays\.powerMs: \[min, max\] with min <= max/],
    ['listen: [1, 2', /not valid YAML at line 1/],
  ])('refuses %j with a message naming the field', (text, message) => {
    expect(() => parseServerConfig(text, 'c.yaml')).toThrow(message);
  });

  it('reads the two-person rule settings and refuses unknown or out-of-range ones', () => {
    const options = serverOptionsFromConfig(parseServerConfig('approvals: {destructiveThreshold: 2, windowSeconds: 60, ttlSeconds: 600}', 'ingot.yaml'));
    expect(options.approvals).toEqual({ destructiveThreshold: 2, windowSeconds: 60, ttlSeconds: 600 });
    expect(() => parseServerConfig('approvals: {treshold: 2}', 'ingot.yaml')).toThrow(/treshold/);
    expect(() => parseServerConfig('approvals: {ttlSeconds: 5}', 'ingot.yaml')).toThrow(/ttlSeconds/);
  });

  describe('audit section (alert rules, webhook)', () => {
    const RULE = [
      '    - name: host-changed-by-non-controller',
      '      match:',
      '        actions: ["host:update", "host:delete"]',
      '        targetKinds: [Host]',
      '        outcomes: [succeeded]',
      '        actorLacksRole: controller',
      '      severity: high',
    ].join('\n');

    it('maps inline alert rules, the webhook and the file copy to runServer options', () => {
      const text = ['audit:', '  file: false', '  webhook: {url: "http://127.0.0.1:9/hook"}', '  alertRules:', RULE].join('\n');
      const options = serverOptionsFromConfig(parseServerConfig(text, 'ingot.yaml'));
      expect(options.audit).toEqual({
        file: false,
        webhook: { url: 'http://127.0.0.1:9/hook' },
        alertRules: [
          {
            name: 'host-changed-by-non-controller',
            match: { actions: ['host:update', 'host:delete'], targetKinds: ['Host'], outcomes: ['succeeded'], actorLacksRole: 'controller' },
            severity: 'high',
          },
        ],
      });
    });

    it.each([
      ['audit:\n  alertRules:\n' + RULE.replace('actorLacksRole', 'actorLacksRoles'), /a\.yaml: audit\.alertRules\[0\]\.match\.actorLacksRoles: is not a known field/],
      ['audit:\n  alertRules:\n' + RULE.replace('severity: high', 'severity: urgent'), /audit\.alertRules\[0\]\.severity: must be one of info, low, medium, high, critical \(rule "host-changed-by-non-controller"\)/],
      ['audit:\n  alertRules:\n' + RULE.replace('outcomes: [succeeded]', 'outcomes: [maybe]'), /audit\.alertRules\[0\]\.match\.outcomes\[0\]/],
      ['audit:\n  alertRules:\n    - {name: x, severity: low}', /audit\.alertRules\[0\]\.match: is required/],
      ['audit:\n  alertRules:\n    - {name: x, match: {}, severity: low}', /audit\.alertRules\[0\]\.match: is empty/],
      ['audit:\n  webhok: {url: "http://127.0.0.1:9/"}', /audit\.webhok: unknown field/],
      ['audit:\n  webhook: {url: "http://127.0.0.1:9/", secret: "inline-secrets-are-refused"}', /audit\.webhook\.secret: unknown field/],
      ['audit:\n  webhook: {}', /audit\.webhook: must have required properties url/],
      ['audit:\n  webhook: {url: "ftp://127.0.0.1/x"}', /audit\.webhook\.url: give an http:\/\/ or https:\/\/ URL/],
      ['audit:\n  alertRulesFile: r.yaml\n  alertRules: []', /audit: give alert rules inline \(alertRules\) or in a file \(alertRulesFile\), not both/],
    ])('refuses a bad audit section %#, naming the field', (text, message) => {
      expect(() => parseServerConfig(text, 'a.yaml')).toThrow(message);
    });

    it('reads alertRulesFile and webhook.secretFile, and names the field when they are bad', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'ingot-config-audit-'));
      try {
        const rules = join(dir, 'rules.yaml');
        const secret = join(dir, 'hook.secret');
        const config = join(dir, 'ingot.yaml');
        writeFileSync(rules, `rules:\n${RULE.replace(/^  /gm, '')}\n`);
        writeFileSync(secret, `${'s'.repeat(32)}\n`);
        writeFileSync(config, `audit:\n  alertRulesFile: ${rules}\n  webhook: {url: "http://127.0.0.1:9/hook", secretFile: ${secret}}\n`);
        const options = serverOptionsFromConfig(await loadServerConfig(config));
        expect(options.audit?.alertRules?.map((r) => r.name)).toEqual(['host-changed-by-non-controller']);
        expect(options.audit?.webhook).toEqual({ url: 'http://127.0.0.1:9/hook', secret: 's'.repeat(32) });

        writeFileSync(rules, `rules:\n${RULE.replace(/^  /gm, '').replace('severity: high', 'severity: urgent')}\n`);
        await expect(loadServerConfig(config)).rejects.toThrow(`config file ${config}: audit.alertRulesFile (${rules}) rules[0].severity: must be one of`);
        writeFileSync(rules, 'rules: [ {name: a');
        await expect(loadServerConfig(config)).rejects.toThrow(`audit.alertRulesFile (${rules}): is not valid YAML`);
        rmSync(rules);
        await expect(loadServerConfig(config)).rejects.toThrow(`audit.alertRulesFile: ${rules} cannot be read (ENOENT)`);
        writeFileSync(rules, 'rules: []');
        writeFileSync(secret, 'short\n');
        await expect(loadServerConfig(config)).rejects.toThrow(/audit\.webhook\.secretFile: .* fewer than 16 characters/);
        // A file read without loadServerConfig must not be silently ignored.
        expect(() => serverOptionsFromConfig(parseServerConfig(`audit: {alertRulesFile: ${rules}}`, 'x.yaml'))).toThrow(/read by loadServerConfig/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});
