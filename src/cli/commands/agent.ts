// `ingot agent`: the on-host agent (DESIGN.md "The agent protocol"). It reads its boot
// configuration (agent API URL, CA, one-boot token) from the boot medium or a JSON file, then
// looks itself up, long-polls for commands and runs them until its session ends. On a real
// host it reads /proc, /sys and the block devices; with --machine it runs as a lab machine
// described by a JSON file whose disks are image files.
import type { Command } from 'commander';
import { agentMain } from '../../agent/main.js';
import { CliError } from '../cli-error.js';
import type { CommandContext } from '../context.js';

interface AgentOptions {
  bootConfig?: string;
  bootIso?: string;
  bootMedium?: string;
  machine?: string;
  iMeanItWriteDisks?: boolean;
  disk?: string[];
  networkUp?: boolean;
  backoffMs?: string;
  commandWaitSeconds?: string;
  minRootDiskBytes?: string;
  conversionMinFreeMemoryBytes?: string;
  conversionMemoryLimitBytes?: string;
}

export function registerAgent(program: Command, ctx: CommandContext): void {
  program
    .command('agent')
    .description('run the on-host agent: serve one boot session of the agent API (inspection, deploy, cleaning)')
    .option('--boot-config <file>', 'the boot configuration as JSON (agent API URL, CA, token, host uid, boot id)')
    .option('--boot-iso <file>', 'the boot medium (ISO 9660) holding ingot/boot_config.json')
    .option('--boot-medium <where>', 'the boot medium: a mounted directory, an ISO file, a block device, or auto (probe the block devices for the INGOT_AGENT volume)')
    .option('--machine <file>', 'a lab machine description (JSON: hardware and disk image files) instead of this host')
    .option('--i-mean-it-write-disks', 'allow writing this host\'s real block devices (Linux only)')
    .option('--disk <name...>', 'only these block devices (e.g. sda nvme0n1) are disks for the agent')
    .option('--network-up', 'configure the network first: keep what init set up, else DHCP (boot MAC first)')
    .option('--backoff-ms <initial,max>', 'retry delay after a failed call: first and largest, in ms (default 1000,60000)')
    .option('--command-wait-seconds <n>', 'long-poll wait to ask of the server (default: what lookup says)')
    .option('--min-root-disk-bytes <n>', 'smallest disk a deploy may choose as the root disk')
    .option('--conversion-min-free-memory-bytes <n>', 'free memory qemu-img conversion needs before it starts')
    .option('--conversion-memory-limit-bytes <n>', 'address-space limit for qemu-img conversion')
    .addHelpText('after', '\nWithout a --boot-* option the agent reads INGOT_BOOT_CONFIG (a JSON file) or INGOT_BOOT_MEDIUM (as --boot-medium).\nThe agent exits when its session ends (the server revoked its token) or on Ctrl-C.')
    .action(
      ctx.run(async (opts: AgentOptions) => {
        const args = [
          ...(opts.bootConfig ? ['--boot-config', opts.bootConfig] : []),
          ...(opts.bootIso ? ['--boot-iso', opts.bootIso] : []),
          ...(opts.bootMedium ? ['--boot-medium', opts.bootMedium] : []),
          ...(opts.machine ? ['--machine', opts.machine] : []),
          ...(opts.iMeanItWriteDisks ? ['--i-mean-it-write-disks'] : []),
          ...(opts.disk ?? []).flatMap((d) => ['--disk', d]),
          ...(opts.networkUp ? ['--network-up'] : []),
          ...(opts.backoffMs !== undefined ? ['--backoff-ms', opts.backoffMs] : []),
          ...(opts.commandWaitSeconds !== undefined ? ['--command-wait-seconds', opts.commandWaitSeconds] : []),
          ...(opts.minRootDiskBytes !== undefined ? ['--min-root-disk-bytes', opts.minRootDiskBytes] : []),
          ...(opts.conversionMinFreeMemoryBytes !== undefined ? ['--conversion-min-free-memory-bytes', opts.conversionMinFreeMemoryBytes] : []),
          ...(opts.conversionMemoryLimitBytes !== undefined ? ['--conversion-memory-limit-bytes', opts.conversionMemoryLimitBytes] : []),
        ];
        const stop = new AbortController();
        const onSignal = () => stop.abort();
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
        try {
          let exit;
          try {
            exit = await agentMain(args, stop.signal);
          } catch (err) {
            throw new CliError(`the agent could not start: ${(err as Error).message}`);
          }
          process.stderr.write(`ingot agent: ${exit.reason}: ${exit.message}\n`);
          if (exit.reason === 'refused') process.exitCode = 1;
        } finally {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
        }
      }),
    );
}
