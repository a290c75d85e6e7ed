// Vitest global setup: runs once in the main process before any worker starts, so the
// environment it sets is inherited by every test worker.
// PostgreSQL: unless INGOT_TEST_POSTGRES_URL names a server, this only prepares a state
// directory; the first test file that needs PostgreSQL starts a private throwaway cluster
// there (postgres.ts), so runs without PostgreSQL tests cost nothing, and teardown stops it.
// The compiled CLI (dist/): tests that run `ingot` as a child process, and lab agents run as
// processes of their own, need it current; `npm test` builds first, a bare `vitest` builds here.
// Secret-leak check (leak-scan.ts): a per-run capture directory, and the capture hook in
// NODE_OPTIONS for every child process; teardown scans it once and fails the run on a leak.
// INGOT_TEST_CAPTURE_DIR set beforehand names the directory to use (and keep); otherwise a
// fresh one under os.tmpdir() is removed after a clean scan.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureBuilt } from './ingot-process.js';
import { formatLeakReport, formatLeakSummary, scanCaptureDir } from './leak-scan.js';
import { POSTGRES_URL_ENV, prepareSharedClusterState, stopSharedCluster } from './postgres.js';

const CAPTURE_DIR_ENV = 'INGOT_TEST_CAPTURE_DIR';
const HOOK = new URL('./leak-capture-hook.mjs', import.meta.url).href;

let stateDir: string | undefined;
let captureDir: string | undefined;
let ownCaptureDir = false;

function startLeakCapture(): void {
  captureDir = process.env[CAPTURE_DIR_ENV];
  if (!captureDir) {
    captureDir = mkdtempSync(join(tmpdir(), 'ingot-test-capture-'));
    ownCaptureDir = true;
    process.env[CAPTURE_DIR_ENV] = captureDir;
  }
  const importFlag = `--import=${HOOK}`;
  const current = process.env.NODE_OPTIONS ?? '';
  if (!current.includes(importFlag)) process.env.NODE_OPTIONS = `${current} ${importFlag}`.trim();
}

function finishLeakCapture(): void {
  const dir = captureDir;
  captureDir = undefined;
  if (dir === undefined) return;
  const result = scanCaptureDir(dir);
  console.log(formatLeakSummary(result));
  if (result.findings.length > 0) throw new Error(formatLeakReport(result, dir));
  if (ownCaptureDir) rmSync(dir, { recursive: true, force: true });
}

export function setup(): void {
  ensureBuilt();
  startLeakCapture();
  if (process.env[POSTGRES_URL_ENV]) return;
  stateDir = prepareSharedClusterState();
}

export async function teardown(): Promise<void> {
  const dir = stateDir;
  stateDir = undefined;
  try {
    if (dir !== undefined) await stopSharedCluster(dir);
  } finally {
    finishLeakCapture();
  }
}
