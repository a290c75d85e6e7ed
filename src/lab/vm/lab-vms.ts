// The lab's VM-backed systems: the BMC side of each lab VM. The Redfish service keeps serving
// every system the same way; for systems with a VM definition the fleet hands power, boot and
// virtual media to this class, which carries them out on the VM's QEMU process:
//
//   Reset On / ForceOff / GracefulShutdown   start QEMU / QMP quit / ACPI power button
//   ForceRestart                             reset line (system_reset), or a new QEMU process when
//                                            firmware settings (boot mode, Secure Boot) changed
//   PowerCycle                               QEMU stops, a new one starts
//   GracefulRestart                          power button, then a power on once the guest is off
//                                            (forced after GRACEFUL_RESTART_MS)
//   Nmi                                      inject-nmi
//   Boot override                            bootindex of disk / CD / NIC (boot-order.ts)
//   InsertMedia / EjectMedia                 fetch the image (media-fetch.ts), change the CD medium
//   PowerState                               from the process: Off, PoweringOn, On, PoweringOff
//
// Every boot, whether the BMC or the guest reset the machine, goes through LabFleet.boot: the
// boot log records it, pending BIOS settings apply, a Once override is consumed.
import { chmod, copyFile, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { LabFleet, LabMachines, ResetOutcome } from '../lab-fleet.js';
import { ensureDiskFile, type PowerState, type ResetType, type SystemState } from '../lab-model.js';
import { nextBootOrder } from './boot-order.js';
import type { PortForward } from './guest-network.js';
import { fetchMediaImage, MediaFetchError, type MediaFetchOptions } from './media-fetch.js';
import type { QemuLaunch } from './qemu-args.js';
import { vmPaths } from './vm-definition.js';
import type { VmHost } from './vm-host.js';
import { VmMachine } from './vm-machine.js';

const execFileAsync = promisify(execFile);

/** How long a GracefulRestart waits for the guest to power off before it is forced. */
export const GRACEFUL_RESTART_MS = 120_000;

export interface LabVmsLog {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
}

export interface LabVmsOptions {
  host: VmHost;
  fleet: LabFleet;
  dataDir: string;
  forwards: readonly PortForward[];
  media?: Omit<MediaFetchOptions, 'forwards'>;
  log?: LabVmsLog;
  gracefulRestartMs?: number;
}

export class LabVmError extends Error {
  constructor(
    message: string,
    /** 4xx: the request cannot be carried out as asked; otherwise the lab or QEMU failed. */
    readonly status: number,
  ) {
    super(message);
  }
}

interface Entry {
  system: SystemState;
  machine: VmMachine;
  /** Serializes power and media operations on one VM. */
  queue: Promise<unknown>;
  /** A GracefulRestart waiting for the guest to go down. */
  restartPending?: NodeJS.Timeout;
}

const silent: LabVmsLog = { info() {}, warn() {} };

export class LabVms implements LabMachines {
  readonly #opts: LabVmsOptions;
  readonly #log: LabVmsLog;
  readonly #vms = new Map<string, Entry>();
  #closed = false;

  constructor(opts: LabVmsOptions) {
    this.#opts = opts;
    this.#log = opts.log ?? silent;
    for (const system of opts.fleet.systems) {
      if (!system.vm) continue;
      system.hardware.secureBootCapable = opts.host.ovmf.secureBoot !== undefined;
      const entry: Entry = { system, machine: undefined as unknown as VmMachine, queue: Promise.resolve() };
      entry.machine = new VmMachine({
        host: opts.host,
        qemuLog: vmPaths(opts.dataDir, system).qemuLog,
        onExit: (exit) => {
          this.#log.info('VM stopped', { system: system.id, reason: exit.reason ?? `exit code ${exit.code ?? exit.signal}` });
          if (!exit.reason && exit.code !== 0) this.#log.warn('QEMU ended without a shutdown event', { system: system.id, code: exit.code, signal: exit.signal, log: vmPaths(opts.dataDir, system).qemuLog });
          if (entry.restartPending && !this.#closed) {
            clearTimeout(entry.restartPending);
            delete entry.restartPending;
            void this.#serial(entry, () => this.#powerOn(entry)).catch((err: unknown) => this.#log.warn('GracefulRestart: power on failed', { system: system.id, error: (err as Error).message }));
          }
          opts.fleet.save();
        },
        onGuestReset: () => {
          // The firmware read the order set after the last boot; record the boot it makes now.
          void this.#serial(entry, async () => {
            this.#opts.fleet.boot(system);
            if (entry.machine.state === 'running') await entry.machine.setBootOrder(nextBootOrder(system));
          }).catch((err: unknown) => this.#log.warn('recording a guest reset failed', { system: system.id, error: (err as Error).message }));
        },
      });
      this.#vms.set(system.id, entry);
    }
  }

  owns(system: SystemState): boolean {
    return this.#vms.has(system.id);
  }

  /** The QEMU process id of a running VM (tests check that none outlives the lab). */
  pidOf(systemId: string): number | undefined {
    return this.#vms.get(systemId)?.machine.pid;
  }

  describe(system: SystemState): Record<string, unknown> {
    const paths = vmPaths(this.#opts.dataDir, system);
    const m = this.#entry(system).machine;
    return {
      ...system.vm,
      accel: this.#opts.host.accel,
      state: m.state,
      ...(m.pid !== undefined && m.state !== 'off' ? { pid: m.pid } : {}),
      console: paths.console,
      qemuLog: paths.qemuLog,
      disks: system.hardware.drives.map((d) => paths.disk(d.index)),
      forwards: this.#opts.forwards,
    };
  }

  powerState(system: SystemState): PowerState {
    const state = this.#entry(system).machine.state;
    return state === 'off' ? 'Off' : state === 'starting' ? 'PoweringOn' : state === 'stopping' ? 'PoweringOff' : 'On';
  }

  reset(system: SystemState, type: ResetType): Promise<ResetOutcome> {
    const entry = this.#entry(system);
    return this.#serial(entry, async (): Promise<ResetOutcome> => {
      const m = entry.machine;
      const on = m.state === 'running' || m.state === 'starting';
      switch (type) {
        case 'On':
          if (on) return { kind: 'noop' };
          await this.#powerOn(entry);
          return { kind: 'done' };
        case 'ForceOff':
          this.#cancelRestart(entry);
          if (!on) return { kind: 'noop' };
          await m.forceOff();
          return { kind: 'done' };
        case 'GracefulShutdown':
          if (!on) return { kind: 'noop' };
          await m.powerButton();
          return { kind: 'done' };
        case 'Nmi':
          if (m.state !== 'running') return { kind: 'refused', reason: `the system is ${this.powerState(system)}; a diagnostic interrupt needs it On` };
          await m.nmi();
          return { kind: 'nmi' };
        case 'GracefulRestart':
          if (!on) {
            await this.#powerOn(entry);
            return { kind: 'done' };
          }
          this.#cancelRestart(entry);
          entry.restartPending = setTimeout(() => {
            delete entry.restartPending;
            this.#log.warn('GracefulRestart: the guest did not power off; forcing a restart', { system: system.id });
            void this.#serial(entry, () => this.#restart(entry, true)).catch((err: unknown) => this.#log.warn('forced restart failed', { system: system.id, error: (err as Error).message }));
          }, this.#opts.gracefulRestartMs ?? GRACEFUL_RESTART_MS);
          entry.restartPending.unref();
          await m.powerButton();
          return { kind: 'done' };
        case 'ForceRestart':
        case 'PowerCycle':
          this.#cancelRestart(entry);
          await this.#restart(entry, type === 'PowerCycle');
          return { kind: 'done' };
      }
    });
  }

  async bootSettingsChanged(system: SystemState): Promise<void> {
    const entry = this.#entry(system);
    await this.#serial(entry, async () => {
      if (entry.machine.state === 'running') await entry.machine.setBootOrder(nextBootOrder(system));
    });
  }

  async insertMedia(system: SystemState, image: string): Promise<void> {
    const entry = this.#entry(system);
    const dir = vmPaths(this.#opts.dataDir, system).mediaDir;
    let fetched;
    try {
      // Fetched outside the queue: a slow download must not hold up power actions.
      fetched = await fetchMediaImage(image, dir, { ...this.#opts.media, forwards: this.#opts.forwards });
    } catch (err) {
      if (err instanceof MediaFetchError) throw new LabVmError(err.message, err.badRequest ? 400 : 502);
      throw err;
    }
    this.#log.info('virtual media fetched', { system: system.id, bytes: fetched.bytes });
    await this.#serial(entry, async () => {
      if (entry.machine.state === 'running') await entry.machine.changeMedium(fetched.path);
    });
  }

  async ejectMedia(system: SystemState): Promise<void> {
    const entry = this.#entry(system);
    await this.#serial(entry, async () => {
      if (entry.machine.state === 'running') await entry.machine.changeMedium(null);
      await rm(this.#mediaFile(system), { force: true });
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all(
      [...this.#vms.values()].map(async (entry) => {
        this.#cancelRestart(entry);
        await entry.machine.forceOff().catch(() => undefined);
      }),
    );
  }

  #entry(system: SystemState): Entry {
    const entry = this.#vms.get(system.id);
    if (!entry) throw new Error(`${system.id} is not a lab VM`);
    return entry;
  }

  #serial<T>(entry: Entry, work: () => Promise<T>): Promise<T> {
    const run = entry.queue.catch(() => undefined).then(work);
    entry.queue = run;
    return run;
  }

  #cancelRestart(entry: Entry): void {
    if (entry.restartPending) clearTimeout(entry.restartPending);
    delete entry.restartPending;
  }

  #mediaFile(system: SystemState): string {
    return `${vmPaths(this.#opts.dataDir, system).mediaDir}/current.iso`;
  }

  async #mediaForBoot(system: SystemState): Promise<string | undefined> {
    if (!system.media.inserted || !system.media.image) return undefined;
    const file = this.#mediaFile(system);
    return (await stat(file).catch(() => undefined)) ? file : undefined;
  }

  /** A new QEMU process: records the boot (consuming a Once override), then starts it. */
  async #powerOn(entry: Entry): Promise<void> {
    if (this.#closed) throw new LabVmError('the lab is stopping', 503);
    const system = entry.system;
    const order = nextBootOrder(system);
    const launch = await this.#launchOf(system, order);
    const media = await this.#mediaForBoot(system);
    this.#opts.fleet.boot(system);
    try {
      await entry.machine.start(launch, media, nextBootOrder(system));
    } catch (err) {
      this.#log.warn('VM did not start', { system: system.id, error: (err as Error).message });
      throw new LabVmError((err as Error).message, 500);
    }
    this.#log.info('VM started', { system: system.id, pid: entry.machine.pid, firmware: launch.firmware.kind, accel: this.#opts.host.accel });
  }

  /** Restart of a running VM: the reset line when the firmware stays the same, else (or for a power cycle) a new process. */
  async #restart(entry: Entry, powerCycle: boolean): Promise<void> {
    const m = entry.machine;
    const system = entry.system;
    if (m.state === 'off') return this.#powerOn(entry);
    const order = nextBootOrder(system);
    const wanted = await this.#launchOf(system, order, { copyVars: false });
    if (powerCycle || JSON.stringify(wanted.firmware) !== JSON.stringify(m.launch?.firmware)) {
      await m.forceOff();
      return this.#powerOn(entry);
    }
    this.#opts.fleet.boot(system);
    await m.reset(order, nextBootOrder(system));
  }

  async #launchOf(system: SystemState, order: QemuLaunch['order'], opts: { copyVars?: boolean } = {}): Promise<QemuLaunch> {
    const host = this.#opts.host;
    const def = system.vm!;
    const paths = vmPaths(this.#opts.dataDir, system);
    const hw = system.hardware;
    if (opts.copyVars !== false) await mkdir(paths.dir, { recursive: true, mode: 0o700 });
    const secureBoot = system.boot.mode === 'UEFI' && system.secureBoot.enabled && host.ovmf.secureBoot !== undefined;
    let firmware: QemuLaunch['firmware'] = { kind: 'legacy' };
    if (system.boot.mode === 'UEFI') {
      const code = secureBoot ? host.ovmf.secureBoot!.code : host.ovmf.code;
      const template = secureBoot ? host.ovmf.secureBoot!.vars : host.ovmf.vars;
      if (opts.copyVars !== false) await this.#ensureVars(paths, template);
      firmware = { kind: 'uefi', code, vars: paths.uefiVars, secureBoot };
    }
    const disks: QemuLaunch['disks'] = [];
    for (const drive of hw.drives) {
      const file = paths.disk(drive.index);
      if (opts.copyVars !== false) await this.#ensureDisk(system, drive.index, file);
      disks.push({ id: `disk${drive.index}`, file, format: def.diskFormat, serial: drive.serialNumber });
    }
    return {
      name: `ingot-lab-${system.id}`,
      uuid: system.uuid,
      vcpus: def.vcpus,
      memoryMiB: def.memoryMiB,
      smbios: { manufacturer: hw.manufacturer, product: hw.model, serial: hw.serialNumber, sku: hw.sku },
      firmware,
      disks,
      nics: hw.nics.map((n, i) => ({ id: `nic${i}`, mac: n.mac })),
      order,
      consoleLog: paths.console,
      forwards: this.#opts.forwards,
    };
  }

  /** The VM's UEFI variable store, copied from the template that matches its Secure Boot setting (a change starts it afresh). */
  async #ensureVars(paths: ReturnType<typeof vmPaths>, template: string): Promise<void> {
    const current = await readFile(paths.uefiVarsTemplate, 'utf8').catch(() => '');
    const exists = await stat(paths.uefiVars).catch(() => undefined);
    if (exists && current.trim() === template) return;
    await copyFile(template, paths.uefiVars);
    await chmod(paths.uefiVars, 0o600);
    await writeFile(paths.uefiVarsTemplate, `${template}\n`, { mode: 0o600 });
  }

  async #ensureDisk(system: SystemState, index: number, file: string): Promise<void> {
    if (system.vm!.diskFormat === 'raw') {
      const made = await ensureDiskFile(this.#opts.dataDir, system, index);
      if (made !== file) throw new Error(`disk file mismatch: ${made} vs ${file}`);
      return;
    }
    if (await stat(file).catch(() => undefined)) return;
    const size = system.hardware.drives[index]!.sizeBytes;
    try {
      await execFileAsync('qemu-img', ['create', '-q', '-f', 'qcow2', file, String(size)], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C' } });
      await chmod(file, 0o600);
    } catch (err) {
      throw new Error(`cannot create ${file} with qemu-img (apt-get install qemu-utils): ${(err as Error).message}`, { cause: err });
    }
  }
}
