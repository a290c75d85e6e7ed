// Where the lab's agents run: one child process per agent for small labs, so each
// agent is a real `ingot agent` process with its own token, state and disks exactly as on a
// host; many agent instances in the lab's own process for large labs (1,000+ hosts on a 2-core
// machine cannot afford a Node process per host). The agent code is the same either way: the
// child is the ordinary `ingot agent --boot-iso ISO --machine MACHINE` command.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, open, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { agentTuningArgs, type AgentTuning } from '../agent/main.js';
import type { MachineDescription } from '../agent/file-machine.js';

export type AgentProcessesOption = 'per-agent' | 'shared' | 'auto';
export type AgentProcesses = Exclude<AgentProcessesOption, 'auto'>;

export const AGENT_PROCESSES_OPTIONS: readonly AgentProcessesOption[] = ['per-agent', 'shared', 'auto'];

/** Labs up to this many systems get a process per agent under 'auto'; bigger ones share the lab process. */
export const PER_AGENT_MAX_SYSTEMS = 32;

/** How long a stopped agent process gets to exit after SIGTERM before SIGKILL (default). */
export const AGENT_STOP_GRACE_MS = 5_000;

export function chooseAgentProcesses(option: AgentProcessesOption | undefined, systems: number): AgentProcesses {
  const chosen = option ?? 'auto';
  if (chosen === 'per-agent' || chosen === 'shared') return chosen;
  if (chosen !== 'auto') throw new Error(`agentProcesses must be one of ${AGENT_PROCESSES_OPTIONS.join(', ')}; got ${String(chosen)}`);
  return systems <= PER_AGENT_MAX_SYSTEMS ? 'per-agent' : 'shared';
}

/** The repo (or installed package) root: the nearest ancestor holding bin/ingot.js. */
function packageRoot(): string | undefined {
  // This file is src/lab/agent-process.ts under Vitest/tsx, dist/src/lab/agent-process.js compiled.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'bin', 'ingot.js')) && existsSync(join(dir, 'package.json'))) return dir;
    const up = resolve(dir, '..');
    if (up === dir) break;
    dir = up;
  }
  return undefined;
}

/**
 * The script that runs the `ingot` CLI (bin/ingot.js, which loads dist/), or undefined when the
 * compiled CLI is missing (the caller then runs the agent in-process and says so).
 */
export function ingotEntry(): string | undefined {
  const root = packageRoot();
  if (!root || !existsSync(join(root, 'dist', 'src', 'cli', 'main.js'))) return undefined;
  return join(root, 'bin', 'ingot.js');
}

export interface AgentProcess {
  pid: number;
  /** Resolves when the process has exited. */
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then SIGKILL after the grace period; resolves once the process is gone. */
  stop(): Promise<void>;
}

export interface StartAgentProcessOptions {
  /** DATA_DIR/systems/<id>/agent: the ISO, machine description and log go here (owner-only). */
  dir: string;
  entry: string;
  medium: Buffer;
  description: MachineDescription;
  tuning?: AgentTuning;
  stopGraceMs?: number;
}

/**
 * Writes the boot medium (it carries the one-boot token) and the machine description owner-only
 * into `dir` and starts `ingot agent` on them, its output going to dir/agent.log (replaced at
 * each boot, so the log stays one boot long).
 */
export async function startAgentProcess(opts: StartAgentProcessOptions): Promise<AgentProcess> {
  await mkdir(opts.dir, { recursive: true, mode: 0o700 });
  await chmod(opts.dir, 0o700);
  const iso = join(opts.dir, 'boot.iso');
  const machine = join(opts.dir, 'machine.json');
  for (const [path, data] of [
    [iso, opts.medium],
    [machine, JSON.stringify(opts.description, null, 2)],
  ] as const) {
    await writeFile(path, data, { mode: 0o600 });
    await chmod(path, 0o600); // writeFile keeps the mode of a file that already exists
  }
  const log = await open(join(opts.dir, 'agent.log'), 'w', 0o600);
  let child;
  try {
    await log.chmod(0o600);
    child = spawn(process.execPath, [opts.entry, 'agent', '--boot-iso', iso, '--machine', machine, ...agentTuningArgs(opts.tuning ?? {})], {
      cwd: opts.dir,
      stdio: ['ignore', log.fd, log.fd],
    });
  } finally {
    // The child holds its own copy of the descriptor.
    await log.close();
  }
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => {
    child.once('exit', (code, signal) => res({ code, signal }));
    child.once('error', () => res({ code: null, signal: null }));
  });
  // The medium holds the one-boot token: gone from disk once the agent has stopped.
  void done.then(() => rm(iso, { force: true }).catch(() => undefined));
  if (child.pid === undefined) {
    await done;
    throw new Error(`could not start ${process.execPath} ${opts.entry} agent`);
  }
  const grace = opts.stopGraceMs ?? AGENT_STOP_GRACE_MS;
  let stopping: Promise<void> | undefined;
  return {
    pid: child.pid,
    done,
    stop() {
      stopping ??= (async () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        child.kill('SIGTERM');
        let timer: NodeJS.Timeout | undefined;
        const killed = new Promise<void>((res) => {
          timer = setTimeout(() => {
            child.kill('SIGKILL');
            res();
          }, grace);
        });
        await Promise.race([done, killed]);
        clearTimeout(timer);
        await done;
      })();
      return stopping;
    },
  };
}
