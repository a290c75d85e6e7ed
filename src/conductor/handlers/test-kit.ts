// Test kit for handler tests: a host builder (`host('available').withImage()`) and a harness
// that runs handlers against the real fake fleet, a manual clock and the real credentials
// resolver over in-memory secrets. Not imported by production code.
import { createDriverRegistry, type DriverRegistry } from '../../drivers/registry.js';
import { FakeFleet } from '../../drivers/fake/fake-fleet.js';
import { API_VERSION } from '../../model/envelope.js';
import type { ErrorType, Host, HostSpec, HostState, HostStatus, ImageSpec } from '../../model/host.js';
import { initialHostStatus } from '../../model/host.js';
import { createManualClock, type ManualClock } from '../clock.js';
import type { ConfigDriveSource } from '../config-drive-source.js';
import { createSecretCredentialsResolver, type CredentialsResolver, type SecretUseListener } from '../credentials.js';
import { handlerContext } from '../engine.js';
import type { Outcome } from '../outcome.js';
import { runHandler } from './index.js';
import { DEFAULT_HANDLER_CONFIG, type HandlerConfig, type ImageProxy } from './types.js';
import { specHash } from '../spec-hash.js';
import { FAILED_CREDENTIALS_VERSION, FAILED_SPEC_HASH, RESUME_STATE } from './error.js';

export const IMAGE: ImageSpec = { url: 'http://images.test/ubuntu.qcow2', checksum: 'a'.repeat(64), checksumType: 'sha256', format: 'qcow2' };
export const OTHER_IMAGE: ImageSpec = { url: 'http://images.test/debian.qcow2', checksum: 'b'.repeat(64), checksumType: 'sha256', format: 'qcow2' };

export class HostBuilder {
  spec: HostSpec;
  status: HostStatus;
  deletionTimestamp?: string;
  annotations: Record<string, string> = {};
  constructor(
    state: HostState,
    readonly name: string,
  ) {
    this.spec = { bmc: { address: `fake://${name}`, credentialsName: 'node-bmc' }, online: false };
    this.status = { ...initialHostStatus(this.spec), provisioning: { state } };
  }
  withImage(image: ImageSpec = IMAGE): this {
    this.spec.image = image;
    return this;
  }
  provisionedWith(image: ImageSpec = IMAGE): this {
    this.status.provisioning.image = image;
    return this;
  }
  online(on = true): this {
    this.spec.online = on;
    return this;
  }
  poweredOn(on = true): this {
    this.status.poweredOn = on;
    return this;
  }
  withSpec(patch: Partial<HostSpec>): this {
    this.spec = { ...this.spec, ...patch };
    return this;
  }
  withoutBmc(): this {
    delete this.spec.bmc;
    return this;
  }
  withStep(stepState: Record<string, unknown>): this {
    this.status.stepState = { ...this.status.stepState, ...stepState };
    return this;
  }
  withStatus(patch: Partial<HostStatus>): this {
    this.status = { ...this.status, ...patch };
    return this;
  }
  /** An error state as the engine leaves it after a failed step in `from`. */
  failed(errorType: ErrorType, opts: { from?: HostState; count?: number; dueInMs?: number; credentialsVersion?: number; now?: number } = {}): this {
    const now = opts.now ?? Date.UTC(2026, 0, 1);
    this.status.provisioning = { state: 'error' };
    this.status.errorType = errorType;
    this.status.errorMessage = `${errorType} failed`;
    this.status.errorCount = opts.count ?? 1;
    this.status.nextAttemptAt = new Date(now + (opts.dueInMs ?? 60_000)).toISOString();
    this.status.stepState = {
      [RESUME_STATE]: opts.from ?? 'registering',
      [FAILED_SPEC_HASH]: specHash(this.spec),
      ...(opts.credentialsVersion !== undefined ? { [FAILED_CREDENTIALS_VERSION]: opts.credentialsVersion } : {}),
    };
    return this;
  }
  withAnnotations(annotations: Record<string, string>): this {
    this.annotations = { ...this.annotations, ...annotations };
    return this;
  }
  deleted(): this {
    this.deletionTimestamp = new Date(Date.UTC(2026, 0, 1)).toISOString();
    return this;
  }
  build(): Host {
    return {
      apiVersion: API_VERSION,
      kind: 'Host',
      metadata: {
        name: this.name,
        uid: `uid-${this.name}`,
        labels: {},
        annotations: { ...this.annotations },
        resourceVersion: '1',
        createdAt: '2026-01-01T00:00:00.000Z',
        updatedAt: '2026-01-01T00:00:00.000Z',
        ...(this.deletionTimestamp ? { deletionTimestamp: this.deletionTimestamp } : {}),
      },
      spec: structuredClone(this.spec),
      status: structuredClone(this.status),
    };
  }
}

/** `host('available', 'fail-power-1').withImage()`; the name picks the fake scenario. */
export function host(state: HostState, name = 'node-1'): HostBuilder {
  return new HostBuilder(state, name);
}

export interface Harness {
  clock: ManualClock;
  fleet: FakeFleet;
  config: HandlerConfig;
  secrets: Map<string, { values: Record<string, string>; version: number }>;
  credentials: CredentialsResolver;
  /** Runs the cross-cutting checks and the state's handler once; the host copy it edited is returned. */
  run(host: Host | HostBuilder): Promise<{ outcome: Outcome; host: Host }>;
  /**
   * Runs the handler repeatedly as the engine would (keeping status after `save`, advancing
   * the clock on `wait`) until it advances, fails, retries, gives up, or rests (a wait of at
   * least idleRecheckMs). Returns the last outcome, the host and every outcome kind seen.
   */
  drive(host: Host | HostBuilder, maxSteps?: number): Promise<{ outcome: Outcome; host: Host; kinds: string[] }>;
}

/** A registry over `base` with no agent for any host, as a server without the agent API has for redfish hosts. */
export function withoutAgent(base: DriverRegistry): DriverRegistry {
  return {
    driverFor: (address) => base.driverFor(address),
    agentFor: (h) => {
      throw new Error(`test registry: no agent for ${h.metadata.name}; the handler should have checked hasAgent()`);
    },
    hasAgent: () => false,
  };
}

export function harness(
  opts: {
    config?: Partial<HandlerConfig>;
    drivers?: (base: DriverRegistry) => DriverRegistry;
    images?: ImageProxy;
    configDriveSource?: ConfigDriveSource;
    reportSecretUse?: SecretUseListener;
  } = {},
): Harness {
  const clock = createManualClock();
  const fleet = new FakeFleet({
    now: () => clock.now(),
    random: () => 0,
    delays: { powerMs: [1_000, 1_000], inspectMs: [5_000, 5_000], deployMs: [10_000, 10_000], cleanMs: [5_000, 5_000], callMs: [0, 0] },
  });
  const config: HandlerConfig = { ...DEFAULT_HANDLER_CONFIG, powerPollMs: 500, agentPollMs: 1_000, agentBootTimeoutMs: 30_000, ...opts.config };
  const secrets = new Map<string, { values: Record<string, string>; version: number }>([
    ['node-bmc', { values: { username: 'admin', password: 'secret' }, version: 1 }],
  ]);
  const credentials = createSecretCredentialsResolver(async ({ name }) => {
    const s = secrets.get(name);
    return s ? { values: { ...s.values }, version: s.version, uid: `uid-${name}` } : undefined;
  });
  const base = createDriverRegistry({ fake: fleet });
  const drivers = opts.drivers ? opts.drivers(base) : base;
  const log = { info() {}, warn() {}, error() {} };
  const deps = {
    drivers,
    credentials,
    clock,
    config,
    log,
    ...(opts.images ? { images: opts.images } : {}),
    ...(opts.configDriveSource ? { configDriveSource: opts.configDriveSource } : {}),
    ...(opts.reportSecretUse ? { reportSecretUse: opts.reportSecretUse } : {}),
  };

  async function run(input: Host | HostBuilder) {
    const h = input instanceof HostBuilder ? input.build() : structuredClone(input);
    const ctx = handlerContext(deps, h);
    const retryHash = h.status.stepState?.retrySpecHash;
    const outcome = await runHandler(ctx, typeof retryHash === 'string' && retryHash !== specHash(h.spec));
    return { outcome, host: ctx.host };
  }

  async function drive(input: Host | HostBuilder, maxSteps = 200) {
    let current = input instanceof HostBuilder ? input.build() : structuredClone(input);
    const kinds: string[] = [];
    for (let i = 0; i < maxSteps; i++) {
      const { outcome, host: edited } = await run(current);
      kinds.push(outcome.kind);
      if (outcome.kind === 'save') {
        current = edited;
        continue;
      }
      if (outcome.kind === 'wait' && outcome.afterMs < config.idleRecheckMs) {
        clock.advance(outcome.afterMs);
        continue;
      }
      return { outcome, host: edited, kinds };
    }
    throw new Error(`handler did not settle in ${maxSteps} steps: ${kinds.slice(-10).join(', ')}`);
  }

  return { clock, fleet, config, secrets, credentials, run, drive };
}
