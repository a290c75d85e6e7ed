// The conductor: a work queue of host uids, fed by the store's change feed and a periodic
// relist, whose workers reconcile one host at a time under a database lease.
//
// Across processes the lease `host/<uid>` makes sure one conductor acts on a host at a time: a
// worker takes (or renews) it before every reconcile and keeps renewing it while the step runs.
// A busy lease means another conductor is working the host: look again after one TTL. A
// conductor that dies stops renewing; once its leases expire, the others take its hosts over
// and, since every step is idempotent and its progress is in status, resume where it stopped.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { DriverRegistry } from '../drivers/registry.js';
import type { Store } from '../store/store.js';
import { DEFAULT_BACKOFF, nextDelay, type BackoffOptions } from './backoff.js';
import { systemClock, type Clock, type TimerHandle } from './clock.js';
import type { ConfigDriveSource } from './config-drive-source.js';
import type { CredentialsResolver, SecretUseEvent, SecretUseListener } from './credentials.js';
import { createSlotGate, DEFAULT_MAX_CONCURRENT_CLEANINGS, DEFAULT_MAX_CONCURRENT_DEPLOYS } from './concurrency-slots.js';
import { reconcileHost, type EngineDeps, type ReconcileResult } from './engine.js';
import { DEFAULT_HANDLER_CONFIG, type HandlerConfig, type HandlerLog, type ImageProxy } from './handlers/types.js';
import { WorkQueue, type ProcessResult } from './work-queue.js';

export interface ConductorOptions {
  store: Store;
  drivers: DriverRegistry;
  credentials: CredentialsResolver;
  /** Names this conductor in leases; default `<hostname>-<pid>-<random>`. */
  holderId?: string;
  /** Hosts reconciled at once by this process; default 8. */
  workers?: number;
  /** Lease lifetime; renewed every third of it while a step runs. Default 30 s. */
  leaseTtlMs?: number;
  /** Period of the full relist that catches anything the change feed missed. Default 30 s. */
  resyncMs?: number;
  /** Period of the change-feed poll that sees other processes' writes. Default 1 s. */
  pollMs?: number;
  backoff?: BackoffOptions;
  /** Step timings (power and agent polling, timeouts); defaults in DEFAULT_HANDLER_CONFIG. */
  handler?: Partial<HandlerConfig>;
  clock?: Clock;
  random?: () => number;
  log?: HandlerLog;
  /** The caching image proxy (images.downloadSource: local); absent: agents download images directly. */
  images?: ImageProxy;
  /**
   * Deploys (provisioning) running at once across every conductor sharing the database;
   * hosts over the cap wait in the order they entered provisioning. Default 250.
   */
  maxConcurrentDeploys?: number;
  /** Cleanings (deprovisioning) running at once, as above. Default 50. */
  maxConcurrentCleanings?: number;
  /** How often a host waiting for a slot looks again. Default 5 s. */
  slotRecheckMs?: number;
  /**
   * Called when the credentials resolver hands a secret to a step for a host (the server
   * audits it as secret:use). Repeats of the same (host, secret, version, purpose, state) are
   * reported once per `secretUseRepeatMs`: a host polled every 2 s would otherwise flood the
   * audit trail with identical rows. Requires a resolver with observe() (the Secret resolver).
   */
  onSecretUse?: (event: SecretUseEvent) => void;
  /** Default 1 hour. */
  secretUseRepeatMs?: number;
  /**
   * Asked first, when a deploy is prepared, for the host's user data, network data and meta
   * data (config-drive-source.ts): the server passes one that reads the host's claim. Secret
   * uses it reports go to onSecretUse like the resolver's. Absent: spec.userDataName only.
   */
  configDriveSource?: ConfigDriveSource;
}

/** Reconciles by result, pre-set to zero (controller-runtime's initMetrics) so every label reports. */
export type ConductorMetrics = Record<ReconcileResult['outcome'] | 'lease-busy' | 'store-error', number>;

export interface Conductor {
  readonly holderId: string;
  readonly metrics: ConductorMetrics;
  /** Lists every host, queues it, and starts following the change feed and the resync timer. */
  start(): Promise<void>;
  /**
   * Stops taking work and waits for running steps to finish. `releaseLeases: false` leaves this
   * conductor's leases to expire, as a crashed process would (tests of take-over use it).
   */
  stop(options?: { releaseLeases?: boolean }): Promise<void>;
  /** Queues a host now (the API calls it after a write, to skip the poll delay). */
  enqueue(uid: string): void;
  /** Resolves when no reconcile runs or waits to run (delayed ones may remain). */
  idle(): Promise<void>;
}

const SILENT_LOG: HandlerLog = { info() {}, warn() {}, error() {} };
/** Bound of the repeat filter of secret uses; when full it is cleared (a few repeats get through). */
const SECRET_USE_MEMORY = 10_000;

/**
 * The listener every secret use goes through: repeats of the same (host, secret, version,
 * purpose, state) within `secretUseRepeatMs` are dropped, and a failing listener is logged,
 * never thrown into the step that used the secret. Undefined when nobody listens.
 */
function secretUseReporter(opts: ConductorOptions, clock: Clock, log: HandlerLog): SecretUseListener | undefined {
  const listener = opts.onSecretUse;
  if (!listener) return undefined;
  const repeatMs = opts.secretUseRepeatMs ?? 3_600_000;
  const lastReported = new Map<string, number>();
  return (event) => {
    const key = `${event.hostUid}\0${event.secretProject ?? ''}\0${event.secretName}\0${event.secretVersion}\0${event.purpose}\0${event.hostState ?? ''}`;
    const now = clock.now();
    const last = lastReported.get(key);
    if (last !== undefined && now - last < repeatMs) return;
    if (lastReported.size >= SECRET_USE_MEMORY) lastReported.clear();
    lastReported.set(key, now);
    try {
      listener(event);
    } catch (error) {
      log.warn('secret use listener failed', { secret: event.secretName, host: event.hostName, error: String(error) });
    }
  };
}

function observedCredentials(opts: ConductorOptions, report: SecretUseListener | undefined, log: HandlerLog): CredentialsResolver {
  if (!report) return opts.credentials;
  if (!opts.credentials.observe) {
    log.warn('the credentials resolver cannot report secret uses; they are not audited');
    return opts.credentials;
  }
  return opts.credentials.observe(report);
}
const LIST_PAGE = 500;

export function createConductor(opts: ConductorOptions): Conductor {
  // Every default, in one place.
  const store = opts.store;
  const clock = opts.clock ?? systemClock;
  const random = opts.random ?? Math.random;
  const log = opts.log ?? SILENT_LOG;
  const holderId = opts.holderId ?? `${hostname()}-${process.pid}-${randomBytes(4).toString('hex')}`;
  const workers = opts.workers ?? 8;
  const leaseTtlMs = opts.leaseTtlMs ?? 30_000;
  const resyncMs = opts.resyncMs ?? 30_000;
  const pollMs = opts.pollMs ?? 1_000;
  const backoff = { baseMs: opts.backoff?.baseMs ?? DEFAULT_BACKOFF.baseMs, capMs: opts.backoff?.capMs ?? DEFAULT_BACKOFF.capMs };
  const config: HandlerConfig = { ...DEFAULT_HANDLER_CONFIG, ...opts.handler };
  for (const [name, value] of Object.entries({ workers, leaseTtlMs, resyncMs, pollMs, ...backoff })) {
    if (!Number.isFinite(value) || value <= 0) throw new RangeError(`conductor option ${name} must be a positive number, got ${value}`);
  }

  const slots = createSlotGate({
    store,
    clock,
    holderId,
    caps: { deploy: opts.maxConcurrentDeploys ?? DEFAULT_MAX_CONCURRENT_DEPLOYS, clean: opts.maxConcurrentCleanings ?? DEFAULT_MAX_CONCURRENT_CLEANINGS },
    ...(opts.slotRecheckMs !== undefined ? { recheckMs: opts.slotRecheckMs } : {}),
  });
  const reportSecretUse = secretUseReporter(opts, clock, log);
  const credentials = observedCredentials(opts, reportSecretUse, log);
  const deps: EngineDeps = {
    store,
    drivers: opts.drivers,
    credentials,
    clock,
    random,
    backoff,
    config,
    log,
    slots,
    ...(opts.images ? { images: opts.images } : {}),
    ...(opts.configDriveSource ? { configDriveSource: opts.configDriveSource } : {}),
    ...(reportSecretUse ? { reportSecretUse } : {}),
  };
  const metrics: ConductorMetrics = {
    wait: 0, save: 0, advance: 0, failed: 0, retry: 0, terminal: 0, conflict: 0, gone: 0, panic: 0, 'lease-busy': 0, 'store-error': 0,
  };
  /** Leases this process holds (to release on stop). */
  const held = new Set<string>();
  /** The resourceVersion of our own last write per host: its change-feed echo is not news. */
  const ownWrites = new Map<string, number>();
  let storeErrors = 0;

  async function processHost(uid: string): Promise<ProcessResult> {
    const lease = `host/${uid}`;
    try {
      const row = await store.getByUid(uid);
      if (!row) {
        await releaseLease(lease);
        ownWrites.delete(uid);
        metrics.gone += 1;
        return {};
      }
      const purpose = String((row.status as { provisioning?: { state?: string } }).provisioning?.state ?? 'unknown');
      if (!(await store.acquireLease(lease, holderId, purpose, leaseTtlMs, clock.now()))) {
        held.delete(lease);
        metrics['lease-busy'] += 1;
        return { requeueAfterMs: leaseTtlMs };
      }
      held.add(lease);
      const renewal = keepRenewing(lease, purpose);
      let result: ReconcileResult;
      try {
        result = await reconcileHost(deps, uid);
      } finally {
        renewal.cancel();
      }
      metrics[result.outcome] += 1;
      storeErrors = 0;
      if (result.wroteVersion !== undefined) ownWrites.set(uid, result.wroteVersion);
      if (result.outcome === 'gone') {
        await releaseLease(lease);
        ownWrites.delete(uid);
        return {};
      }
      return result.requeueAfterMs === undefined ? {} : { requeueAfterMs: result.requeueAfterMs };
    } catch (error) {
      // The store failed (database down, lock timeout): back off on a process-wide count.
      metrics['store-error'] += 1;
      storeErrors += 1;
      log.error('reconcile failed on a store error', { uid, error: String(error) });
      return { requeueAfterMs: nextDelay(storeErrors, random, backoff) };
    }
  }

  function keepRenewing(lease: string, purpose: string): TimerHandle {
    let timer: TimerHandle | undefined;
    let cancelled = false;
    const schedule = () => {
      timer = clock.setTimeout(() => {
        if (cancelled) return;
        store.acquireLease(lease, holderId, purpose, leaseTtlMs, clock.now()).then(
          (ok) => {
            if (!ok) log.warn('lost a lease while working', { lease });
            if (!cancelled) schedule();
          },
          (error) => log.warn('could not renew a lease', { lease, error: String(error) }),
        );
      }, Math.max(1, Math.floor(leaseTtlMs / 3)));
    };
    schedule();
    return {
      cancel() {
        cancelled = true;
        timer?.cancel();
      },
    };
  }

  async function releaseLease(lease: string): Promise<void> {
    if (!held.delete(lease)) return;
    await store.releaseLease(lease, holderId);
  }

  const queue = new WorkQueue({
    workers,
    clock,
    process: processHost,
    onError: (uid, error) => log.error('work queue caught an error', { uid, error: String(error) }),
  });

  // ---- change feed and resync ------------------------------------------------------------
  let running = false;
  let lastSeq = 0;
  let draining: Promise<void> | undefined;
  let drainAgain = false;
  let unsubscribe: (() => void) | undefined;
  let pollTimer: TimerHandle | undefined;
  let resyncTimer: TimerHandle | undefined;

  function drainChanges(): Promise<void> {
    if (draining) {
      drainAgain = true;
      return draining;
    }
    draining = (async () => {
      do {
        drainAgain = false;
        for (;;) {
          const changes = await store.changesSince(lastSeq, { kind: 'Host', limit: LIST_PAGE });
          for (const change of changes) {
            lastSeq = Math.max(lastSeq, change.seq);
            const uid = change.object.uid;
            if (change.type === 'DELETED') {
              queue.forget(uid);
              continue;
            }
            if (ownWrites.get(uid) === change.object.resourceVersion) continue;
            queue.add(uid);
          }
          if (changes.length < LIST_PAGE) break;
        }
      } while (drainAgain && running);
    })()
      .catch((error) => log.warn('change feed poll failed', { error: String(error) }))
      .finally(() => {
        draining = undefined;
      });
    return draining;
  }

  async function relist(): Promise<void> {
    let cursor: string | undefined;
    do {
      const page = await store.list({ kind: 'Host', limit: LIST_PAGE, ...(cursor ? { continue: cursor } : {}) });
      for (const row of page.items) queue.add(row.uid);
      cursor = page.continue;
    } while (cursor && running);
  }

  function schedulePoll(): void {
    pollTimer = clock.setTimeout(() => {
      if (!running) return;
      void drainChanges().finally(() => running && schedulePoll());
    }, pollMs);
  }

  function scheduleResync(): void {
    resyncTimer = clock.setTimeout(() => {
      if (!running) return;
      relist()
        .catch((error) => log.warn('resync failed', { error: String(error) }))
        .finally(() => running && scheduleResync());
    }, resyncMs);
  }

  return {
    holderId,
    metrics,
    async start() {
      if (running) return;
      running = true;
      // Position the feed before listing, so nothing written between the two is missed.
      lastSeq = await store.latestChangeSeq();
      unsubscribe = store.onCommittedChange(() => {
        if (running) void drainChanges();
      });
      await relist();
      schedulePoll();
      scheduleResync();
      log.info('conductor started', { holderId, workers });
    },
    async stop(options = {}) {
      if (!running) return;
      running = false;
      unsubscribe?.();
      pollTimer?.cancel();
      resyncTimer?.cancel();
      await queue.stop();
      await draining;
      if (options.releaseLeases ?? true) {
        for (const lease of [...held]) {
          await releaseLease(lease).catch((error) => log.warn('could not release a lease', { lease, error: String(error) }));
        }
      }
      held.clear();
      log.info('conductor stopped', { holderId });
    },
    enqueue(uid) {
      if (running) queue.add(uid);
    },
    idle: () => queue.idle(),
  };
}
