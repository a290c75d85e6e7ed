// FakeFleet: the simulated hardware behind every fake://NAME host, and the control panel tests
// use to script it (after Ironic's drivers/modules/fake.py, which keeps power state on the node,
// rejects bad input with the real exception and sleeps a configurable range, and Metal3's
// provisioner fixture, whose state tests set directly).
//
// The fake is only useful if it behaves like hardware, because the conductor's correctness is
// proven against it:
// - Changes take time and happen on their own. A power change is stored as {target, at} and
//   resolved lazily against `now()` whenever the machine is read, so callers must poll.
// - Agent operations are stored with their start time and duration; progress, completion and
//   their effects on the disk are computed from the clock, so they survive a restart of the
//   control plane (with `statePath`) exactly as a real server keeps running when Ingot dies.
// - Powering off or resetting a machine kills the agent running in its RAM: operations still
//   running are lost, finished ones keep their result (the real agent reports results to the
//   control plane, which stores them).
// - The agent runs only after a boot from the network (pxe, uefi-http) or from an inserted
//   virtual CD, and its session ends with AgentPort.finish (its one-boot token is revoked); the
//   next agent operation needs another boot.
//
// Scenarios by name are in fake-scenarios.ts (table) and docs/fake-driver.md.
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { createHash } from 'node:crypto';
import type { AgentOperationKind, AgentPoll, AgentStartRequest } from '../../conductor/agent-port.js';
import { AgentUnavailable } from '../../conductor/agent-port.js';
import type { HardwareDetails, ImageSpec } from '../../model/host.js';
import { DNS_LABEL } from '../../model/envelope.js';
import {
  BmcAuthenticationError,
  BmcRefused,
  BmcUnreachable,
  type BmcCredentials,
  type BootDevice,
  type FirmwareComponent,
  type PowerState,
} from '../driver.js';
import { FAKE_BIOS_DEFAULTS, fakeFirmware, fakeInventory, fakeUuid } from './fake-inventory.js';
import {
  BAD_CREDENTIALS_PASSWORD,
  FLAKY_FAILURE_RATE,
  HEALABLE_SCENARIOS,
  SLOW_FACTOR,
  scenarioOf,
  type FakeScenario,
} from './fake-scenarios.js';

/** Operations failNext() can script: BMC driver parts and agent operations. */
export type FakeOp =
  | 'identify'
  | 'power'
  | 'boot'
  | 'media'
  | 'inventory'
  | 'secureBoot'
  | 'bios'
  | 'firmware'
  | 'inspect'
  | 'deploy'
  | 'clean';
export const FAKE_OPS: readonly FakeOp[] = ['identify', 'power', 'boot', 'media', 'inventory', 'secureBoot', 'bios', 'firmware', 'inspect', 'deploy', 'clean'];

/**
 * How a scripted failure shows. For BMC calls: timeout -> BmcUnreachable, refused -> BmcRefused,
 * auth -> BmcAuthenticationError. For agent operations: timeout -> start() throws AgentUnavailable
 * (nothing recorded, the conductor waits and starts again); refused/auth -> the operation runs
 * and then polls as failed.
 */
export type FakeFailureKind = 'timeout' | 'refused' | 'auth';

export type DelayRange = readonly [min: number, max: number];

export interface FakeFleetDelays {
  /** Time for a power change (on, off, the off-on of a reboot) to take effect. */
  powerMs?: DelayRange;
  inspectMs?: DelayRange;
  deployMs?: DelayRange;
  cleanMs?: DelayRange;
  /** Latency of every BMC call (a real sleep, unlike the others, which are measured on now()). */
  callMs?: DelayRange;
}

export interface FakeFleetOptions {
  delays?: FakeFleetDelays;
  /** Uniform in [0, 1); drives delays and the flaky scenario. Default Math.random. */
  random?: () => number;
  /** Milliseconds since the epoch. Default Date.now. */
  now?: () => number;
  /** When set, the hardware state is kept in this JSON file (loaded at construction, written after each change). */
  statePath?: string;
}

export const DEFAULT_FAKE_DELAYS: Required<FakeFleetDelays> = {
  powerMs: [300, 1_000],
  inspectMs: [1_000, 3_000],
  deployMs: [2_000, 6_000],
  cleanMs: [1_000, 3_000],
  callMs: [0, 0],
};

type BiosValue = string | number | boolean;

/** What the agent wrote to the machine's disk, so tests can assert it. User data is kept only as a digest. */
export interface FakeDiskImage {
  image: ImageSpec;
  rootDevice: string;
  writtenAt: number;
  operationId: string;
  configDrive?: { metaData: Record<string, unknown>; networkData?: Record<string, unknown>; userDataSha256?: string };
}

export interface FakeAgentOperation {
  id: string;
  kind: AgentOperationKind;
  startedAt: number;
  durationMs: number;
  /** Decided when the operation starts (scenario or failNext); shown when it ends. */
  failure?: string;
  deploy?: Omit<FakeDiskImage, 'writtenAt' | 'operationId'>;
  clean?: { mode: 'metadata' | 'full' };
  completedAt?: number;
  lostAt?: number;
  lostReason?: string;
}

/** The whole persisted state of one machine; plain JSON. */
export interface FakeMachineState {
  name: string;
  healed: boolean;
  power: PowerState;
  powerTransition?: { target: PowerState; at: number };
  bootDevice: { persistent: BootDevice | 'none'; once?: BootDevice; mode: 'UEFI' | 'legacy' };
  bootCount: number;
  /** The last boot: when, from which device, and whether secure boot was on for it. */
  lastBoot?: { at: number; from: BootDevice; secureBoot?: boolean };
  media: { url?: string };
  secureBoot: { enabled: boolean };
  bios: { current: Record<string, BiosValue>; pending?: Record<string, BiosValue> };
  /** Set by setCredentials; otherwise the scenario decides (any credentials, or bad-credentials' password). */
  credentials?: BmcCredentials;
  disk: { written?: FakeDiskImage; cleans: Array<{ mode: 'metadata' | 'full'; at: number; operationId: string }> };
  agent: { running: boolean; bootedAt?: number; sessionsFinished: number; lastFinishedAt?: number };
  operations: Record<string, FakeAgentOperation>;
  failNext: Array<{ op: FakeOp; kind: FakeFailureKind; remaining: number }>;
}

/** What machine(name) returns: the state plus what is derived from the name. A copy: edit through the panel. */
export interface FakeMachineView extends FakeMachineState {
  scenario: FakeScenario;
  /** The scenario still in force (healthy once healed, for the scenarios heal() clears). */
  activeScenario: FakeScenario;
  uuid: string;
  inventory: HardwareDetails;
  firmware: FirmwareComponent[];
  secureBootCapable: boolean;
}

const STATE_VERSION = 1;
const MAX_OPERATIONS_KEPT = 64;
const MAX_CLEANS_KEPT = 32;
const MAX_MACHINES = 10_000;
const MAX_SCRIPTED_FAILURES = 1_000;
const LOCK_WAIT_MS = 5_000;
const STALE_LOCK_MS = 10_000;
const LOCK_SLEEPER = new Int32Array(new SharedArrayBuffer(4));
const LOCKS_HELD_BY_THIS_PROCESS = new Set<string>();

export class FakeFleet {
  readonly #machines = new Map<string, FakeMachineState>();
  readonly #delays: Required<FakeFleetDelays>;
  readonly #random: () => number;
  readonly #now: () => number;
  readonly #statePath: string | undefined;
  /** stat() fingerprint of the state file as this fleet last read or wrote it. */
  #seen = '';

  constructor(opts: FakeFleetOptions = {}) {
    this.#delays = { ...DEFAULT_FAKE_DELAYS, ...opts.delays };
    for (const [key, range] of Object.entries(this.#delays)) {
      const [min, max] = range;
      if (!(Number.isFinite(min) && Number.isFinite(max) && min >= 0 && max >= min)) {
        throw new RangeError(`FakeFleet delays.${key} must be [min, max] with 0 <= min <= max, got [${min}, ${max}]`);
      }
    }
    this.#random = opts.random ?? Math.random;
    this.#now = opts.now ?? Date.now;
    this.#statePath = opts.statePath;
    if (this.#statePath) {
      mkdirSync(dirname(this.#statePath), { recursive: true });
      this.#load(this.#statePath);
    }
  }

  now(): number {
    return this.#now();
  }

  // ---- control panel -------------------------------------------------------------------

  /** A snapshot of one machine (created healthy, or per its scenario, on first use). */
  machine(name: string): FakeMachineView {
    const m = this.#machine(name);
    if (this.#settle(m, this.#now())) this.#save();
    const scenario = scenarioOf(name);
    const capable = scenario !== 'no-secure-boot';
    return {
      ...structuredClone(m),
      scenario,
      activeScenario: this.#active(m),
      uuid: fakeUuid(name),
      inventory: fakeInventory(name, capable),
      firmware: fakeFirmware(name),
      secureBootCapable: capable,
    };
  }

  /** Names of the machines the fleet has seen. */
  names(): string[] {
    this.#enter();
    return [...this.#machines.keys()].sort();
  }

  /** Makes the next `count` calls of `op` on `name` fail as `kind`. */
  failNext(name: string, op: FakeOp, kind: FakeFailureKind, count = 1): void {
    if (!FAKE_OPS.includes(op)) throw new RangeError(`failNext: unknown op "${op}"; use one of ${FAKE_OPS.join(', ')}`);
    if (!['timeout', 'refused', 'auth'].includes(kind)) throw new RangeError(`failNext: unknown kind "${kind}"; use timeout, refused or auth`);
    if (!Number.isInteger(count) || count < 1 || count > 1000) throw new RangeError('failNext: count must be an integer from 1 to 1000');
    const m = this.#machine(name);
    if (m.failNext.length >= MAX_SCRIPTED_FAILURES) throw new RangeError(`failNext: ${name} already has ${MAX_SCRIPTED_FAILURES} scripted failures`);
    m.failNext.push({ op, kind, remaining: count });
    this.#save();
  }

  /** "Someone changed the password on the BMC": from now on only these credentials are accepted. */
  setCredentials(name: string, credentials: BmcCredentials): void {
    this.#machine(name).credentials = { username: credentials.username, password: credentials.password };
    this.#save();
  }

  /** Clears the host's failing scenario (see HEALABLE_SCENARIOS) and any scripted failures. */
  heal(name: string): void {
    const m = this.#machine(name);
    m.healed = true;
    m.failNext = [];
    this.#save();
  }

  // ---- used by the fake driver -----------------------------------------------------------

  /**
   * The checks every BMC call goes through, in the order a real call meets them: scripted
   * failures, the network (flaky), then authentication.
   */
  beginCall(name: string, op: FakeOp, credentials: BmcCredentials): void {
    const m = this.#machine(name);
    const scripted = this.#takeFailure(m, op);
    if (scripted) {
      this.#save();
      if (scripted === 'timeout') throw new BmcUnreachable(`fake host ${name}: ${op} call timed out (scripted by failNext)`);
      if (scripted === 'auth') throw new BmcAuthenticationError(`fake host ${name}: the BMC rejected the username or password (scripted by failNext); fix the credentials secret`);
      throw new BmcRefused(`fake host ${name}: the BMC refused the ${op} request (scripted by failNext)`);
    }
    const active = this.#active(m);
    if (active === 'flaky' && this.#random() < FLAKY_FAILURE_RATE) {
      throw new BmcUnreachable(`fake host ${name}: the BMC did not answer (scenario flaky); retry later`);
    }
    if (!this.#credentialsAccepted(m, credentials)) {
      throw new BmcAuthenticationError(
        `fake host ${name}: the BMC rejected the username or password; update the Secret named in spec.bmc.credentialsName`,
      );
    }
  }

  /** The scenario in force for `name` (healthy once healed). */
  activeScenario(name: string): FakeScenario {
    return this.#active(this.#machine(name));
  }

  /** A real-time sleep for one BMC call's latency (0 by default, so no timer at all). */
  callLatencyMs(name: string): number {
    return this.#sample(this.#delays.callMs, name);
  }

  getPower(name: string): PowerState {
    const m = this.#settled(name);
    return m.power;
  }

  /** Asks for a power state; it takes effect powerMs later. Asking for what is already coming is a no-op. */
  setPower(name: string, target: PowerState): void {
    const m = this.#settled(name);
    const now = this.#now();
    const pending = m.powerTransition?.target;
    if (pending === target) return;
    if (pending !== undefined) {
      // Changing one's mind mid-transition: the machine stays as it is (e.g. off-then-on before
      // the off landed leaves it running).
      delete m.powerTransition;
      if (m.power !== target) m.powerTransition = { target, at: now + this.#sample(this.#delays.powerMs, name) };
    } else if (m.power !== target) {
      m.powerTransition = { target, at: now + this.#sample(this.#delays.powerMs, name) };
    }
    this.#save();
  }

  /** A reset: the machine goes dark at once (killing the agent) and comes back on powerMs later. */
  reboot(name: string): void {
    const m = this.#settled(name);
    const now = this.#now();
    if (m.power === 'on') this.#stopAgent(m, now, 'reset');
    m.power = 'off';
    m.powerTransition = { target: 'on', at: now + this.#sample(this.#delays.powerMs, name) };
    this.#save();
  }

  getBootDevice(name: string): { device: BootDevice | 'none'; persistent: boolean } {
    const m = this.#settled(name);
    return m.bootDevice.once !== undefined ? { device: m.bootDevice.once, persistent: false } : { device: m.bootDevice.persistent, persistent: true };
  }

  setBootDevice(name: string, request: { device: BootDevice; persistent: boolean; mode?: 'UEFI' | 'legacy' }): void {
    const m = this.#settled(name);
    const mode = request.mode ?? m.bootDevice.mode;
    if (request.device === 'uefi-http' && mode === 'legacy') {
      throw new BmcRefused(`fake host ${name}: uefi-http boot needs UEFI mode, not legacy`);
    }
    if (mode === 'legacy' && m.secureBoot.enabled) {
      throw new BmcRefused(`fake host ${name}: legacy boot is not possible while secure boot is enabled; disable secure boot first`);
    }
    if (request.persistent) {
      m.bootDevice = { persistent: request.device, mode };
    } else {
      m.bootDevice = { ...m.bootDevice, once: request.device, mode };
    }
    this.#save();
  }

  insertMedia(name: string, url: string): void {
    const m = this.#settled(name);
    if (m.media.url === url) return;
    m.media = { url };
    this.#save();
  }

  ejectMedia(name: string): void {
    const m = this.#settled(name);
    if (m.media.url === undefined) return;
    m.media = {};
    this.#save();
  }

  /** `enabled` is the setting; `currentBoot` whether the running boot had it (a change needs a reboot to show there). */
  getSecureBoot(name: string): { enabled: boolean; capable: boolean; currentBoot: boolean } {
    const m = this.#settled(name);
    const currentBoot = m.power === 'on' && m.lastBoot?.secureBoot === true;
    return { enabled: m.secureBoot.enabled, capable: scenarioOf(name) !== 'no-secure-boot', currentBoot };
  }

  setSecureBoot(name: string, enabled: boolean): void {
    const m = this.#settled(name);
    if (enabled && scenarioOf(name) === 'no-secure-boot') {
      throw new BmcRefused(`fake host ${name}: this system does not support UEFI secure boot (scenario no-secure-boot); choose a node type without the secure-boot capability`);
    }
    if (enabled && m.bootDevice.mode === 'legacy') {
      throw new BmcRefused(`fake host ${name}: secure boot needs UEFI boot mode; set the boot mode to UEFI first`);
    }
    if (m.secureBoot.enabled === enabled) return;
    m.secureBoot = { enabled };
    this.#save();
  }

  getBios(name: string): Record<string, BiosValue> {
    return { ...this.#settled(name).bios.current };
  }

  /** Stages settings (merged with already-staged ones); they apply at the next power-on or reset. */
  stageBios(name: string, settings: Record<string, BiosValue>): void {
    const m = this.#settled(name);
    m.bios.pending = { ...(m.bios.pending ?? {}), ...settings };
    this.#save();
  }

  stageBiosDefaults(name: string): void {
    const m = this.#settled(name);
    m.bios.pending = { ...FAKE_BIOS_DEFAULTS };
    this.#save();
  }

  // ---- used by the fake agent ------------------------------------------------------------

  startOperation(name: string, operationId: string, request: AgentStartRequest): void {
    const m = this.#settled(name);
    if (m.operations[operationId]) return; // idempotent: running, finished or lost, it is that operation
    if (!m.agent.running) {
      throw new AgentUnavailable(this.#whyNoAgent(m));
    }
    const busy = Object.values(m.operations).find((op) => op.completedAt === undefined && op.lostAt === undefined);
    if (busy) {
      throw new AgentUnavailable(`the agent on fake host ${name} is still running ${busy.kind} operation ${busy.id}; poll it until it ends`);
    }
    const kind = request.kind;
    const scripted = this.#takeFailure(m, kind);
    if (scripted === 'timeout') {
      this.#save();
      throw new AgentUnavailable(`the agent on fake host ${name} did not answer (scripted by failNext); try again`);
    }
    const now = this.#now();
    const range = kind === 'inspect' ? this.#delays.inspectMs : kind === 'deploy' ? this.#delays.deployMs : this.#delays.cleanMs;
    const op: FakeAgentOperation = { id: operationId, kind, startedAt: now, durationMs: this.#sample(range, name) };
    const active = this.#active(m);
    if (scripted) op.failure = `the agent's ${kind} on fake host ${name} failed (scripted by failNext: ${scripted})`;
    if (request.kind === 'inspect') {
      if (!scripted && active === 'fail-inspect') {
        op.failure = `inspection of fake host ${name} failed: the agent could not read the hardware inventory (scenario fail-inspect)`;
      }
    } else if (request.kind === 'deploy') {
      const { image, configDrive, rootDeviceHints } = request.deploy;
      const rootDevice = chooseRootDevice(fakeInventory(name, true), rootDeviceHints);
      op.deploy = {
        image: { ...image },
        rootDevice: rootDevice ?? '',
        ...(configDrive
          ? {
              configDrive: {
                metaData: structuredClone(configDrive.metaData),
                ...(configDrive.networkData ? { networkData: structuredClone(configDrive.networkData) } : {}),
                ...(configDrive.userData !== undefined ? { userDataSha256: createHash('sha256').update(configDrive.userData).digest('hex') } : {}),
              },
            }
          : {}),
      };
      if (!scripted && rootDevice === undefined) {
        op.failure = `deploy on fake host ${name} failed: no disk matches spec.rootDeviceHints ${JSON.stringify(rootDeviceHints)}; the disks are listed in status.hardware.storage`;
      } else if (!scripted && active === 'fail-provision') {
        op.failure = `deploy on fake host ${name} failed: the image written from ${image.url} does not match its ${image.checksumType ?? 'sha256'} checksum; what was written has been erased (scenario fail-provision)`;
      }
    } else {
      op.clean = { mode: request.clean.mode };
      if (!scripted && active === 'fail-clean') {
        op.failure = `cleaning (${request.clean.mode}) of fake host ${name} failed: /dev/sda did not finish erasing (scenario fail-clean)`;
      }
    }
    m.operations[operationId] = op;
    this.#trimOperations(m);
    this.#save();
  }

  pollOperation(name: string, operationId: string): AgentPoll {
    const m = this.#settled(name);
    const op = m.operations[operationId];
    if (!op) {
      return {
        state: 'failed',
        message: `the agent on fake host ${name} lost operation ${operationId}: it has no record of it (never started, or the agent was restarted); start the step again under a new operation id`,
      };
    }
    if (op.lostAt !== undefined) {
      return {
        state: 'failed',
        message: `the agent on fake host ${name} lost ${op.kind} operation ${operationId}: the host was ${op.lostReason ?? 'restarted'} while it ran; start the step again under a new operation id`,
      };
    }
    if (op.completedAt === undefined) {
      const percent = Math.min(99, Math.max(0, Math.floor(((this.#now() - op.startedAt) / Math.max(1, op.durationMs)) * 100)));
      return { state: 'running', percent, message: `${op.kind} in progress` };
    }
    if (op.failure) return { state: 'failed', message: op.failure };
    if (op.kind === 'inspect') return { state: 'done', inventory: fakeInventory(name, scenarioOf(name) !== 'no-secure-boot') };
    if (op.kind === 'deploy') return { state: 'done', rootDevice: op.deploy!.rootDevice };
    return { state: 'done' };
  }

  /** Ends the agent's session: its one-boot token is revoked, so the next operation needs a new boot. */
  finishAgent(name: string): void {
    const m = this.#settled(name);
    const now = this.#now();
    const wasRunning = m.agent.running;
    this.#stopAgent(m, now, 'told to finish its session');
    if (wasRunning) {
      m.agent.sessionsFinished += 1;
      m.agent.lastFinishedAt = now;
    }
    this.#save();
  }

  // ---- the simulation ----------------------------------------------------------------------

  #machine(name: string): FakeMachineState {
    this.#enter();
    const existing = this.#machines.get(name);
    if (existing) return existing;
    if (typeof name !== 'string' || !DNS_LABEL.test(name) || name.length > 63) {
      throw new BmcRefused(`"${String(name).slice(0, 80)}" is not a fake host name; use fake://NAME with NAME a DNS label`);
    }
    if (this.#machines.size >= MAX_MACHINES) throw new BmcRefused(`the fake fleet is full (${MAX_MACHINES} machines)`);
    const m: FakeMachineState = {
      name,
      healed: false,
      power: 'off',
      bootDevice: { persistent: 'none', mode: 'UEFI' },
      bootCount: 0,
      media: {},
      secureBoot: { enabled: false },
      bios: { current: { ...FAKE_BIOS_DEFAULTS } },
      disk: { cleans: [] },
      agent: { running: false, sessionsFinished: 0 },
      operations: {},
      failNext: [],
    };
    this.#machines.set(name, m);
    this.#save();
    return m;
  }

  #settled(name: string): FakeMachineState {
    const m = this.#machine(name);
    if (this.#settle(m, this.#now())) this.#save();
    return m;
  }

  #active(m: FakeMachineState): FakeScenario {
    const scenario = scenarioOf(m.name);
    return m.healed && HEALABLE_SCENARIOS.has(scenario) ? 'healthy' : scenario;
  }

  #credentialsAccepted(m: FakeMachineState, given: BmcCredentials): boolean {
    if (m.credentials) return given.username === m.credentials.username && given.password === m.credentials.password;
    if (this.#active(m) === 'bad-credentials') return given.password === BAD_CREDENTIALS_PASSWORD;
    return true;
  }

  #takeFailure(m: FakeMachineState, op: FakeOp): FakeFailureKind | undefined {
    const index = m.failNext.findIndex((f) => f.op === op);
    if (index < 0) return undefined;
    const entry = m.failNext[index]!;
    entry.remaining -= 1;
    if (entry.remaining <= 0) m.failNext.splice(index, 1);
    return entry.kind;
  }

  #sample(range: DelayRange, name: string): number {
    const [min, max] = range;
    const factor = scenarioOf(name) === 'slow' ? SLOW_FACTOR : 1;
    if (max === 0) return 0;
    return Math.round((min + this.#random() * (max - min)) * factor);
  }

  /** Brings the machine up to `now`: lands a due power change, then finishes due agent operations. */
  #settle(m: FakeMachineState, now: number): boolean {
    let changed = false;
    const transition = m.powerTransition;
    if (transition && transition.at <= now) {
      this.#settleOperations(m, transition.at);
      delete m.powerTransition;
      if (transition.target === 'off') {
        this.#stopAgent(m, transition.at, 'powered off');
        m.power = 'off';
      } else {
        this.#powerUp(m, transition.at);
      }
      changed = true;
    }
    return this.#settleOperations(m, now) || changed;
  }

  /** A boot: staged BIOS settings apply, a one-time boot device is used up, the agent runs if booted into it. */
  #powerUp(m: FakeMachineState, at: number): void {
    m.power = 'on';
    if (m.bios.pending) {
      m.bios.current = { ...m.bios.current, ...m.bios.pending };
      delete m.bios.pending;
    }
    let from: BootDevice = m.bootDevice.once ?? (m.bootDevice.persistent === 'none' ? (m.disk.written ? 'hdd' : 'pxe') : m.bootDevice.persistent);
    delete m.bootDevice.once;
    // An empty virtual CD drive falls through to the disk, and an empty disk to the network,
    // as a firmware boot order does.
    if (from === 'cd' && !m.media.url) from = m.disk.written ? 'hdd' : 'pxe';
    if (from === 'hdd' && !m.disk.written) from = 'pxe';
    m.bootCount += 1;
    m.lastBoot = { at, from, secureBoot: m.secureBoot.enabled };
    m.agent.running = from !== 'hdd';
    if (m.agent.running) m.agent.bootedAt = at;
  }

  #stopAgent(m: FakeMachineState, at: number, reason: string): void {
    this.#settleOperations(m, at);
    for (const op of Object.values(m.operations)) {
      if (op.completedAt === undefined && op.lostAt === undefined) {
        op.lostAt = at;
        op.lostReason = reason;
      }
    }
    m.agent.running = false;
  }

  #settleOperations(m: FakeMachineState, now: number): boolean {
    let changed = false;
    const due = Object.values(m.operations)
      .filter((op) => op.completedAt === undefined && op.lostAt === undefined && op.startedAt + op.durationMs <= now)
      .sort((a, b) => a.startedAt + a.durationMs - (b.startedAt + b.durationMs));
    for (const op of due) {
      const at = op.startedAt + op.durationMs;
      op.completedAt = at;
      changed = true;
      if (op.kind === 'deploy') {
        if (op.failure) {
          delete m.disk.written; // a failed deploy erases what it wrote (DESIGN.md, Images)
        } else {
          m.disk.written = { ...structuredClone(op.deploy!), writtenAt: at, operationId: op.id };
        }
      } else if (op.kind === 'clean' && !op.failure) {
        delete m.disk.written;
        m.disk.cleans.push({ mode: op.clean!.mode, at, operationId: op.id });
        if (m.disk.cleans.length > MAX_CLEANS_KEPT) m.disk.cleans.splice(0, m.disk.cleans.length - MAX_CLEANS_KEPT);
      }
    }
    return changed;
  }

  #trimOperations(m: FakeMachineState): void {
    const ids = Object.values(m.operations)
      .filter((op) => op.completedAt !== undefined || op.lostAt !== undefined)
      .sort((a, b) => a.startedAt - b.startedAt)
      .map((op) => op.id);
    const excess = Object.keys(m.operations).length - MAX_OPERATIONS_KEPT;
    for (const id of ids.slice(0, Math.max(0, excess))) delete m.operations[id];
  }

  #whyNoAgent(m: FakeMachineState): string {
    if (m.power === 'off') {
      return m.powerTransition?.target === 'on'
        ? `fake host ${m.name} is still powering on; the agent is not up yet`
        : `fake host ${m.name} is powered off, so no agent is running; power it on (booting the agent) first`;
    }
    if (m.lastBoot?.from === 'hdd') {
      return `fake host ${m.name} booted from its disk, so no agent is running; set the boot device to pxe (or cd with the agent image inserted) and reboot`;
    }
    return `the agent session on fake host ${m.name} has ended (finish was called); reboot the host to start a new one`;
  }

  // ---- persistence ---------------------------------------------------------------------------

  /**
   * Several server processes may share one state file (scale-out tests, a conductor taking over
   * another's hosts). Every fleet method runs synchronously, so a lock file taken at its first
   * touch of the state and released in a microtask (after the method returned) covers one whole
   * read-modify-write; under it, the file is re-read if another process wrote it since.
   */
  #enter(): void {
    const path = this.#statePath;
    if (!path) return;
    // The file lock only has to keep other processes out: inside this one, JavaScript runs one
    // synchronous fleet method at a time, so fleets sharing the path share the lock.
    if (!LOCKS_HELD_BY_THIS_PROCESS.has(path)) {
      this.#lock(path);
      LOCKS_HELD_BY_THIS_PROCESS.add(path);
      queueMicrotask(() => {
        LOCKS_HELD_BY_THIS_PROCESS.delete(path);
        try {
          unlinkSync(`${path}.lock`);
        } catch {
          // already gone (broken as stale by another process): nothing to release
        }
      });
    }
    if (this.#fingerprint(path) !== this.#seen) this.#load(path);
  }

  #lock(path: string): void {
    const lockPath = `${path}.lock`;
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      try {
        const fd = openSync(lockPath, 'wx', 0o600);
        writeSync(fd, String(process.pid));
        closeSync(fd);
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      // A holder killed with -9 inside its (sub-millisecond) critical section leaves the lock behind.
      try {
        if (Date.now() - statSync(lockPath).mtimeMs > STALE_LOCK_MS) unlinkSync(lockPath);
      } catch {
        // released meanwhile
      }
      if (Date.now() > deadline) throw new Error(`the fake fleet state file ${path} stayed locked for ${LOCK_WAIT_MS} ms (${lockPath}); is a process stuck holding it?`);
      Atomics.wait(LOCK_SLEEPER, 0, 0, 2);
    }
  }

  #fingerprint(path: string): string {
    try {
      const st = statSync(path);
      return `${st.ino}:${st.mtimeMs}:${st.size}`;
    } catch {
      return '';
    }
  }

  #load(path: string): void {
    if (!existsSync(path)) return;
    const fingerprint = this.#fingerprint(path);
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(path, 'utf8'));
    } catch (err) {
      throw new Error(`the fake fleet state file ${path} is not valid JSON; delete it to start with fresh hardware`, { cause: err });
    }
    const doc = parsed as { version?: unknown; machines?: unknown };
    if (doc.version !== STATE_VERSION || typeof doc.machines !== 'object' || doc.machines === null) {
      throw new Error(`the fake fleet state file ${path} has an unknown format (version ${String(doc.version)}); delete it to start with fresh hardware`);
    }
    const machines = new Map<string, FakeMachineState>();
    for (const [name, state] of Object.entries(doc.machines as Record<string, FakeMachineState>)) {
      if (!DNS_LABEL.test(name) || typeof state !== 'object' || state === null || state.name !== name) {
        throw new Error(`the fake fleet state file ${path} has a malformed machine "${name.slice(0, 80)}"; delete the file to start with fresh hardware`);
      }
      machines.set(name, state);
    }
    this.#machines.clear();
    for (const [name, state] of machines) this.#machines.set(name, state);
    this.#seen = fingerprint;
  }

  /**
   * Written synchronously, before the call that changed the hardware returns: a control plane
   * killed with -9 right after a call must find the change, as it would on a real server. The
   * write goes to a temporary file renamed over the old one (rename is atomic on POSIX), so a
   * crash mid-write leaves the previous state, never half a file. The inventory is derived from
   * names and not stored, which keeps the file small.
   */
  #save(): void {
    const path = this.#statePath;
    if (!path) return;
    const tmp = `${path}.${process.pid}.tmp`;
    const doc = { version: STATE_VERSION, machines: Object.fromEntries(this.#machines) };
    writeFileSync(tmp, JSON.stringify(doc), { mode: 0o600 });
    renameSync(tmp, path);
    this.#seen = this.#fingerprint(path);
  }
}

/**
 * Picks the disk to write, as Ironic does: the first disk matching every hint, or without hints
 * the smallest disk of at least 4 GiB. Sizes in the hints are GiB (Ironic's `size` hint).
 */
export function chooseRootDevice(inventory: HardwareDetails, hints: { deviceName?: string; serialNumber?: string; wwn?: string; minSizeGigabytes?: number; rotational?: boolean } | undefined): string | undefined {
  const disks = inventory.storage ?? [];
  const GiB = 1024 ** 3;
  if (!hints || Object.keys(hints).length === 0) {
    return [...disks].filter((d) => d.sizeBytes >= 4 * GiB).sort((a, b) => a.sizeBytes - b.sizeBytes)[0]?.name;
  }
  const match = disks.find(
    (d) =>
      (hints.deviceName === undefined || d.name === hints.deviceName || d.name === `/dev/${hints.deviceName}`) &&
      (hints.serialNumber === undefined || d.serialNumber === hints.serialNumber) &&
      (hints.wwn === undefined || d.wwn === hints.wwn) &&
      (hints.minSizeGigabytes === undefined || d.sizeBytes >= hints.minSizeGigabytes * GiB) &&
      (hints.rotational === undefined || d.rotational === hints.rotational),
  );
  return match?.name;
}
