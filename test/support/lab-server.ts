// The settings lab end-to-end tests share: an in-process server with fast conductor timings
// (simulated hardware answers in milliseconds) and lab agents that retry quickly and convert
// small images without the production free-memory floor.
import { runServer, type RunningServer, type RunServerOptions } from '../../src/server/run-server.js';

/** `agents` options for LabHarness.start. */
export const FAST_LAB_AGENTS = { backoff: { initialMs: 50, maxMs: 500 }, commandWaitSeconds: 1, conversion: { minFreeMemoryBytes: 0 } };

/** A server (SQLite in `dataDir`, no fake hosts, silent) whose conductor polls the lab often. */
export function startLabServer(dataDir: string, extra: Partial<RunServerOptions> = {}): Promise<RunningServer> {
  return runServer({
    dataDir,
    listen: '127.0.0.1:0',
    agentListen: '127.0.0.1:0',
    fake: false,
    log: 'silent',
    ...extra,
    conductor: {
      pollMs: 50,
      resyncMs: 1_000,
      backoff: { baseMs: 200, capMs: 1_000 },
      ...extra.conductor,
      handler: { powerPollMs: 100, agentPollMs: 100, idleRecheckMs: 300, agentBootTimeoutMs: 60_000, ...extra.conductor?.handler },
    },
  });
}
