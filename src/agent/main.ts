// `ingot agent` entry point, called by the CLI (src/cli) with the arguments after `agent`:
//   --boot-config FILE | --boot-iso FILE   where the boot configuration comes from
//   --machine FILE                         a lab machine description (file-machine.ts); absent: this Linux host
//   --i-mean-it-write-disks                allow writing real block devices (Linux only)
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parseBootConfig, readBootConfigFromIso } from '../images/boot-config-iso.js';
import { runAgent, type AgentExit } from './agent.js';
import { createFileMachine, loadMachineDescription } from './file-machine.js';
import { createLinuxMachine } from './linux-machine.js';

export async function agentMain(args: string[], signal?: AbortSignal): Promise<AgentExit> {
  const { values } = parseArgs({
    args,
    options: {
      'boot-config': { type: 'string' },
      'boot-iso': { type: 'string' },
      machine: { type: 'string' },
      'i-mean-it-write-disks': { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (!values['boot-config'] === !values['boot-iso']) throw new Error('give exactly one of --boot-config FILE or --boot-iso FILE');
  const bootConfig = values['boot-iso'] ? readBootConfigFromIso(readFileSync(values['boot-iso'])) : parseBootConfig(readFileSync(values['boot-config']!));
  let machine;
  if (values.machine) {
    const { description, baseDir } = loadMachineDescription(values.machine);
    machine = createFileMachine(description, baseDir);
  } else {
    machine = createLinuxMachine({ allowDiskWrites: values['i-mean-it-write-disks'] });
  }
  const line = (level: string) => (message: string, fields?: Record<string, unknown>) => process.stderr.write(`${JSON.stringify({ level, time: new Date().toISOString(), msg: message, ...fields })}\n`);
  return runAgent({ bootConfig, machine, log: { info: line('info'), warn: line('warn') }, ...(signal ? { signal } : {}) });
}
