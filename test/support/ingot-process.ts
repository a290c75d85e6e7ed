// Runs the real `ingot` binary (bin/ingot.js -> dist/) as child processes, for tests that
// exercise what a person types: the CLI, `ingot server`, restarts after kill -9.
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The checkout: the nearest directory up with a package.json (test/support, or dist/test/support when a bench runs it). */
function checkoutRoot(dir: string): string {
  while (!existsSync(join(dir, 'package.json'))) {
    if (dirname(dir) === dir) throw new Error('no package.json above test/support');
    dir = dirname(dir);
  }
  return dir;
}

export const ROOT = checkoutRoot(dirname(fileURLToPath(import.meta.url)));
export const BIN = join(ROOT, 'bin', 'ingot.js');
const MAIN = join(ROOT, 'dist', 'src', 'cli', 'main.js');

/** Newest mtime of the .ts sources the binary is built from. */
function newestSource(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

/** `npm test` compiles first; a bare `vitest run` gets a build here when dist/ is missing or older than src/. */
export function ensureBuilt(): void {
  if (existsSync(MAIN) && statSync(MAIN).mtimeMs >= newestSource(join(ROOT, 'src'))) return;
  // tsc emits even when some file has type errors; the binary's existence is what matters here.
  spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', ROOT], { stdio: 'ignore', cwd: ROOT });
  if (!existsSync(MAIN)) throw new Error('building with tsc did not produce dist/src/cli/main.js');
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runIngot(args: string[], options: { cwd: string; env: NodeJS.ProcessEnv; input?: string; timeoutMs?: number }): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: options.cwd, env: options.env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
    child.stdin.end(options.input ?? '');
  });
}

/**
 * Server settings that make the simulated fleet and the conductor fast, so lifecycle tests take
 * seconds (the defaults model real hardware more closely).
 */
export const FAST_SERVER_CONFIG = [
  'conductor:',
  '  powerPollMs: 100',
  '  agentPollMs: 100',
  '  backoff: {baseMs: 500, capMs: 5000}',
  'fake:',
  '  delays: {powerMs: [50, 150], inspectMs: [200, 400], deployMs: [300, 600], cleanMs: [200, 400], callMs: [0, 0]}',
].join('\n');

export interface IngotServerProcess {
  child: ChildProcessWithoutNullStreams;
  apiUrl: string;
  agentUrl: string;
  /** Printed on the first start of a data dir only. */
  token?: string;
  output(): string;
  /** Sends `signal` and waits for the process to exit. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts `ingot server` on free loopback ports and reads the addresses (and token) it prints. */
export async function startIngotServer(options: { dataDir: string; cwd: string; env: NodeJS.ProcessEnv; config?: string; extraArgs?: string[] }): Promise<IngotServerProcess> {
  const args = [BIN, 'server', '--data-dir', options.dataDir, '--listen', '127.0.0.1:0', '--agent-listen', '127.0.0.1:0', '--log-level', 'warn'];
  if (options.config !== undefined) {
    const file = join(options.dataDir + '.config.yaml');
    writeFileSync(file, options.config);
    args.push('--config', file);
  }
  args.push(...(options.extraArgs ?? []));
  const child = spawn(process.execPath, args, { cwd: options.cwd, env: options.env });
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const deadline = Date.now() + 60_000;
  while (!/Press Ctrl-C/.test(out)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`ingot server did not start (exit ${child.exitCode}):\n${out}\n${err}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const apiUrl = /^Ingot API listening on (https?:\/\/\S+)$/m.exec(out)?.[1];
  const agentUrl = /^Ingot agent API listening on (http:\/\/\S+)$/m.exec(out)?.[1];
  const token = /^Bootstrap admin token \(shown once; store it safely\): (ingot_\S+)$/m.exec(out)?.[1];
  if (!apiUrl || !agentUrl) throw new Error(`could not read addresses from:\n${out}`);
  // Shown once on stdout by design; it must appear nowhere else (leak-scan.ts).
  // (Through globalThis: importing the hook here would load it into vitest's main process.)
  if (token) (globalThis as { [k: symbol]: { recordSecret(kind: string, value: string): void } | undefined })[Symbol.for('ingot.test.capture')]?.recordSecret('bootstrap admin token', token);
  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
    const closed = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
    child.kill(signal);
    return closed;
  };
  return { child, apiUrl, agentUrl, ...(token ? { token } : {}), output: () => out + err, stop };
}
