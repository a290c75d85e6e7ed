// `ingot agent` entry point, called by the CLI (src/cli) with the arguments after `agent`, and
// by the ramdisk's entry (standalone.ts). Where the boot configuration comes from, exactly one of
// (boot-medium.ts; without a flag, the environment's INGOT_BOOT_CONFIG or INGOT_BOOT_MEDIUM):
//   --boot-config FILE                     the JSON file itself
//   --boot-medium DIR|ISO|DEVICE|auto      a mounted medium, an ISO file, a block device, or
//                                          auto: probe the block devices for the INGOT_AGENT volume
//   --boot-iso FILE                        the same as --boot-medium FILE
// and
//   --machine FILE                         a lab machine description (file-machine.ts); absent: this Linux host
//   --i-mean-it-write-disks                allow writing real block devices (Linux only)
//   --disk NAME (repeatable)               only these block devices are disks for the agent
//   --network-up                           configure the network first (network-up.ts), DHCP on the boot MAC first
// and the optional tuning a slow link or a small test machine wants (agentTuningArgs):
//   --backoff-ms INITIAL,MAX  --command-wait-seconds N  --min-root-disk-bytes N
//   --conversion-min-free-memory-bytes N  --conversion-memory-limit-bytes N
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { runAgent, type AgentExit, type AgentLog, type RunAgentOptions } from './agent.js';
import { findBootConfig, type BootConfigSource } from './boot-medium.js';
import { createFileMachine, loadMachineDescription } from './file-machine.js';
import { createLinuxMachine } from './linux-machine.js';
import { bringUpNetwork } from './network-up.js';

/** The agent settings that can be given on the command line (all optional; defaults in agent.ts). */
export interface AgentTuning {
  backoff?: { initialMs: number; maxMs: number };
  commandWaitSeconds?: number;
  minRootDiskBytes?: number;
  conversion?: { minFreeMemoryBytes?: number; memoryLimitBytes?: number };
}

/** The command-line form of `tuning`, as agentMain parses it back. */
export function agentTuningArgs(tuning: AgentTuning): string[] {
  const args: string[] = [];
  if (tuning.backoff) args.push('--backoff-ms', `${tuning.backoff.initialMs},${tuning.backoff.maxMs}`);
  if (tuning.commandWaitSeconds !== undefined) args.push('--command-wait-seconds', String(tuning.commandWaitSeconds));
  if (tuning.minRootDiskBytes !== undefined) args.push('--min-root-disk-bytes', String(tuning.minRootDiskBytes));
  if (tuning.conversion?.minFreeMemoryBytes !== undefined) args.push('--conversion-min-free-memory-bytes', String(tuning.conversion.minFreeMemoryBytes));
  if (tuning.conversion?.memoryLimitBytes !== undefined) args.push('--conversion-memory-limit-bytes', String(tuning.conversion.memoryLimitBytes));
  return args;
}

function wholeNumber(flag: string, text: string, max: number): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n > max) throw new RangeError(`--${flag} ${text}: use a whole number from 0 to ${max}`);
  return n;
}

export function parseAgentTuning(values: Record<string, unknown>): AgentTuning {
  const tuning: AgentTuning = {};
  const text = (k: string) => (typeof values[k] === 'string' ? (values[k] as string) : undefined);
  const backoff = text('backoff-ms');
  if (backoff !== undefined) {
    const parts = backoff.split(',');
    if (parts.length !== 2) throw new RangeError(`--backoff-ms ${backoff}: use INITIAL,MAX in milliseconds, e.g. 1000,60000`);
    const initialMs = wholeNumber('backoff-ms', parts[0]!, 3_600_000);
    const maxMs = wholeNumber('backoff-ms', parts[1]!, 3_600_000);
    if (initialMs < 1 || maxMs < initialMs) throw new RangeError(`--backoff-ms ${backoff}: INITIAL must be at least 1 and MAX at least INITIAL`);
    tuning.backoff = { initialMs, maxMs };
  }
  const wait = text('command-wait-seconds');
  if (wait !== undefined) tuning.commandWaitSeconds = wholeNumber('command-wait-seconds', wait, 300);
  const minRoot = text('min-root-disk-bytes');
  if (minRoot !== undefined) tuning.minRootDiskBytes = wholeNumber('min-root-disk-bytes', minRoot, Number.MAX_SAFE_INTEGER);
  const minFree = text('conversion-min-free-memory-bytes');
  const limit = text('conversion-memory-limit-bytes');
  if (minFree !== undefined || limit !== undefined) {
    tuning.conversion = {
      ...(minFree !== undefined ? { minFreeMemoryBytes: wholeNumber('conversion-min-free-memory-bytes', minFree, Number.MAX_SAFE_INTEGER) } : {}),
      ...(limit !== undefined ? { memoryLimitBytes: wholeNumber('conversion-memory-limit-bytes', limit, Number.MAX_SAFE_INTEGER) } : {}),
    };
  }
  return tuning;
}

/** Where the boot configuration comes from: the flags, else INGOT_BOOT_CONFIG / INGOT_BOOT_MEDIUM. */
export function bootConfigSource(values: { 'boot-config'?: string; 'boot-iso'?: string; 'boot-medium'?: string }, env: NodeJS.ProcessEnv, log?: AgentLog): BootConfigSource {
  const given = [values['boot-config'], values['boot-iso'], values['boot-medium']].filter((v) => v !== undefined);
  if (given.length > 1) throw new Error('give only one of --boot-config FILE, --boot-medium DIR|ISO|DEVICE|auto or --boot-iso FILE');
  const file = values['boot-config'] ?? (given.length === 0 ? env.INGOT_BOOT_CONFIG : undefined);
  if (file) return { file };
  const medium = values['boot-medium'] ?? values['boot-iso'] ?? env.INGOT_BOOT_MEDIUM;
  if (!medium) throw new Error('no boot configuration: give --boot-config FILE or --boot-medium DIR|ISO|DEVICE|auto (or set INGOT_BOOT_CONFIG or INGOT_BOOT_MEDIUM)');
  return medium === 'auto' ? { auto: { ...(log ? { log: log.info } : {}) } } : { medium };
}

/** Brings the network up, retrying until it works or `signal` aborts: a cable or a DHCP server may come late. */
async function networkUp(preferMacs: string[], log: AgentLog, signal?: AbortSignal): Promise<void> {
  let delay = 5_000;
  for (;;) {
    try {
      const up = await bringUpNetwork({ preferMacs, log: log.info });
      log.info('network ready', { ...up });
      return;
    } catch (err) {
      if (signal?.aborted) throw err;
      log.warn(`network bring-up failed, retrying in ${delay / 1000} s`, { error: (err as Error).message });
      await sleep(delay, undefined, signal ? { signal } : {}).catch(() => {});
      if (signal?.aborted) throw err;
      delay = Math.min(60_000, delay * 2);
    }
  }
}

export async function agentMain(args: string[], signal?: AbortSignal): Promise<AgentExit> {
  const { values } = parseArgs({
    args,
    options: {
      'boot-config': { type: 'string' },
      'boot-iso': { type: 'string' },
      'boot-medium': { type: 'string' },
      machine: { type: 'string' },
      'i-mean-it-write-disks': { type: 'boolean', default: false },
      disk: { type: 'string', multiple: true },
      'network-up': { type: 'boolean', default: false },
      'backoff-ms': { type: 'string' },
      'command-wait-seconds': { type: 'string' },
      'min-root-disk-bytes': { type: 'string' },
      'conversion-min-free-memory-bytes': { type: 'string' },
      'conversion-memory-limit-bytes': { type: 'string' },
    },
    strict: true,
  });
  const tuning: Partial<RunAgentOptions> = parseAgentTuning(values);
  const line = (level: string) => (message: string, fields?: Record<string, unknown>) => process.stderr.write(`${JSON.stringify({ level, time: new Date().toISOString(), msg: message, ...fields })}\n`);
  const log: AgentLog = { info: line('info'), warn: line('warn') };
  const { config: bootConfig, from } = await findBootConfig(bootConfigSource(values, process.env, log));
  log.info('boot configuration read', { from, apiUrl: bootConfig.apiUrl, hostUid: bootConfig.hostUid });
  let machine;
  if (values.machine) {
    if (values.disk || values['network-up']) throw new Error('--disk and --network-up are for a real Linux host, not with --machine');
    const { description, baseDir } = loadMachineDescription(values.machine);
    machine = createFileMachine(description, baseDir);
  } else {
    machine = createLinuxMachine({ allowDiskWrites: values['i-mean-it-write-disks'], ...(values.disk ? { onlyDisks: values.disk } : {}) });
  }
  if (values['network-up']) await networkUp(bootConfig.bootMacAddress ? [bootConfig.bootMacAddress] : [], log, signal);
  return runAgent({ ...tuning, bootConfig, machine, log, ...(signal ? { signal } : {}) });
}
