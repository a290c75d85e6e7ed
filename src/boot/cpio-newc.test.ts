import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readCpioNewc, writeCpioNewc, type CpioEntry } from './cpio-newc.js';

const sample: CpioEntry[] = [
  { path: 'usr/bin/tool', type: 'file', data: Buffer.from('#!/bin/sh\necho hi\n'), mode: 0o755 },
  { path: 'init', type: 'file', data: Buffer.from('abc') },
  { path: 'bin/sh', type: 'symlink', target: 'busybox' },
  { path: 'dev/console', type: 'chardev', major: 5, minor: 1 },
  { path: 'lib-x', type: 'dir' },
  { path: 'lib/a', type: 'file', data: Buffer.alloc(5, 1) },
];

describe('writeCpioNewc', () => {
  it('gives the same bytes for the same entries in any order', () => {
    const a = writeCpioNewc(sample);
    const b = writeCpioNewc([...sample].reverse());
    expect(b.equals(a)).toBe(true);
  });

  it('writes directories before their contents, parents added, times and owners zero', () => {
    const members = readCpioNewc(writeCpioNewc(sample));
    expect(members.map((m) => m.path)).toEqual(['bin', 'bin/sh', 'dev', 'dev/console', 'init', 'lib', 'lib/a', 'lib-x', 'usr', 'usr/bin', 'usr/bin/tool']);
    for (const m of members) expect([m.uid, m.gid, m.mtime]).toEqual([0, 0, 0]);
    expect(members.find((m) => m.path === 'usr/bin/tool')!.mode).toBe(0o100755);
    expect(members.find((m) => m.path === 'init')!.data.toString()).toBe('abc');
  });

  it('is read by GNU cpio as the same tree', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ingot-cpio-'));
    try {
      writeFileSync(join(dir, 'a.cpio'), writeCpioNewc(sample.filter((e) => e.type !== 'chardev')));
      execFileSync('sh', ['-c', 'mkdir out && cd out && cpio -id --quiet < ../a.cpio'], { cwd: dir });
      expect(readFileSync(join(dir, 'out/usr/bin/tool'), 'utf8')).toContain('echo hi');
      expect(statSync(join(dir, 'out/usr/bin/tool')).mode & 0o777).toBe(0o755);
      expect(readlinkSync(join(dir, 'out/bin/sh'))).toBe('busybox');
      expect(statSync(join(dir, 'out/lib-x')).isDirectory()).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses absolute, empty, dot-dot and duplicate paths, and files used as directories', () => {
    for (const path of ['/etc/x', '', 'a/../b', 'a//b', 'a/']) {
      expect(() => writeCpioNewc([{ path, type: 'dir' }])).toThrow(RangeError);
    }
    expect(() => writeCpioNewc([{ path: 'a', type: 'dir' }, { path: 'a', type: 'dir' }])).toThrow(/given twice/);
    expect(() => writeCpioNewc([{ path: 'a', type: 'file', data: Buffer.alloc(1) }, { path: 'a/b', type: 'dir' }])).toThrow(/is a file/);
  });

  it('reading refuses a truncated archive', () => {
    const archive = writeCpioNewc(sample);
    expect(() => readCpioNewc(archive.subarray(0, archive.length - 200))).toThrow(RangeError);
  });
});
