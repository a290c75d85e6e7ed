import { describe, expect, it } from 'vitest';
import { parseServerConfig, serverOptionsFromConfig } from './server-config.js';

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
});
