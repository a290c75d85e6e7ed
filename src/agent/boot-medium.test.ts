// Where the agent finds its boot configuration: a JSON file, a mounted medium directory, an
// ISO file read in place, and which source the flags and the environment select.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildBootConfigIso } from '../images/boot-config-iso.js';
import { buildIso9660 } from '../images/iso9660.js';
import type { BootConfig } from '../model/agent-protocol.js';
import { findBootConfig } from './boot-medium.js';
import { bootConfigSource } from './main.js';
import { standaloneArgs } from './standalone.js';

const config: BootConfig = { apiUrl: 'https://10.0.0.1:7386', token: `ingotagent_${'A'.repeat(43)}`, hostUid: 'uid-1', bootId: 'boot-1', bootMacAddress: '52:54:00:12:34:56' };
const dir = mkdtempSync(join(tmpdir(), 'ingot-boot-medium-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('findBootConfig', () => {
  it('reads the JSON file, a mounted medium directory and an ISO file alike', async () => {
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
    mkdirSync(join(dir, 'mnt', 'ingot'), { recursive: true });
    writeFileSync(join(dir, 'mnt', 'ingot', 'boot_config.json'), JSON.stringify(config));
    writeFileSync(join(dir, 'medium.iso'), buildBootConfigIso(config));
    expect(await findBootConfig({ file: join(dir, 'config.json') })).toEqual({ config, from: join(dir, 'config.json') });
    expect((await findBootConfig({ medium: join(dir, 'mnt') })).config).toEqual(config);
    expect((await findBootConfig({ medium: join(dir, 'medium.iso') })).config).toEqual(config);
  });

  it('refuses a medium without the file, and a configuration that is not valid, saying what', async () => {
    writeFileSync(join(dir, 'other.iso'), buildIso9660([{ path: 'readme.txt', data: Buffer.from('hi') }], { volumeId: 'OTHER' }));
    await expect(findBootConfig({ medium: join(dir, 'other.iso') })).rejects.toThrow(/has no ingot\/boot_config.json/);
    writeFileSync(join(dir, 'bad.json'), JSON.stringify({ ...config, token: 'short' }));
    await expect(findBootConfig({ file: join(dir, 'bad.json') })).rejects.toThrow(/not valid: \/token/);
  });
});

describe('choosing the source', () => {
  it('flags win; without one, INGOT_BOOT_CONFIG then INGOT_BOOT_MEDIUM; nothing at all is an error naming both ways', () => {
    expect(bootConfigSource({ 'boot-medium': '/dev/sr0' }, { INGOT_BOOT_CONFIG: '/x.json' })).toEqual({ medium: '/dev/sr0' });
    expect(bootConfigSource({}, { INGOT_BOOT_CONFIG: '/x.json', INGOT_BOOT_MEDIUM: '/mnt' })).toEqual({ file: '/x.json' });
    expect(bootConfigSource({}, { INGOT_BOOT_MEDIUM: '/mnt' })).toEqual({ medium: '/mnt' });
    expect(bootConfigSource({ 'boot-medium': 'auto' }, {})).toEqual({ auto: {} });
    expect(() => bootConfigSource({}, {})).toThrow(/--boot-config FILE or --boot-medium .*INGOT_BOOT_CONFIG/);
    expect(() => bootConfigSource({ 'boot-config': '/a', 'boot-iso': '/b' }, {})).toThrow(/only one of/);
  });

  it('the ramdisk entry brings the network up and probes for the medium unless told where it is', () => {
    expect(standaloneArgs(['--i-mean-it-write-disks'], {})).toEqual(['--network-up', '--boot-medium', 'auto', '--i-mean-it-write-disks']);
    expect(standaloneArgs(['--boot-medium=/mnt/cd'], {})).toEqual(['--network-up', '--boot-medium=/mnt/cd']);
    expect(standaloneArgs([], { INGOT_BOOT_CONFIG: '/run/boot_config.json' })).toEqual(['--network-up']);
  });
});
