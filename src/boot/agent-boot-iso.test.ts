import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readBootConfigFromIso } from '../images/boot-config-iso.js';
import type { BootConfig } from '../model/agent-protocol.js';
import { buildBootIsoTemplate, CONFIG_SLOT_BYTES, configSlotBytes, hostBootIso, type BootIsoTemplate } from './agent-boot-iso.js';
import { writeCpioNewc } from './cpio-newc.js';
import { newestInstalledKernel } from './kernel-modules.js';
import { aptGetInstallFor, missingPrerequisites, systemSources } from './ramdisk-prerequisites.js';

const missing = missingPrerequisites(systemSources());
if (missing.length > 0 && process.env.CI) throw new Error(`boot medium tests cannot run: ${aptGetInstallFor(missing)}`);
const describeIso = missing.length === 0 ? describe : describe.skip;

const config: BootConfig = {
  apiUrl: 'http://10.0.2.100:7386',
  token: `ingotagent_${'A'.repeat(43)}`,
  hostUid: '6f1c2b8e-0000-4000-8000-000000000001',
  bootId: 'b0a7e1d2-0000-4000-8000-000000000002',
} as BootConfig;

async function streamed(template: BootIsoTemplate, size: number, c: BootConfig): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of hostBootIso(template, size, c)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describeIso('the per-host boot medium', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ingot-boot-iso-'));
  let template: BootIsoTemplate;
  let templateBytes: Buffer;

  beforeAll(() => {
    writeFileSync(join(dir, 'initrd'), writeCpioNewc([{ path: 'init', type: 'file', data: Buffer.from('#!/bin/sh\n'), mode: 0o755 }]));
    template = buildBootIsoTemplate(join(dir, 'build'), { efiStub: systemSources().efiStub, kernel: newestInstalledKernel()!.image, initramfs: join(dir, 'initrd'), cmdline: 'console=ttyS0' });
    templateBytes = readFileSync(template.path);
  }, 120_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('is a UEFI El Torito image whose only difference from the template is the host\'s configuration', async () => {
    const iso = await streamed(template, templateBytes.length, config);
    expect(iso.length).toBe(templateBytes.length);
    expect(iso.subarray(0, template.configOffset).equals(templateBytes.subarray(0, template.configOffset))).toBe(true);
    const after = template.configOffset + CONFIG_SLOT_BYTES;
    expect(iso.subarray(after).equals(templateBytes.subarray(after))).toBe(true);
    writeFileSync(join(dir, 'host.iso'), iso);
    const report = execFileSync('sh', ['-c', 'xorriso -indev "$1" -report_el_torito plain 2>&1', 'sh', join(dir, 'host.iso')], { encoding: 'utf8' });
    expect(report).toMatch(/El Torito boot img\s*:\s*1\s+UEFI\s+y\s+none/);
    expect(report).toContain("Volume id    : 'INGOT_AGENT'");
  });

  it('carries the configuration where Linux (Rock Ridge) and the lab\'s reader find it', async () => {
    const iso = await streamed(template, templateBytes.length, config);
    expect(readBootConfigFromIso(iso)).toEqual(config);
    writeFileSync(join(dir, 'host2.iso'), iso);
    execFileSync('xorriso', ['-osirrox', 'on', '-indev', join(dir, 'host2.iso'), '-extract', '/ingot/boot_config.json', join(dir, 'extracted.json')], { stdio: 'ignore' });
    expect(JSON.parse(readFileSync(join(dir, 'extracted.json'), 'utf8'))).toEqual(config);
    // The template itself carries no configuration an agent would accept.
    expect(() => readBootConfigFromIso(templateBytes)).toThrow(/not valid/);
  });

  it('refuses a configuration larger than the slot', () => {
    expect(() => configSlotBytes({ ...config, caPem: 'x'.repeat(CONFIG_SLOT_BYTES) } as BootConfig)).toThrow(/does not fit/);
  });
});
