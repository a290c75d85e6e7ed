// The agent's entry on its ramdisk: the one file the ramdisk build bundles (with Node), started
// by the ramdisk's init as
//   node agent.mjs --i-mean-it-write-disks [more `ingot agent` options]
// It differs from `ingot agent` only in its defaults, which suit a freshly booted host: the
// network is brought up first (--network-up) and the boot medium is found by probing the block
// devices (--boot-medium auto) unless INGOT_BOOT_CONFIG, INGOT_BOOT_MEDIUM or a --boot-* option
// says where it is. Writing the disks stays an explicit flag of the init script, so running
// this file by mistake on a workstation erases nothing. It imports no CLI code, so the bundle
// holds only the agent. Exit status: 0 when the session ended, 1 when refused, 2 when it could
// not start (the message says why).
import { pathToFileURL } from 'node:url';
import { agentMain } from './main.js';

/** The arguments `ingot agent` gets on the ramdisk: the defaults first, so the given ones are added to them. */
export function standaloneArgs(argv: string[], env: NodeJS.ProcessEnv): string[] {
  const named = argv.some((a) => /^--boot-(config|medium|iso)(=|$)/.test(a)) || env.INGOT_BOOT_CONFIG || env.INGOT_BOOT_MEDIUM;
  return [...(argv.includes('--network-up') ? [] : ['--network-up']), ...(named ? [] : ['--boot-medium', 'auto']), ...argv];
}

export async function standaloneMain(argv: string[]): Promise<number> {
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const exit = await agentMain(standaloneArgs(argv, process.env), stop.signal);
    process.stderr.write(`ingot agent: ${exit.reason}: ${exit.message}\n`);
    return exit.reason === 'refused' ? 1 : 0;
  } catch (err) {
    process.stderr.write(`ingot agent could not start: ${(err as Error).message}\n`);
    return 2;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await standaloneMain(process.argv.slice(2));
}
