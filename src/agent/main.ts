// `ingot agent` entry point, called by the CLI (src/cli) with the arguments after `agent`:
//   --boot-config FILE | --boot-iso FILE   where the boot configuration comes from
//   --machine FILE                         a lab machine description (file-machine.ts); absent: this Linux host
//   --i-mean-it-write-disks                allow writing real block devices (Linux only)
// and the optional tuning a slow link or a small test machine wants (agentTuningArgs):
//   --backoff-ms INITIAL,MAX  --command-wait-seconds N  --min-root-disk-bytes N
//   --conversion-min-free-memory-bytes N  --conversion-memory-limit-bytes N
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parseBootConfig, readBootConfigFromIso } from '../images/boot-config-iso.js';
import { runAgent, type AgentExit, type RunAgentOptions } from './agent.js';
import { createFileMachine, loadMachineDescription } from './file-machine.js';
import { createLinuxMachine } from './linux-machine.js';

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

export function parseAgentTuning(values: Record<string, string | boolean | undefined>): AgentTuning {
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

export async function agentMain(args: string[], signal?: AbortSignal): Promise<AgentExit> {
  const { values } = parseArgs({
    args,
    options: {
      'boot-config': { type: 'string' },
      'boot-iso': { type: 'string' },
      machine: { type: 'string' },
      'i-mean-it-write-disks': { type: 'boolean', default: false },
      'backoff-ms': { type: 'string' },
      'command-wait-seconds': { type: 'string' },
      'min-root-disk-bytes': { type: 'string' },
      'conversion-min-free-memory-bytes': { type: 'string' },
      'conversion-memory-limit-bytes': { type: 'string' },
    },
    strict: true,
  });
  if (!values['boot-config'] === !values['boot-iso']) throw new Error('give exactly one of --boot-config FILE or --boot-iso FILE');
  const tuning: Partial<RunAgentOptions> = parseAgentTuning(values);
  const bootConfig = values['boot-iso'] ? readBootConfigFromIso(readFileSync(values['boot-iso'])) : parseBootConfig(readFileSync(values['boot-config']!));
  let machine;
  if (values.machine) {
    const { description, baseDir } = loadMachineDescription(values.machine);
    machine = createFileMachine(description, baseDir);
  } else {
    machine = createLinuxMachine({ allowDiskWrites: values['i-mean-it-write-disks'] });
  }
  const line = (level: string) => (message: string, fields?: Record<string, unknown>) => process.stderr.write(`${JSON.stringify({ level, time: new Date().toISOString(), msg: message, ...fields })}\n`);
  return runAgent({ ...tuning, bootConfig, machine, log: { info: line('info'), warn: line('warn') }, ...(signal ? { signal } : {}) });
}
