// PostgreSQL for tests. If INGOT_TEST_POSTGRES_URL names a server, tests use it. Otherwise the
// first PostgreSQL test file of a run starts a private, throwaway cluster from the Debian
// binaries (and the Vitest global teardown in global-setup.ts stops it): loopback only, trust authentication, Unix sockets in its own temporary directory,
// durability switched off for speed, removed on teardown. Each test file (or test) makes its
// own database on it with createTestDatabase(), so files running in parallel never meet.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

const run = promisify(execFile);

/** The URL of a server tests may create databases on (set by the user or by global setup). */
export const POSTGRES_URL_ENV = 'INGOT_TEST_POSTGRES_URL';
/** Set by global setup: where the lazily started shared cluster is recorded. */
export const POSTGRES_STATE_ENV = 'INGOT_TEST_POSTGRES_STATE_DIR';

export interface PostgresCluster {
  /** Superuser URL of the cluster's `postgres` database. */
  url: string;
  /** Everything needed to stop it from another process (see stopPostgresCluster). */
  handle: ClusterHandle;
  stop(): Promise<void>;
}

/** JSON-serialisable description of a running cluster, so the process that stops it need not be the one that started it. */
export interface ClusterHandle {
  dir: string;
  bin: string;
  /** Command prefix to run PostgreSQL tools as a non-root user ([] when not root). */
  prefix: string[];
}

export async function stopPostgresCluster(handle: ClusterHandle): Promise<void> {
  const argv = [...handle.prefix, join(handle.bin, 'pg_ctl'), '-D', join(handle.dir, 'data'), '-m', 'immediate', '-w', 'stop'];
  try {
    await run(argv[0] as string, argv.slice(1), { timeout: 60_000 });
  } finally {
    rmSync(handle.dir, { recursive: true, force: true });
  }
}

/** The newest `/usr/lib/postgresql/<version>/bin` holding initdb and pg_ctl, if any. */
export function findPostgresBinaries(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => /^\d+(\.\d+)?$/.test(v))
    .sort((a, b) => Number(b) - Number(a));
  for (const version of versions) {
    const bin = join(root, version, 'bin');
    if (existsSync(join(bin, 'initdb')) && existsSync(join(bin, 'pg_ctl'))) return bin;
  }
  return undefined;
}

async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

async function userIds(user: string): Promise<{ uid: number; gid: number } | undefined> {
  try {
    const uid = Number((await run('id', ['-u', user])).stdout.trim());
    const gid = Number((await run('id', ['-g', user])).stdout.trim());
    return { uid, gid };
  } catch {
    return undefined;
  }
}

/**
 * Starts a throwaway cluster, or says why it cannot. PostgreSQL refuses to run as root, so
 * as root the cluster runs as the `postgres` OS user (or `nobody`) via runuser.
 */
export async function startPostgresCluster(): Promise<PostgresCluster | { skipReason: string }> {
  const bin = findPostgresBinaries();
  if (bin === undefined) {
    return { skipReason: 'no PostgreSQL binaries under /usr/lib/postgresql/*/bin (install the Debian package postgresql, or set INGOT_TEST_POSTGRES_URL)' };
  }
  let prefix: string[] = [];
  let owner: { uid: number; gid: number } | undefined;
  if (process.getuid?.() === 0) {
    for (const user of ['postgres', 'nobody']) {
      owner = await userIds(user);
      if (owner !== undefined) {
        prefix = ['runuser', '-u', user, '--'];
        break;
      }
    }
    if (owner === undefined) return { skipReason: 'running as root and neither a `postgres` nor a `nobody` user exists to run PostgreSQL as' };
  }
  const exec = async (command: string, args: string[]) => {
    const argv = [...prefix, join(bin, command), ...args];
    return run(argv[0] as string, argv.slice(1), { timeout: 60_000 });
  };

  const dir = mkdtempSync(join(tmpdir(), 'ingot-pg-'));
  const data = join(dir, 'data');
  const logFile = join(dir, 'server.log');
  if (owner !== undefined) chownSync(dir, owner.uid, owner.gid);
  const removeDir = () => rmSync(dir, { recursive: true, force: true });
  try {
    await exec('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-locale', '--no-sync']);
    // Trust, but only over the private socket directory and loopback.
    const hba = join(data, 'pg_hba.conf');
    writeFileSync(hba, 'local all all trust\nhost all all 127.0.0.1/32 trust\n');
    if (owner !== undefined) chownSync(hba, owner.uid, owner.gid);
    const port = await freePort();
    const serverOptions = [
      '-c listen_addresses=127.0.0.1',
      `-p ${port}`,
      `-k ${dir}`,
      '-c fsync=off',
      '-c synchronous_commit=off',
      '-c full_page_writes=off',
      '-c max_connections=200',
    ].join(' ');
    try {
      await exec('pg_ctl', ['-D', data, '-l', logFile, '-w', '-t', '60', '-o', serverOptions, 'start']);
    } catch (error) {
      const log = existsSync(logFile) ? readFileSync(logFile, 'utf8').slice(-2000) : '(no server log)';
      throw new Error(`PostgreSQL test cluster did not start: ${(error as Error).message}\n${log}`, { cause: error });
    }
    const handle: ClusterHandle = { dir, bin, prefix };
    return { url: `postgres://postgres@127.0.0.1:${port}/postgres`, handle, stop: () => stopPostgresCluster(handle) };
  } catch (error) {
    removeDir();
    throw error;
  }
}

export interface TestDatabase {
  url: string;
  drop(): Promise<void>;
}

/** Creates a database with a random name on the server at `serverUrl` (a superuser URL). */
export async function createTestDatabase(serverUrl: string): Promise<TestDatabase> {
  // The name is ours (hex), never input, so quoting it as an identifier is safe.
  const name = `ingot_test_${randomBytes(8).toString('hex')}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const client = new pg.Client({ connectionString: serverUrl });
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}

/**
 * For a PostgreSQL test file: the server URL to create databases on, or why to skip. The
 * first caller in a run starts the cluster (so runs without PostgreSQL tests never pay for
 * one); other workers wait for its URL; global teardown stops it. Under CI (env CI set) a
 * missing server is an error, never a silent skip.
 */
export async function postgresForTests(): Promise<{ url: string } | { skipReason: string }> {
  const given = process.env[POSTGRES_URL_ENV];
  if (given !== undefined && given !== '') return { url: given };
  const stateDir = process.env[POSTGRES_STATE_ENV];
  const outcome: { url: string } | { skipReason: string } =
    stateDir === undefined
      ? { skipReason: `${POSTGRES_URL_ENV} is not set and test/support/global-setup.ts is not in vitest.config.ts globalSetup` }
      : await sharedCluster(stateDir);
  if ('skipReason' in outcome && process.env.CI) throw new Error(`PostgreSQL tests cannot run under CI: ${outcome.skipReason}`);
  return outcome;
}

const CLUSTER_FILE = 'cluster.json';
const LOCK_FILE = 'starting.lock';

async function sharedCluster(stateDir: string): Promise<{ url: string } | { skipReason: string }> {
  const resultFile = join(stateDir, CLUSTER_FILE);
  let starter = false;
  try {
    closeSync(openSync(join(stateDir, LOCK_FILE), 'wx'));
    starter = true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  if (starter) {
    let result: SharedClusterState;
    try {
      const started = await startPostgresCluster();
      result = 'skipReason' in started ? started : { url: started.url, handle: started.handle };
    } catch (error) {
      result = { error: error instanceof Error ? error.message : String(error) };
    }
    // Written whole then renamed, so waiters never read half a file.
    writeFileSync(`${resultFile}.tmp`, JSON.stringify(result));
    renameSync(`${resultFile}.tmp`, resultFile);
  }
  const deadline = Date.now() + 120_000;
  while (!existsSync(resultFile)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for the PostgreSQL test cluster (state in ${stateDir})`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const state = JSON.parse(readFileSync(resultFile, 'utf8')) as SharedClusterState;
  if ('error' in state) throw new Error(`the PostgreSQL test cluster failed to start: ${state.error}`);
  return 'skipReason' in state ? { skipReason: state.skipReason } : { url: state.url };
}

type SharedClusterState = { url: string; handle: ClusterHandle } | { skipReason: string } | { error: string };

/** Global setup: a directory where the first PostgreSQL test file records the cluster it starts. */
export function prepareSharedClusterState(): string {
  const dir = mkdtempSync(join(tmpdir(), 'ingot-pg-state-'));
  process.env[POSTGRES_STATE_ENV] = dir;
  return dir;
}

/** Global teardown: stops the cluster if a test file started one, and removes the state. */
export async function stopSharedCluster(stateDir: string): Promise<void> {
  try {
    const resultFile = join(stateDir, CLUSTER_FILE);
    if (existsSync(join(stateDir, LOCK_FILE))) {
      // A starter may still be writing if the run was interrupted; give it a moment.
      const deadline = Date.now() + 60_000;
      while (!existsSync(resultFile) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    }
    if (existsSync(resultFile)) {
      const state = JSON.parse(readFileSync(resultFile, 'utf8')) as SharedClusterState;
      if ('handle' in state) await stopPostgresCluster(state.handle);
    }
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
}
