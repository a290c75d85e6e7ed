import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bufferReader } from './byte-reader.js';
import { buildBootConfigIso, readBootConfigFromIso } from './boot-config-iso.js';
import { inspectImage } from './format-inspector.js';
import { buildIso9660, readIso9660 } from './iso9660.js';

const token = `ingotagent_${'A'.repeat(43)}`;
const blkid = ['/usr/sbin/blkid', '/sbin/blkid'].find((p) => existsSync(p));

describe('ISO 9660 writer', () => {
  it('writes a config-2 volume whose files read back by their cloud-init names', async () => {
    const userData = Buffer.from('#cloud-config\nhostname: n1\n');
    const big = Buffer.alloc(5000, 7);
    const iso = buildIso9660(
      [
        { path: 'openstack/latest/meta_data.json', data: Buffer.from('{"uuid":"u1"}') },
        { path: 'openstack/latest/user_data', data: userData },
        { path: 'openstack/latest/network_data.json', data: big },
        { path: 'openstack/content/0000', data: Buffer.alloc(0) },
      ],
      { volumeId: 'config-2', date: new Date(Date.UTC(2026, 0, 2)) },
    );
    expect(iso.length % 2048).toBe(0);
    const volume = readIso9660(iso);
    expect(volume.volumeId).toBe('config-2');
    expect(volume.list()).toEqual(['openstack/content/0000', 'openstack/latest/meta_data.json', 'openstack/latest/network_data.json', 'openstack/latest/user_data']);
    expect(volume.readFile('openstack/latest/user_data')?.equals(userData)).toBe(true);
    expect(volume.readFile('OPENSTACK/LATEST/NETWORK_DATA.JSON;1')?.equals(big)).toBe(true);
    expect(volume.readFile('openstack/content/0000')?.length).toBe(0);
    expect(volume.readFile('openstack/latest/missing')).toBeUndefined();
    // The image inspector sees an ISO with no unsafe findings.
    const inspection = await inspectImage(bufferReader(iso));
    expect(inspection.format).toBe('iso');
    expect(inspection.findings).toEqual([]);
  });

  it.skipIf(!blkid)('is recognised by util-linux blkid as iso9660 labelled config-2', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ingot-iso-'));
    try {
      const file = join(dir, 'cd.iso');
      writeFileSync(file, buildIso9660([{ path: 'openstack/latest/meta_data.json', data: Buffer.from('{}') }], { volumeId: 'config-2' }));
      const out = execFileSync(blkid!, ['-p', '-o', 'export', file], { encoding: 'utf8' });
      expect(out).toMatch(/^TYPE=iso9660$/m);
      expect(out).toMatch(/^LABEL=config-2$/m);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses names ISO 9660 cannot hold and files given twice', () => {
    expect(() => buildIso9660([{ path: 'a/b-c.json', data: Buffer.alloc(1) }], { volumeId: 'x' })).toThrow(/A-Z 0-9 _/);
    expect(() => buildIso9660([{ path: 'A.TXT', data: Buffer.alloc(1) }, { path: 'a.txt', data: Buffer.alloc(1) }], { volumeId: 'x' })).toThrow(/twice/);
  });

  it('rejects malformed images without reading outside them', () => {
    expect(() => readIso9660(Buffer.alloc(100))).toThrow(/not a readable ISO 9660 image/);
    const iso = buildIso9660([{ path: 'f.txt', data: Buffer.from('x') }], { volumeId: 'x' });
    const broken = Buffer.from(iso);
    broken.writeUInt32LE(0xffffff, 16 * 2048 + 156 + 2); // root extent far past the end
    expect(() => readIso9660(broken)).toThrow(/past the end/);
  });
});

describe('boot configuration medium', () => {
  it('round-trips the boot configuration and validates it', () => {
    const config = { apiUrl: 'https://10.0.0.1:7386', caPem: '-----BEGIN CERTIFICATE-----\n…', token, hostUid: 'h-1', bootId: 'b-1' };
    const iso = buildBootConfigIso(config);
    expect(readBootConfigFromIso(iso)).toEqual(config);
    const bad = buildIso9660([{ path: 'ingot/boot_config.json', data: Buffer.from(JSON.stringify({ ...config, token: 'ingot_x' })) }], { volumeId: 'INGOT_AGENT' });
    expect(() => readBootConfigFromIso(bad)).toThrow(/not valid: \/token/);
    expect(() => readBootConfigFromIso(buildIso9660([{ path: 'x.txt', data: Buffer.alloc(1) }], { volumeId: 'v' }))).toThrow(/has no ingot\/boot_config.json/);
  });
});
