// Vitest global setup: runs once in the main process before any worker starts, so the
// environment it sets is inherited by every test worker.
// PostgreSQL: unless INGOT_TEST_POSTGRES_URL names a server, this only prepares a state
// directory; the first test file that needs PostgreSQL starts a private throwaway cluster
// there (postgres.ts), so runs without PostgreSQL tests cost nothing, and teardown stops it.
// The compiled CLI (dist/): tests that run `ingot` as a child process, and lab agents run as
// processes of their own, need it current; `npm test` builds first, a bare `vitest` builds here.
import { ensureBuilt } from './ingot-process.js';
import { POSTGRES_URL_ENV, prepareSharedClusterState, stopSharedCluster } from './postgres.js';

let stateDir: string | undefined;

export function setup(): void {
  ensureBuilt();
  if (process.env[POSTGRES_URL_ENV]) return;
  stateDir = prepareSharedClusterState();
}

export async function teardown(): Promise<void> {
  const dir = stateDir;
  stateDir = undefined;
  if (dir !== undefined) await stopSharedCluster(dir);
}
