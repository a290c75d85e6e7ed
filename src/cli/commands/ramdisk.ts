// `ingot ramdisk build`: builds the agent's kernel, initramfs and boot medium template from the
// installed Debian packages into DATA_DIR/ramdisk (src/boot, docs/ramdisk.md); `ingot server`
// with the same data directory boots hosts with it. `ingot ramdisk show` prints the current one.
// Both work on local files only; no server is involved.
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { RamdiskBuildError, buildRamdisk } from '../../boot/ramdisk-build.js';
import { BundleError } from '../../boot/agent-bundle.js';
import { RamdiskInputError } from '../../boot/ramdisk-contents.js';
import { currentRamdisk, type StoredRamdisk } from '../../boot/ramdisk-store.js';
import { CliError } from '../cli-error.js';
import type { CommandContext } from '../context.js';
import { parseOutputFormat, render } from '../output.js';

const mib = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MiB`;

function describe(r: StoredRamdisk, seconds?: number): string {
  const m = r.manifest;
  return [
    `kernel     ${r.kernel}  ${mib(m.sizes.kernel)}  (Linux ${m.kernelVersion})`,
    `initramfs  ${r.initramfs}  ${mib(m.sizes.initramfs)} ${m.compression} (${mib(m.sizes.initramfsUncompressed)} unpacked)`,
    `boot ISO   ${r.bootIso.path}  ${mib(m.sizes.bootIso)}  (template: each host's medium adds its configuration)`,
    `digest     sha256:${m.digest}`,
    `modules    ${m.modules.loaded.length} files${m.modules.absent.length ? `; not in this kernel: ${m.modules.absent.join(', ')}` : ''}`,
    ...(seconds !== undefined ? [`built in   ${seconds.toFixed(1)} s`] : []),
    '',
  ].join('\n');
}

function asJson(r: StoredRamdisk, seconds?: number) {
  return { kernel: r.kernel, initramfs: r.initramfs, bootIso: r.bootIso.path, ...r.manifest, ...(seconds !== undefined ? { buildSeconds: Number(seconds.toFixed(1)) } : {}) };
}

export function registerRamdisk(program: Command, ctx: CommandContext): void {
  const ramdisk = program.command('ramdisk').description('the agent\'s boot files: kernel, initramfs and the bootable per-host medium');
  ramdisk
    .command('build')
    .description('build the agent ramdisk from the installed Debian packages into the data directory (reproducible; prints paths, sizes, digest)')
    .option('--data-dir <dir>', 'the server\'s data directory (the ramdisk goes in DIR/ramdisk)', './.ingot')
    .option('-o, --output <format>', 'output format: table (default), json, yaml')
    .option('-q, --quiet', 'no progress lines')
    .action(
      ctx.run(async (opts: { dataDir: string; output?: string; quiet?: boolean }) => {
        const format = parseOutputFormat(opts.output);
        const started = process.hrtime.bigint();
        let built: StoredRamdisk;
        try {
          built = await buildRamdisk({ dataDir: resolve(opts.dataDir), ...(opts.quiet ? {} : { progress: (line: string) => ctx.err.write(`ingot ramdisk: ${line}\n`) }) });
        } catch (err) {
          if (err instanceof RamdiskBuildError || err instanceof RamdiskInputError || err instanceof BundleError) throw new CliError(err.message);
          throw err;
        }
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        ctx.out.write(render(asJson(built, seconds), format, () => describe(built, seconds)));
      }),
    );
  ramdisk
    .command('show')
    .description('print the ramdisk the server in this data directory boots hosts with')
    .option('--data-dir <dir>', 'the server\'s data directory', './.ingot')
    .option('-o, --output <format>', 'output format: table (default), json, yaml')
    .action(
      ctx.run(async (opts: { dataDir: string; output?: string }) => {
        const format = parseOutputFormat(opts.output);
        const current = currentRamdisk(resolve(opts.dataDir));
        if (!current) throw new CliError(`no ramdisk in ${resolve(opts.dataDir)}: run \`ingot ramdisk build --data-dir ${opts.dataDir}\``);
        ctx.out.write(render(asJson(current), format, () => describe(current)));
      }),
    );
}
