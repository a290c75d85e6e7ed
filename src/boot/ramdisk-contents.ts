// What goes into the agent's initramfs, read from the installed Debian packages: busybox as the
// userland, the Node runtime and the programs the agent runs with the shared libraries `ldd`
// names, the kernel modules of RAMDISK_MODULE_GROUPS, the CA certificates, the bundled agent
// and /init. The result is a list of cpio entries; writeCpioNewc puts them in canonical order.
import { execFileSync } from 'node:child_process';
import { readFileSync, realpathSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { CpioEntry } from './cpio-newc.js';
import { initScript, RAMDISK_PATHS } from './init-script.js';
import { RAMDISK_MODULE_GROUPS, readModuleUncompressed, selectModules, type InstalledKernel, type ModuleSelection } from './kernel-modules.js';
import { RAMDISK_PROGRAMS, systemProgram, type RamdiskSources } from './ramdisk-prerequisites.js';

export class RamdiskInputError extends Error {}

/** Shared libraries of an ELF program, as the dynamic loader would find them here (none for a static one). */
export function sharedLibraries(program: string): string[] {
  let out: string;
  try {
    out = execFileSync('ldd', [program], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: '/usr/bin:/bin', LC_ALL: 'C' } });
  } catch (err) {
    const text = `${(err as { stdout?: string }).stdout ?? ''}${(err as { stderr?: string }).stderr ?? ''}`;
    if (/not a dynamic executable|statically linked/.test(text)) return [];
    throw new RamdiskInputError(`ldd ${program} failed: ${text.trim() || (err as Error).message}`);
  }
  if (/statically linked/.test(out)) return [];
  const libs: string[] = [];
  for (const line of out.split('\n')) {
    const missing = /^\s*(\S+) => not found/.exec(line);
    if (missing) throw new RamdiskInputError(`${program} needs ${missing[1]}, which is not installed (reinstall the package of ${basename(program)})`);
    const m = /=> (\/\S+)/.exec(line) ?? /^\s*(\/\S+) \(0x/.exec(line);
    if (m) libs.push(m[1]!);
  }
  return libs;
}

export interface RamdiskContents {
  entries: CpioEntry[];
  modules: ModuleSelection;
  /** Files taken from the system, for the manifest (to name their packages). */
  systemFiles: string[];
}

const rel = (absolute: string) => absolute.replace(/^\/+/, '');

export function ramdiskContents(opts: { sources: RamdiskSources; kernel: InstalledKernel; agentBundle: Buffer; label: string }): RamdiskContents {
  const { sources, kernel } = opts;
  const entries: CpioEntry[] = [];
  const libraries = new Set<string>();
  const systemFiles: string[] = [];
  const readSystemFile = (path: string): Buffer => {
    systemFiles.push(path);
    try {
      return readFileSync(path);
    } catch (err) {
      throw new RamdiskInputError(`cannot read ${path}: ${(err as Error).message}`);
    }
  };
  const addProgram = (path: string, at: string) => {
    entries.push({ path: at, type: 'file', data: readSystemFile(path), mode: 0o755 });
    for (const lib of sharedLibraries(path)) libraries.add(lib);
  };

  addProgram(sources.busybox, 'bin/busybox');
  addProgram(sources.node, 'usr/bin/node');
  for (const { name, pkg } of RAMDISK_PROGRAMS) {
    const path = systemProgram(name, sources);
    if (!path) throw new RamdiskInputError(`${name} is not installed (apt-get install ${pkg})`);
    addProgram(path, `usr/bin/${name}`);
  }
  // Each library at the path the loader looks for it (the program's interpreter is one of them).
  for (const lib of [...libraries].sort()) entries.push({ path: rel(lib), type: 'file', data: readSystemFile(lib), mode: 0o755 });

  const modules = selectModules(kernel.modulesDir, RAMDISK_MODULE_GROUPS.flatMap((g) => g.modules));
  for (const file of modules.files) {
    systemFiles.push(join(kernel.modulesDir, file));
    entries.push({ path: `${RAMDISK_PATHS.moduleDir}/${basename(file).replace(/\.(xz|zst)$/, '')}`, type: 'file', data: readModuleUncompressed(join(kernel.modulesDir, file)) });
  }
  const loadOrder = modules.files.map((f) => basename(f).replace(/\.(xz|zst)$/, ''));
  entries.push({ path: RAMDISK_PATHS.moduleLoadOrder, type: 'file', data: Buffer.from(`${loadOrder.join('\n')}\n`) });

  entries.push({ path: RAMDISK_PATHS.caBundle, type: 'file', data: readSystemFile(sources.caBundle) });
  entries.push({ path: RAMDISK_PATHS.agent, type: 'file', data: opts.agentBundle });
  entries.push({ path: RAMDISK_PATHS.version, type: 'file', data: Buffer.from(`${opts.label}\n`) });
  entries.push({ path: 'init', type: 'file', data: Buffer.from(initScript()), mode: 0o755 });
  for (const dir of ['bin', 'dev', 'proc', 'sys', 'run', 'tmp', 'root', 'mnt']) {
    if (!entries.some((e) => e.path === dir)) entries.push({ path: dir, type: 'dir' });
  }
  // The kernel opens /dev/console for /init before devtmpfs is mounted: without this node
  // the script's early output goes nowhere.
  entries.push({ path: 'dev/console', type: 'chardev', major: 5, minor: 1 });
  return { entries, modules, systemFiles };
}

/** Debian package and version of each file, e.g. { "qemu-utils": "1:7.2+dfsg-7" } (empty without dpkg). */
export function packagesOf(files: string[]): Record<string, string> {
  const packages = new Set<string>();
  // With merged /usr, dpkg knows a library under /lib or /usr/lib, whichever its package
  // shipped: ask for both spellings and the symlink's target.
  const spellings = new Set<string>();
  for (const file of files) {
    spellings.add(file);
    spellings.add(file.startsWith('/usr/') ? file.slice(4) : `/usr${file}`);
    try {
      spellings.add(realpathSync(file));
    } catch {
      // gone: dpkg will not know it either
    }
  }
  try {
    const out = execFileSync('dpkg-query', ['-S', ...[...spellings].sort()], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 16 * 1024 * 1024 });
    for (const line of out.split('\n')) {
      const colon = line.indexOf(': ');
      if (colon > 0) for (const p of line.slice(0, colon).split(', ')) packages.add(p.split(':')[0]!.trim());
    }
  } catch (err) {
    // dpkg-query exits 1 when some file belongs to no package (e.g. a Node not from a .deb);
    // what it printed for the others still counts.
    const out = (err as { stdout?: string }).stdout ?? '';
    for (const line of out.split('\n')) {
      const colon = line.indexOf(': ');
      if (colon > 0) for (const p of line.slice(0, colon).split(', ')) packages.add(p.split(':')[0]!.trim());
    }
  }
  const versions: Record<string, string> = {};
  if (packages.size === 0) return versions;
  try {
    const out = execFileSync('dpkg-query', ['-W', '-f=${Package} ${Version}\\n', ...[...packages].sort()], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    for (const line of out.split('\n')) {
      const [name, version] = line.split(' ');
      if (name && version) versions[name] = version;
    }
  } catch {
    // versions unknown: the manifest lists none
  }
  return versions;
}
