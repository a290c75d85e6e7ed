// `ingot ramdisk build`: the agent's kernel, initramfs and boot medium template, from the
// installed Debian packages and this checkout's agent, into the ramdisk store (ramdisk-store.ts).
// Same inputs, same digest: the cpio is canonical (cpio-newc.ts), gzip carries no time or
// name, the bundle depends only on the sources.
import { createHash } from 'node:crypto';
import { copyFileSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { buildBootIsoTemplate } from './agent-boot-iso.js';
import { bundleAgent } from './agent-bundle.js';
import { writeCpioNewc } from './cpio-newc.js';
import { newestInstalledKernel } from './kernel-modules.js';
import { packagesOf, ramdiskContents } from './ramdisk-contents.js';
import { aptGetInstallFor, missingPrerequisites, systemSources, type RamdiskSources } from './ramdisk-prerequisites.js';
import { commitRamdisk, newScratchDir, RAMDISK_FILES, type StoredRamdisk } from './ramdisk-store.js';

export class RamdiskBuildError extends Error {}

/** Kernel command line: serial console last, so /dev/console (what /init writes) is the serial port. */
export const RAMDISK_CMDLINE = 'console=tty0 console=ttyS0,115200 quiet panic=30';

export interface RamdiskBuildOptions {
  dataDir: string;
  sources?: RamdiskSources;
  /** Progress lines for the CLI. */
  progress?: (line: string) => void;
}

export function ramdiskDigest(kernel: Buffer, initramfs: Buffer): string {
  const hash = createHash('sha256');
  for (const [name, data] of [['vmlinuz', kernel], ['initramfs', initramfs]] as const) {
    hash.update(`${name} ${data.length}\n`);
    hash.update(data);
  }
  return hash.digest('hex');
}

/** This checkout's version, from its package.json (src/boot or dist/src/boot, whichever runs). */
function ingotVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++, dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'ingot' && pkg.version) return pkg.version;
    } catch {
      // not here: one level up
    }
  }
  return 'unknown';
}

export async function buildRamdisk(opts: RamdiskBuildOptions): Promise<StoredRamdisk> {
  const sources = opts.sources ?? systemSources();
  const progress = opts.progress ?? (() => {});
  const missing = missingPrerequisites(sources);
  if (missing.length > 0) {
    throw new RamdiskBuildError(`the ramdisk build needs ${missing.map((m) => `${m.what} (${m.pkg})`).join(', ')}; install them with: ${aptGetInstallFor(missing)}`);
  }
  const kernel = newestInstalledKernel(sources.bootDir, sources.modulesRoot)!;
  // The scratch directory first: an unwritable data directory fails before minutes of work.
  let scratch: string;
  try {
    scratch = newScratchDir(opts.dataDir);
  } catch (err) {
    throw new RamdiskBuildError(`cannot write the ramdisk store in ${opts.dataDir}: ${(err as Error).message}`);
  }
  try {
    progress(`bundling the agent`);
    const agentBundle = await bundleAgent();
    const version = ingotVersion();
    progress(`collecting files (kernel ${kernel.version})`);
    const contents = ramdiskContents({ sources, kernel, agentBundle, label: `ingot agent ramdisk ${version}, kernel ${kernel.version}` });
    const cpio = writeCpioNewc(contents.entries);
    progress(`compressing ${(cpio.length / 1048576).toFixed(1)} MiB`);
    const initramfs = gzipSync(cpio, { level: 9 });
    const kernelImage = readFileSync(kernel.image);
    const digest = ramdiskDigest(kernelImage, initramfs);

    writeFileSync(join(scratch, RAMDISK_FILES.initramfs), initramfs);
    copyFileSync(kernel.image, join(scratch, RAMDISK_FILES.kernel));
    progress('building the boot medium template (xorriso)');
    const template = buildBootIsoTemplate(join(scratch, 'iso'), {
      efiStub: sources.efiStub,
      kernel: join(scratch, RAMDISK_FILES.kernel),
      initramfs: join(scratch, RAMDISK_FILES.initramfs),
      cmdline: RAMDISK_CMDLINE,
    });
    const iso = readFileSync(template.path);
    writeFileSync(join(scratch, RAMDISK_FILES.bootIso), iso);
    rmSync(join(scratch, 'iso'), { recursive: true, force: true });
    const manifest = {
      digest,
      kernelVersion: kernel.version,
      cmdline: RAMDISK_CMDLINE,
      compression: 'gzip' as const,
      sizes: { kernel: kernelImage.length, initramfs: initramfs.length, initramfsUncompressed: cpio.length, bootIso: iso.length },
      bootIsoSha256: createHash('sha256').update(iso).digest('hex'),
      bootIsoConfig: { offset: template.configOffset, length: template.configLength },
      modules: { loaded: contents.modules.files.map((f) => f.split('/').pop()!), builtin: contents.modules.builtin, absent: contents.modules.absent },
      packages: packagesOf([...new Set(contents.systemFiles)].sort()),
    };
    if (statSync(join(scratch, RAMDISK_FILES.initramfs)).size !== initramfs.length) throw new RamdiskBuildError('the initramfs was not written completely (is the disk full?)');
    return commitRamdisk(opts.dataDir, scratch, manifest);
  } catch (err) {
    rmSync(scratch, { recursive: true, force: true });
    if (err instanceof RamdiskBuildError) throw err;
    const e = err as NodeJS.ErrnoException & { stderr?: Buffer };
    const detail = e.code === 'ENOSPC' ? 'no space left on the device holding the data directory' : `${e.message}${e.stderr?.length ? `: ${e.stderr.toString().trim()}` : ''}`;
    throw new RamdiskBuildError(`the ramdisk build failed, nothing was stored: ${detail}`);
  }
}
