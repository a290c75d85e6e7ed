// Enrolling a rack-row of lab hosts: N simulated servers (default 1,000) enrolled into one Ingot
// server and driven to `available` (registration over Redfish, then in-band inspection by
// the real agent, which the lab runs in its own process for labs this large).
//
// Prints: wall time to enroll (API writes), wall time until every host is registered and until
// every host is available, the server process's CPU seconds and peak RSS, and the Redfish
// requests the lab served per host (what a fleet of real BMCs would have had to answer).
//
// Setup, so that the figures are the server's alone: the lab and the server each run in their
// own child process (`node bin/ingot.js lab …` and `node bin/ingot.js server …`, both on
// loopback port 0 in temp dirs, embedded SQLite, default conductor settings); CPU and peak RSS
// are read from /proc/<pid>/stat (utime+stime) and /proc/<pid>/status (VmHWM) just before the
// server is stopped. The lab counts requests (GET /lab/v1/stats).
//
// Bounded: fails after --timeout-minutes (default 10). Run with
//   npm run build && node dist/bench/lab-scale.js [--hosts N] [--timeout-minutes M] [--workers W]
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { enrollLab } from '../src/lab/enroll.js';
import { LabAdminClient } from '../src/lab/lab-fault-client.js';

/** Linux USER_HZ: /proc/<pid>/stat counts CPU time in these ticks (100 on every mainstream kernel). */
const CLK_TCK = 100;

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const value = Number(process.argv[i + 1]);
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be a positive whole number, got ${process.argv[i + 1]}`);
  return value;
}

const HOSTS = arg('hosts', 1000);
const TIMEOUT_MS = arg('timeout-minutes', 10) * 60_000;
/**
 * Conductor workers of the measured server (its config file). 64, not the server's default 8:
 * with the agent in the loop each inspection waits on several Redfish power tasks, and 8
 * workers take 1,000 hosts through that in about 20 minutes (see the session notes).
 */
const WORKERS = arg('workers', 64);

/** The repository root: this file runs from dist/bench/ (or bench/ under a TS loader). */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'bin', 'ingot.js'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find bin/ingot.js above this script');
    dir = up;
  }
  return dir;
}

interface Child {
  proc: ChildProcess;
  output: () => string;
}

/** Starts `node bin/ingot.js ARGS` and resolves once every pattern has matched its output. */
function startChild(name: string, args: string[], patterns: RegExp[], deadlineMs: number): Promise<{ child: Child; matches: RegExpMatchArray[] }> {
  const proc = spawn(process.execPath, [join(repoRoot(), 'bin', 'ingot.js'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  const child: Child = { proc, output: () => text };
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => fail(new Error(`${name} did not start within ${deadlineMs / 1000} s`)), deadlineMs);
    const fail = (err: Error) => {
      clearTimeout(timer);
      proc.kill('SIGKILL');
      reject(new Error(`${err.message}\n--- ${name} output ---\n${text.slice(-4000)}`));
    };
    const check = () => {
      const matches = patterns.map((p) => text.match(p));
      if (matches.every((m) => m !== null)) {
        clearTimeout(timer);
        resolvePromise({ child, matches: matches as RegExpMatchArray[] });
      }
    };
    // Keep only the start of the output (the lines we parse) plus a tail for error reports.
    const onData = (chunk: Buffer) => {
      text = text.length < 64_000 ? text + chunk.toString('utf8') : text.slice(0, 32_000) + text.slice(-16_000) + chunk.toString('utf8');
      check();
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    proc.once('exit', (code, signal) => fail(new Error(`${name} exited early (code ${code}, signal ${signal})`)));
    proc.once('error', (err) => fail(err));
  });
}

async function stopChild(child: Child): Promise<void> {
  const { proc } = child;
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  proc.removeAllListeners('exit');
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

function procUsage(pid: number): { cpuSeconds: number; peakRssMiB: number; rssMiB: number } {
  // /proc/<pid>/stat: the command name (field 2) may hold spaces, so count from the last ')'.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
  const utime = Number(fields[14 - 3]);
  const stime = Number(fields[15 - 3]);
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { cpuSeconds: (utime + stime) / CLK_TCK, peakRssMiB: kib('VmHWM') / 1024, rssMiB: kib('VmRSS') / 1024 };
}

interface HostSummary {
  metadata: { name: string };
  status: { provisioning: { state: string }; errorType?: string; errorMessage?: string };
}

async function listAll(apiUrl: string, token: string): Promise<HostSummary[]> {
  const items: HostSummary[] = [];
  let cont: string | undefined;
  do {
    const url = new URL('/api/v1/hosts', apiUrl);
    url.searchParams.set('limit', '1000');
    if (cont) url.searchParams.set('continue', cont);
    const res = await fetch(url, { headers: { authorization: `Bearer ${token}`, accept: 'application/json' } });
    if (res.status !== 200) throw new Error(`GET ${url.pathname} answered ${res.status}: ${(await res.text()).slice(0, 300)}`);
    const page = (await res.json()) as { items: HostSummary[]; metadata?: { continue?: string } };
    items.push(...page.items);
    cont = page.metadata?.continue || undefined;
  } while (cont);
  return items;
}

function countStates(hosts: HostSummary[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const h of hosts) counts[h.status.provisioning.state] = (counts[h.status.provisioning.state] ?? 0) + 1;
  return counts;
}

const fmt = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

async function main(): Promise<void> {
  const started = Date.now();
  const deadline = started + TIMEOUT_MS;
  const labDir = await mkdtemp(join(tmpdir(), 'ingot-bench-lab-'));
  const serverDir = resolve(await mkdtemp(join(tmpdir(), 'ingot-bench-server-')), 'data');
  const children: Child[] = [];
  async function serverConfig(dir: string): Promise<string> {
    const file = `${dir}.config.yaml`;
    await writeFile(file, `conductor:\n  workers: ${WORKERS}\n`);
    return file;
  }
  try {
    // 1. The lab, in its own process.
    const labStart = await startChild('lab', ['lab', '--hosts', String(HOSTS), '--listen', '127.0.0.1:0', '--data-dir', labDir], [/Redfish at (https:\/\/\S+)/], 120_000);
    children.push(labStart.child);
    const labUrl = labStart.matches[0]![1]!;
    // 2. The server, in its own process (info logs off: a log line per request would be measured too).
    const serverStart = await startChild(
      'server',
      ['server', '--data-dir', serverDir, '--listen', '127.0.0.1:0', '--agent-listen', '127.0.0.1:0', '--log-level', 'warn', '--config', await serverConfig(serverDir)],
      [/Ingot API listening on (http:\/\/\S+)/, /Bootstrap admin token[^:]*: (ingot_[A-Za-z0-9_-]+)/],
      120_000,
    );
    children.push(serverStart.child);
    const apiUrl = serverStart.matches[0]![1]!;
    const token = serverStart.matches[1]![1]!;
    const serverPid = serverStart.child.proc.pid!;
    const cpuAtStart = procUsage(serverPid).cpuSeconds;
    console.log(`lab: ${HOSTS} hosts at ${labUrl} (pid ${labStart.child.proc.pid}); server: ${apiUrl} (pid ${serverPid})`);

    const admin = await LabAdminClient.fromDataDir(labDir, labUrl);
    try {
      await admin.resetStats();
      // 3. Enroll through the API: one CA secret, then a Secret and a Host per system.
      const t0 = Date.now();
      const enrolled = await enrollLab({ dataDir: labDir, labUrl, server: apiUrl, token, concurrency: 16 });
      const enrollMs = Date.now() - t0;
      if (enrolled.hosts.length !== HOSTS) throw new Error(`enrolled ${enrolled.hosts.length} hosts, expected ${HOSTS}`);
      console.log(`enrolled ${HOSTS} hosts in ${fmt(enrollMs)}`);

      // 4. Wait until every host is available (polling the list API, as a dashboard would).
      let registeredMs: number | undefined;
      let availableMs: number | undefined;
      let lastReport = 0;
      for (;;) {
        const hosts = await listAll(apiUrl, token);
        const counts = countStates(hosts);
        const now = Date.now();
        const pastRegistration = hosts.filter((h) => !['registering', 'error'].includes(h.status.provisioning.state) || (h.status.provisioning.state === 'error' && h.status.errorType !== 'registration')).length;
        if (registeredMs === undefined && pastRegistration === HOSTS) registeredMs = now - t0;
        if ((counts.available ?? 0) === HOSTS) {
          availableMs = now - t0;
          registeredMs ??= availableMs;
          break;
        }
        if (now - lastReport > 10_000) {
          console.log(`  +${fmt(now - t0)}: ${JSON.stringify(counts)}`);
          lastReport = now;
        }
        if (now > deadline) {
          const errors = hosts.filter((h) => h.status.provisioning.state === 'error').slice(0, 5).map((h) => `${h.metadata.name}: ${h.status.errorType}: ${h.status.errorMessage}`);
          throw new Error(`not every host became available within ${TIMEOUT_MS / 60_000} min: ${JSON.stringify(counts)}${errors.length ? `\nfirst errors:\n  ${errors.join('\n  ')}` : ''}`);
        }
        await new Promise((r) => setTimeout(r, 500));
      }

      // 5. Figures, read while both processes still run.
      const usage = procUsage(serverPid);
      const stats = await admin.stats();
      const perHost = Object.values(stats.systems);
      const sorted = [...perHost].sort((a, b) => a - b);
      const labUsage = procUsage(labStart.child.proc.pid!);
      console.log('');
      console.log(`hosts                          ${HOSTS}`);
      console.log(`enroll (API writes)            ${fmt(enrollMs)}`);
      console.log(`enroll -> all registered       ${fmt(registeredMs)}`);
      console.log(`enroll -> all available        ${fmt(availableMs)}`);
      console.log(`server CPU                     ${(usage.cpuSeconds - cpuAtStart).toFixed(1)} s (after start-up; ${usage.cpuSeconds.toFixed(1)} s in all)`);
      console.log(`server peak RSS                ${usage.peakRssMiB.toFixed(0)} MiB (now ${usage.rssMiB.toFixed(0)} MiB)`);
      console.log(`BMC requests per host          ${(stats.total / HOSTS).toFixed(1)} mean (min ${sorted[0]}, median ${sorted[Math.floor(sorted.length / 2)]}, max ${sorted[sorted.length - 1]}; ${stats.unattributed} unattributed of ${stats.total})`);
      console.log(`lab CPU                        ${labUsage.cpuSeconds.toFixed(1)} s, peak RSS ${labUsage.peakRssMiB.toFixed(0)} MiB`);
    } finally {
      await admin.close();
    }
  } finally {
    for (const child of children.reverse()) await stopChild(child);
    await rm(labDir, { recursive: true, force: true });
    await rm(dirname(serverDir), { recursive: true, force: true });
  }
  console.log(`total ${fmt(Date.now() - started)}`);
}

main().catch((err: unknown) => {
  console.error(`lab-scale: ${(err as Error).stack ?? String(err)}`);
  process.exitCode = 1;
});
