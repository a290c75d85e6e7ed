// The lab's machines and what they do over time: power transitions that take a while, boots
// that honour the boot override and virtual media, BIOS settings that apply on the next boot,
// and the tasks that track long operations. State persists to DATA_DIR/lab-state.json
// (mode 0600: it holds the BMC passwords) so a restarted lab keeps its machines as they were.
import { randomUUID } from 'node:crypto';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  buildSystem,
  defaultBios,
  generatePassword,
  type BootRecord,
  type PowerState,
  type ResetType,
  type SystemState,
} from './lab-model.js';
import type { ProfileGroup } from './profile.js';

export const STATE_FILE = 'lab-state.json';
const STATE_VERSION = 1;
const MAX_BOOT_LOG = 200;
const MAX_TASKS_PER_SYSTEM = 32;

export interface LabTask {
  id: string;
  systemId: string;
  name: string;
  startTime: string;
  endTime?: string;
  state: 'Running' | 'Completed' | 'Cancelled';
  /** Epoch ms the transition is expected to end, for PercentComplete. */
  startedAtMs: number;
  endsAtMs: number;
}

interface StateFile {
  version: number;
  url?: string;
  systems: SystemState[];
}

export interface FleetOptions {
  dataDir: string;
  /** How long PoweringOn / PoweringOff each last, in ms. */
  powerTransitionMs: number;
  /** Called after every boot the lab records (the agent runner hooks in here). */
  onBoot?: (system: SystemState, record: BootRecord) => void;
  /** Called when a reset cuts power (off or restart): whatever ran on the system stops. */
  onPowerOff?: (system: SystemState) => void;
  now?: () => number;
}

export type ResetOutcome =
  | { kind: 'started'; task: LabTask }
  /** Carried out before the answer (a lab VM's power change). */
  | { kind: 'done' }
  | { kind: 'noop' }
  | { kind: 'nmi' }
  | { kind: 'refused'; reason: string };

/**
 * Systems whose power, boot and virtual media are real machines rather than the fleet's
 * simulation (lab VMs, src/lab/vm/). The fleet keeps their settings and boot log; the machines
 * decide the power state and carry out resets and media changes.
 */
export interface LabMachines {
  owns(system: SystemState): boolean;
  powerState(system: SystemState): PowerState;
  /** ComputerSystem.Reset; resolves once the machine did it (or refused). */
  reset(system: SystemState, type: ResetType): Promise<ResetOutcome>;
  /** Boot override changed (ComputerSystem.Boot PATCH): the machine's next boot must follow it. */
  bootSettingsChanged(system: SystemState): Promise<void>;
  /** Fetches the image like a BMC and puts it in the CD drive; throws when it cannot. */
  insertMedia(system: SystemState, image: string): Promise<void>;
  ejectMedia(system: SystemState): Promise<void>;
  /** What the lab's admin endpoint shows of the machine (process, files). */
  describe(system: SystemState): Record<string, unknown>;
  close(): Promise<void>;
}

export class LabFleet {
  readonly #opts: FleetOptions;
  readonly #now: () => number;
  readonly #systems = new Map<string, SystemState>();
  /** The systems served this run, in order (a restarted lab may hold more in its state file). */
  readonly #served: SystemState[] = [];
  #allSystems: SystemState[] = [];
  readonly #tasks = new Map<string, LabTask>();
  readonly #timers = new Map<string, NodeJS.Timeout>();
  #url: string | undefined;
  #saveTimer: NodeJS.Timeout | undefined;
  #saving: Promise<void> = Promise.resolve();
  #closed = false;
  #machines: LabMachines | undefined;

  private constructor(opts: FleetOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
  }

  /**
   * Loads the fleet from DATA_DIR/lab-state.json, adding machines built from `groups` when the
   * file holds fewer than asked for. Existing machines keep their hardware and state; the
   * profile only shapes machines created now. `build` makes machine i instead of the
   * profile (lab VMs); `groups` then only counts them.
   */
  static async open(opts: FleetOptions & { groups: ProfileGroup[]; build?: (index: number, total: number) => SystemState }): Promise<LabFleet> {
    const fleet = new LabFleet(opts);
    await mkdir(opts.dataDir, { recursive: true, mode: 0o700 });
    const file = join(opts.dataDir, STATE_FILE);
    let stored: StateFile | undefined;
    try {
      stored = JSON.parse(await readFile(file, 'utf8')) as StateFile;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new Error(`cannot read lab state ${file}: ${(err as Error).message}; move it away to start a fresh lab`, { cause: err });
      }
    }
    if (stored && (stored.version !== STATE_VERSION || !Array.isArray(stored.systems))) {
      throw new Error(`lab state ${file} has an unknown format (version ${String(stored.version)}); move it away to start a fresh lab`);
    }
    const all = stored?.systems ?? [];
    const total = Math.max(all.length, opts.groups.length);
    for (let i = all.length; i < opts.groups.length; i++) all.push(opts.build ? opts.build(i, total) : buildSystem(i, total, opts.groups[i]!));
    fleet.#allSystems = all;
    for (const s of all.slice(0, opts.groups.length)) {
      fleet.#systems.set(s.id, s);
      fleet.#served.push(s);
      // A transition interrupted by a restart carries on from where its clock says it is.
      if (s.power.steps.length > 0) fleet.#startTransitionTask(s, 'Power transition (resumed)');
    }
    fleet.#url = stored?.url;
    await fleet.flush();
    return fleet;
  }

  get dataDir(): string {
    return this.#opts.dataDir;
  }

  get systems(): readonly SystemState[] {
    return this.#served;
  }

  get(id: string): SystemState | undefined {
    return this.#systems.get(id);
  }

  setUrl(url: string): void {
    this.#url = url;
    this.save();
  }

  /** Hands the systems `machines` owns over to it (lab VMs). */
  attachMachines(machines: LabMachines): void {
    this.#machines = machines;
  }

  /** The real machine behind `system`, or undefined when the fleet simulates it. */
  machinesFor(system: SystemState): LabMachines | undefined {
    return this.#machines?.owns(system) ? this.#machines : undefined;
  }

  // ---- power ---------------------------------------------------------------------------------

  /** The Redfish PowerState now, after applying any transition steps whose time has passed. */
  powerState(system: SystemState): PowerState {
    const machines = this.machinesFor(system);
    if (machines) return machines.powerState(system);
    this.settle(system);
    return system.power.steps[0]?.state ?? system.power.state;
  }

  /** Advances a system's transition to the present. Idempotent; cheap when nothing is running. */
  settle(system: SystemState): void {
    const now = this.#now();
    let changed = false;
    while (system.power.steps.length > 0 && system.power.steps[0]!.until <= now) {
      const step = system.power.steps.shift()!;
      changed = true;
      if (step.state === 'PoweringOn') this.boot(system, new Date(step.until).toISOString());
    }
    if (system.power.steps.length === 0 && system.power.taskId) {
      const task = this.#tasks.get(system.power.taskId);
      if (task && task.state === 'Running') {
        task.state = 'Completed';
        task.endTime = new Date(Math.min(now, task.endsAtMs)).toISOString();
      }
      delete system.power.taskId;
      changed = true;
    }
    if (changed) {
      this.save();
      const timer = this.#timers.get(system.id);
      if (timer) {
        clearTimeout(timer);
        this.#timers.delete(system.id);
      }
    }
    if (system.power.steps.length > 0 && !this.#timers.has(system.id) && !this.#closed) this.#armTimer(system);
  }

  #armTimer(system: SystemState): void {
    const next = system.power.steps[0];
    if (!next) return;
    const timer = setTimeout(() => {
      this.#timers.delete(system.id);
      this.settle(system);
    }, Math.max(0, next.until - this.#now()));
    timer.unref();
    this.#timers.set(system.id, timer);
  }

  /**
   * Performs a ComputerSystem.Reset (Redfish Resource.ResetType). Restarts of a powered-off
   * system power it on (as the driver contract expects of `reboot`). A new request replaces a
   * transition in progress; its task ends Cancelled.
   */
  reset(system: SystemState, type: ResetType): ResetOutcome {
    const current = this.powerState(system);
    const ms = this.#opts.powerTransitionMs;
    const now = this.#now();
    const settledOn = current === 'On' || current === 'PoweringOn';
    let steps: SystemState['power']['steps'];
    let final: 'On' | 'Off';
    switch (type) {
      case 'Nmi':
        if (current !== 'On') return { kind: 'refused', reason: `the system is ${current}; a diagnostic interrupt needs it On` };
        return { kind: 'nmi' };
      case 'On':
        if (settledOn) return { kind: 'noop' };
        steps = [{ state: 'PoweringOn', until: now + ms }];
        final = 'On';
        break;
      case 'ForceOff':
      case 'GracefulShutdown':
        if (!settledOn) return { kind: 'noop' };
        steps = [{ state: 'PoweringOff', until: now + ms }];
        final = 'Off';
        break;
      case 'GracefulRestart':
      case 'ForceRestart':
      case 'PowerCycle':
        steps = settledOn
          ? [
              { state: 'PoweringOff', until: now + ms },
              { state: 'PoweringOn', until: now + 2 * ms },
            ]
          : [{ state: 'PoweringOn', until: now + ms }];
        final = 'On';
        break;
    }
    if (system.power.taskId) {
      const old = this.#tasks.get(system.power.taskId);
      if (old && old.state === 'Running') {
        old.state = 'Cancelled';
        old.endTime = new Date(now).toISOString();
      }
    }
    system.power.steps = steps;
    system.power.state = final;
    if (type !== 'On' && settledOn) this.#opts.onPowerOff?.(system);
    const task = this.#startTransitionTask(system, `${type} of ${system.id}`);
    this.save();
    return { kind: 'started', task };
  }

  #startTransitionTask(system: SystemState, name: string): LabTask {
    const now = this.#now();
    const task: LabTask = {
      id: randomUUID(),
      systemId: system.id,
      name,
      startTime: new Date(now).toISOString(),
      state: 'Running',
      startedAtMs: now,
      endsAtMs: system.power.steps.at(-1)?.until ?? now,
    };
    this.#tasks.set(task.id, task);
    system.power.taskId = task.id;
    this.#pruneTasks(system.id);
    const timer = this.#timers.get(system.id);
    if (timer) clearTimeout(timer);
    this.#timers.delete(system.id);
    this.#armTimer(system);
    return task;
  }

  #pruneTasks(systemId: string): void {
    const mine = [...this.#tasks.values()].filter((t) => t.systemId === systemId);
    for (const t of mine.slice(0, Math.max(0, mine.length - MAX_TASKS_PER_SYSTEM))) {
      if (t.state !== 'Running') this.#tasks.delete(t.id);
    }
  }

  task(id: string): LabTask | undefined {
    const task = this.#tasks.get(id);
    if (task) {
      const system = this.#systems.get(task.systemId);
      if (system) this.settle(system);
    }
    return task;
  }

  tasksOf(systemId: string): LabTask[] {
    const system = this.#systems.get(systemId);
    if (system) this.settle(system);
    return [...this.#tasks.values()].filter((t) => t.systemId === systemId);
  }

  // ---- boot ----------------------------------------------------------------------------------

  /**
   * What happens when a system reaches On: pending BIOS settings become current (they "apply on
   * next reset", Redfish @Redfish.Settings), secure boot takes its configured state (UEFI boots only), the boot
   * source is chosen (override, else disk) and recorded, and a Once override is consumed
   * (ComputerSystem.Boot.BootSourceOverrideEnabled: "Once ... the system boots from the
   * override target one time, then the property reverts to Disabled").
   */
  boot(system: SystemState, at = new Date(this.#now()).toISOString()): BootRecord {
    if (Object.keys(system.bios.pending).length > 0) {
      system.bios.current = { ...system.bios.current, ...system.bios.pending };
      system.bios.pending = {};
    }
    // UEFI Secure Boot verifies UEFI images only: a Legacy (CSM) boot never runs with it,
    // whatever SecureBootEnable says (UEFI 2.x, 32.1; Redfish SecureBoot.SecureBootCurrentBoot).
    system.secureBoot.currentBoot = system.hardware.secureBootCapable && system.secureBoot.enabled && system.boot.mode === 'UEFI';
    const override = system.boot.enabled;
    const target = override === 'Disabled' || system.boot.target === 'None' ? 'Hdd' : system.boot.target;
    const bootMac = system.hardware.nics[0]?.mac;
    const record: BootRecord = { at, source: 'hdd', mode: system.boot.mode, secureBoot: system.secureBoot.currentBoot, override };
    switch (target) {
      case 'Cd':
        record.source = 'cd';
        record.mediaUrl = system.media.inserted ? system.media.image : null;
        break;
      case 'Pxe':
        record.source = 'pxe';
        if (bootMac) record.mac = bootMac;
        break;
      case 'UefiHttp':
        record.source = 'uefi-http';
        if (bootMac) record.mac = bootMac;
        break;
      case 'BiosSetup':
        record.source = 'bios-setup';
        break;
      case 'Hdd':
        record.source = 'hdd';
        break;
    }
    system.bootLog.push(record);
    if (system.bootLog.length > MAX_BOOT_LOG) system.bootLog.splice(0, system.bootLog.length - MAX_BOOT_LOG);
    if (override === 'Once') system.boot.enabled = 'Disabled';
    this.save();
    this.#opts.onBoot?.(system, record);
    return record;
  }

  // ---- settings ------------------------------------------------------------------------------

  resetBiosToDefaults(system: SystemState): void {
    const defaults = defaultBios(system.hardware.serialNumber);
    const pending: Record<string, string | number | boolean> = {};
    for (const [k, v] of Object.entries(defaults)) if (system.bios.current[k] !== v) pending[k] = v;
    system.bios.pending = pending;
    this.save();
  }

  /** Sets a new BMC password (the "credentials changed on the BMC" fault, or an account PATCH). */
  setPassword(system: SystemState, password?: string): string {
    system.credentials.password = password ?? generatePassword();
    this.save();
    return system.credentials.password;
  }

  // ---- persistence ---------------------------------------------------------------------------

  /** Schedules a write of the state file; writes are coalesced. */
  save(): void {
    if (this.#saveTimer || this.#closed) return;
    this.#saveTimer = setTimeout(() => {
      this.#saveTimer = undefined;
      this.flush().catch((err: unknown) => process.emitWarning(`ingot lab: cannot save ${STATE_FILE}: ${(err as Error).message}`));
    }, 20);
    this.#saveTimer.unref();
  }

  /** Writes the state file now (atomically: temp file, then rename). */
  async flush(): Promise<void> {
    if (this.#saveTimer) {
      clearTimeout(this.#saveTimer);
      this.#saveTimer = undefined;
    }
    const body: StateFile = { version: STATE_VERSION, ...(this.#url ? { url: this.#url } : {}), systems: this.#allSystems };
    const text = JSON.stringify(body, null, 1);
    const file = join(this.#opts.dataDir, STATE_FILE);
    const tmp = `${file}.${process.pid}.tmp`;
    // A failed write must not wedge later ones: each write starts from a settled chain.
    this.#saving = this.#saving.catch(() => undefined).then(async () => {
      await writeFile(tmp, text, { mode: 0o600 });
      await chmod(tmp, 0o600);
      await rename(tmp, file);
    });
    await this.#saving;
  }

  async close(): Promise<void> {
    await this.#machines?.close();
    for (const s of this.#served) this.settle(s);
    this.#closed = true;
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
    await this.flush();
  }
}

/** Reads the lab state file without starting a lab (enrollment uses it for credentials). */
export async function readLabState(dataDir: string): Promise<{ url?: string; systems: SystemState[] }> {
  const file = join(dataDir, STATE_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${file}: ${(err as Error).message}; start the lab with \`ingot lab --data-dir ${dataDir}\` first`, { cause: err });
  }
  const parsed = JSON.parse(text) as StateFile;
  if (parsed.version !== STATE_VERSION || !Array.isArray(parsed.systems)) throw new Error(`${file} is not a lab state file this version understands`);
  return { ...(parsed.url ? { url: parsed.url } : {}), systems: parsed.systems };
}
