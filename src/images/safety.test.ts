// The decision table of checkImageSafety over synthetic inspections; real images are in
// hostile-images.test.ts.
import { describe, expect, it } from 'vitest';
import type { Finding, Inspection } from './format-inspector.js';
import { ImageRefused } from './image-refused.js';
import { checkImageSafety, qemuFormatName } from './safety.js';

function inspection(format: Inspection['format'], findings: Finding[] = []): Inspection {
  return { format, details: {}, findings, safetyProblems: findings.map((f) => f.message) } as unknown as Inspection;
}

const backing: Finding = { reason: 'backing-file', message: 'has a backing file' };
const partial: Finding = { reason: 'incomplete-inspection', message: 'not all seen' };

function outcome(i: Inspection, opts: Parameters<typeof checkImageSafety>[1]): string {
  try {
    const ok = checkImageSafety(i, opts);
    return `ok:${ok.qemuFormat}:${ok.streamsAsRaw ? 'stream' : 'convert'}`;
  } catch (err) {
    if (!(err instanceof ImageRefused)) throw err;
    return err.reason;
  }
}

describe('checkImageSafety', () => {
  it.each([
    ['raw', 'raw', undefined, 'ok:raw:stream'],
    ['gpt', 'raw', undefined, 'ok:raw:stream'],
    ['mbr', 'raw', undefined, 'ok:raw:stream'],
    ['qcow2', 'qcow2', undefined, 'ok:qcow2:convert'],
    ['qcow2', undefined, undefined, 'ok:qcow2:convert'],
    ['gpt', 'qcow2', undefined, 'format-mismatch'],
    ['qcow2', 'raw', undefined, 'format-mismatch'],
    ['gpt', 'gpt', undefined, 'format-mismatch'],
    ['raw', 'raw', ['qcow2'], 'format-not-permitted'],
    ['gpt', 'raw', ['qcow2'], 'format-not-permitted'],
    ['vhdx', undefined, undefined, 'format-not-permitted'],
    ['vhd', 'vhd', ['vhd'], 'ok:vpc:convert'],
    ['iso', 'raw', undefined, 'format-not-permitted'],
    ['iso', undefined, ['iso'], 'ok:raw:stream'],
  ] as const)('%s declared %s, permitted %j → %s', (format, declared, permitted, expected) => {
    expect(outcome(inspection(format), { declaredFormat: declared, ...(permitted ? { permittedFormats: permitted } : {}) })).toBe(expected);
  });

  it('refuses QED before anything else, even when declared and permitted', () => {
    expect(outcome(inspection('qed', [{ reason: 'qed-refused', message: 'no' }]), { declaredFormat: 'qed', permittedFormats: ['qed'] })).toBe('qed-refused');
  });

  it('reports the first finding and counts the rest', () => {
    const second: Finding = { reason: 'encrypted', message: 'encrypted' };
    try {
      checkImageSafety(inspection('qcow2', [backing, second]), { declaredFormat: 'qcow2' });
      expect.unreachable();
    } catch (err) {
      expect(err).toMatchObject({ reason: 'backing-file', message: 'has a backing file (and 1 more problem: encrypted)' });
    }
  });

  it('refuses a partial inspection unless the caller will check the rest itself', () => {
    expect(outcome(inspection('gpt', [partial]), { declaredFormat: 'raw' })).toBe('incomplete-inspection');
    expect(outcome(inspection('gpt', [partial]), { declaredFormat: 'raw', allowPartialInspection: true })).toBe('ok:raw:stream');
    expect(outcome(inspection('gpt', [partial, backing]), { declaredFormat: 'raw', allowPartialInspection: true })).toBe('backing-file');
  });

  it('says what the bytes are and how to fix a mismatch', () => {
    expect(() => checkImageSafety(inspection('qcow2'), { declaredFormat: 'raw' })).toThrow(/spec.image.format is "raw" but the image's bytes are qcow2: fix spec.image.format to "qcow2"/);
    expect(() => checkImageSafety(inspection('iso'), { declaredFormat: 'raw' })).toThrow(/add "iso" to the permitted image formats/);
  });

  it('maps formats to qemu-img names', () => {
    expect(['raw', 'gpt', 'mbr', 'iso', 'qcow2', 'vhd', 'vmdk'].map((f) => qemuFormatName(f as never))).toEqual(['raw', 'raw', 'raw', 'raw', 'qcow2', 'vpc', 'vmdk']);
  });
});
