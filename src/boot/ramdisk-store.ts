// Where built ramdisks live: DATA_DIR/ramdisk/builds/<id>/ (vmlinuz, initramfs.img,
// agent-boot.iso, manifest.json), and DATA_DIR/ramdisk/current.json naming the one the server
// serves. A build is written in a scratch directory beside them and renamed into place only
// when complete, then current.json is replaced by rename: a reader sees the old ramdisk or the
// new one, never half of one, and a failed build leaves nothing where the server looks.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BootIsoTemplate } from './agent-boot-iso.js';

export const RAMDISK_FILES = { kernel: 'vmlinuz', initramfs: 'initramfs.img', bootIso: 'agent-boot.iso', manifest: 'manifest.json' } as const;

export interface RamdiskManifest {
  /** sha256 over the kernel and the initramfs (see ramdiskDigest). */
  digest: string;
  kernelVersion: string;
  cmdline: string;
  compression: 'gzip';
  sizes: { kernel: number; initramfs: number; initramfsUncompressed: number; bootIso: number };
  bootIsoSha256: string;
  /** Where the boot medium's configuration slot is in agent-boot.iso. */
  bootIsoConfig: { offset: number; length: number };
  modules: { loaded: string[]; builtin: string[]; absent: string[] };
  /** Debian packages the files came from, with their versions. */
  packages: Record<string, string>;
}

export interface StoredRamdisk {
  dir: string;
  kernel: string;
  initramfs: string;
  bootIso: BootIsoTemplate & { size: number };
  manifest: RamdiskManifest;
}

export const ramdiskRoot = (dataDir: string) => join(dataDir, 'ramdisk');

/** A scratch directory for one build, inside the store so the final rename stays on one filesystem. */
export function newScratchDir(dataDir: string): string {
  const dir = join(ramdiskRoot(dataDir), `.build-${randomBytes(6).toString('hex')}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

/**
 * Moves a finished build from `scratch` into the store and makes it current. The scratch
 * directory must hold the RAMDISK_FILES; it is gone afterwards.
 */
export function commitRamdisk(dataDir: string, scratch: string, manifest: RamdiskManifest): StoredRamdisk {
  writeFileSync(join(scratch, RAMDISK_FILES.manifest), `${JSON.stringify(manifest, null, 2)}\n`);
  const id = manifest.digest.slice(0, 16);
  const builds = join(ramdiskRoot(dataDir), 'builds');
  mkdirSync(builds, { recursive: true });
  const dir = join(builds, id);
  if (existsSync(dir)) {
    // The same inputs were built before: the files are the same, keep the stored ones.
    rmSync(scratch, { recursive: true, force: true });
  } else {
    renameSync(scratch, dir);
  }
  const currentTmp = join(ramdiskRoot(dataDir), `.current-${randomBytes(6).toString('hex')}.json`);
  writeFileSync(currentTmp, `${JSON.stringify({ build: id })}\n`);
  renameSync(currentTmp, join(ramdiskRoot(dataDir), 'current.json'));
  const stored = currentRamdisk(dataDir);
  if (!stored) throw new Error(`the ramdisk store in ${ramdiskRoot(dataDir)} did not keep the build`);
  return stored;
}

/** The ramdisk the server serves, or undefined when none was built (or the store is damaged). */
export function currentRamdisk(dataDir: string): StoredRamdisk | undefined {
  try {
    const { build } = JSON.parse(readFileSync(join(ramdiskRoot(dataDir), 'current.json'), 'utf8')) as { build?: unknown };
    if (typeof build !== 'string' || !/^[0-9a-f]{16}$/.test(build)) return undefined;
    const dir = join(ramdiskRoot(dataDir), 'builds', build);
    const manifest = JSON.parse(readFileSync(join(dir, RAMDISK_FILES.manifest), 'utf8')) as RamdiskManifest;
    const bootIsoPath = join(dir, RAMDISK_FILES.bootIso);
    return {
      dir,
      kernel: join(dir, RAMDISK_FILES.kernel),
      initramfs: join(dir, RAMDISK_FILES.initramfs),
      bootIso: { path: bootIsoPath, configOffset: manifest.bootIsoConfig.offset, configLength: manifest.bootIsoConfig.length, size: statSync(bootIsoPath).size },
      manifest,
    };
  } catch {
    return undefined;
  }
}
