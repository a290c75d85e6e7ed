// One lab VM's QEMU process: started when the system powers on, gone when it is off.
//
// - Power on starts QEMU paused (-S), connects QMP over the child's stdin/stdout, inserts the
//   virtual CD medium if any, then lets the CPUs run.
// - The VM is Off when the process is gone: after a forced off (QMP quit), and when the guest
//   powers itself off (QEMU exits on guest shutdown, since -no-shutdown is not given).
// - No VM outlives the lab: QEMU runs under `setpriv --pdeathsig KILL` (the kernel kills it
//   when the lab process dies, however it dies) in its own process group (a Ctrl-C in the
//   lab's terminal reaches the lab, which then stops its VMs in order).
import { spawn, type ChildProcess } from 'node:child_process';
import { open, readFile, stat, rename } from 'node:fs/promises';
import { BOOT_DEVICE_IDS, qemuArgs, type QemuLaunch } from './qemu-args.js';
import { QmpClient, type QmpEvent } from './qmp-client.js';
import type { BootOrder } from './boot-order.js';
import type { VmHost } from './vm-host.js';

export type VmRunState = 'off' | 'starting' | 'running' | 'stopping';

/** Console logs are rotated at power on once they pass this size (one old copy kept: console.log.1). */
const MAX_CONSOLE_LOG_BYTES = 32 * 1024 * 1024;
const QMP_READY_TIMEOUT_MS = 30_000;

export interface VmExit {
  /** The reason of QEMU's last SHUTDOWN event (guest-shutdown, host-qmp-quit, …), if it sent one. */
  reason?: string;
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface VmMachineOptions {
  host: VmHost;
  qemuLog: string;
  /** Called after the process exited, whatever the cause. */
  onExit?: (exit: VmExit) => void;
  /** Called when the guest (or its firmware) reset the machine by itself. */
  onGuestReset?: () => void;
}

async function tail(path: string, bytes = 2000): Promise<string> {
  try {
    const text = await readFile(path, 'utf8');
    return text.slice(-bytes).trim();
  } catch {
    return '';
  }
}

export class VmMachine {
  readonly #opts: VmMachineOptions;
  #state: VmRunState = 'off';
  #child: ChildProcess | undefined;
  #qmp: QmpClient | undefined;
  #exited: Promise<VmExit> | undefined;
  #lastShutdownReason: string | undefined;
  #launch: QemuLaunch | undefined;

  constructor(opts: VmMachineOptions) {
    this.#opts = opts;
  }

  get state(): VmRunState {
    return this.#state;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** What the running process was started with (firmware, disks), or undefined when off. */
  get launch(): QemuLaunch | undefined {
    return this.#state === 'off' ? undefined : this.#launch;
  }

  /**
   * Starts QEMU and resolves once the CPUs run. `media` is inserted into the CD drive first;
   * `afterBoot` is the order later resets use (a Once override applies to this boot only).
   * Rejects (and leaves the machine off) when QEMU does not come up, with its own message.
   */
  async start(launch: QemuLaunch, media: string | undefined, afterBoot: BootOrder): Promise<void> {
    if (this.#state !== 'off') throw new Error(`the VM is ${this.#state}; it must be off to start`);
    this.#state = 'starting';
    this.#launch = launch;
    this.#lastShutdownReason = undefined;
    try {
      await this.#rotateConsole(launch.consoleLog);
      const args = qemuArgs(this.#opts.host, launch);
      const log = await open(this.#opts.qemuLog, 'a', 0o600);
      try {
        await log.write(`${new Date().toISOString()} ingot lab: starting ${this.#opts.host.qemu} ${args.join(' ')}\n`);
        // setpriv execs QEMU in place: the pid is QEMU's, and the death signal stays set across exec.
        this.#child = spawn(this.#opts.host.setpriv, ['--pdeathsig', 'KILL', '--', this.#opts.host.qemu, ...args], {
          detached: true,
          stdio: ['pipe', 'pipe', log.fd],
          env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' },
        });
      } finally {
        await log.close();
      }
      const child = this.#child;
      this.#exited = new Promise<VmExit>((resolve) => {
        child.once('exit', (code, signal) => resolve({ code, signal, ...(this.#lastShutdownReason ? { reason: this.#lastShutdownReason } : {}) }));
        child.once('error', () => resolve({ code: null, signal: null }));
      });
      void this.#exited.then((exit) => this.#onExit(child, exit));
      const qmp = new QmpClient(child.stdout!, child.stdin!);
      this.#qmp = qmp;
      qmp.on('event', (e: QmpEvent) => this.#onEvent(e));
      const timeout = new Promise<never>((_, reject) => {
        const t = setTimeout(() => reject(new Error(`QEMU did not answer on QMP within ${QMP_READY_TIMEOUT_MS / 1000} s`)), QMP_READY_TIMEOUT_MS);
        t.unref();
        void this.#exited!.then(() => clearTimeout(t));
      });
      await Promise.race([qmp.connect(), timeout]);
      if (media) await qmp.execute('blockdev-change-medium', { id: BOOT_DEVICE_IDS.cd, filename: media, format: 'raw', 'read-only-mode': 'read-only' });
      await qmp.execute('cont');
      this.#state = 'running';
      // The firmware read this boot's order at the reset before `cont`; later resets use afterBoot.
      await this.setBootOrder(afterBoot);
    } catch (err) {
      const child = this.#child;
      if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      if (this.#exited) await this.#exited;
      this.#state = 'off';
      const detail = await tail(this.#opts.qemuLog, 800);
      throw new Error(`QEMU did not start: ${(err as Error).message}${detail ? `; ${this.#opts.qemuLog} ends with: ${detail}` : ''}`, { cause: err });
    }
  }

  /** Sets the boot order the firmware reads at the next reset (the running boot is not affected). */
  async setBootOrder(order: BootOrder): Promise<void> {
    const qmp = this.#requireQmp('set the boot order');
    const ids = Object.entries(BOOT_DEVICE_IDS) as Array<[keyof BootOrder, string]>;
    // QEMU refuses two devices with one index, so clear all before assigning.
    for (const [, id] of ids) await qmp.execute('qom-set', { path: `/machine/peripheral/${id}`, property: 'bootindex', value: -1 });
    for (const [key, id] of ids) await qmp.execute('qom-set', { path: `/machine/peripheral/${id}`, property: 'bootindex', value: order[key] });
  }

  /** A hard reset of the running VM (the reset line): the firmware starts over with `order`, then later resets use afterBoot. */
  async reset(order: BootOrder, afterBoot: BootOrder): Promise<void> {
    const qmp = this.#requireQmp('reset');
    await this.setBootOrder(order);
    await qmp.execute('system_reset');
    await this.setBootOrder(afterBoot);
  }

  /** Presses the ACPI power button: the guest decides whether and when to power off. */
  async powerButton(): Promise<void> {
    await this.#requireQmp('press the power button').execute('system_powerdown');
  }

  async nmi(): Promise<void> {
    await this.#requireQmp('send an NMI').execute('inject-nmi');
  }

  /** Puts an image into the CD drive (or empties it with null) while the VM runs. */
  async changeMedium(path: string | null): Promise<void> {
    const qmp = this.#requireQmp('change the CD');
    if (path) await qmp.execute('blockdev-change-medium', { id: BOOT_DEVICE_IDS.cd, filename: path, format: 'raw', 'read-only-mode': 'read-only' });
    else await qmp.execute('eject', { id: BOOT_DEVICE_IDS.cd, force: true });
  }

  /** Cuts the power: QMP quit, then SIGKILL of the process group if QEMU lingers. Resolves once the process is gone. */
  async forceOff(graceMs = 5_000): Promise<VmExit | undefined> {
    const child = this.#child;
    const exited = this.#exited;
    if (!child || !exited || this.#state === 'off') return undefined;
    this.#state = 'stopping';
    this.#qmp?.execute('quit').catch(() => undefined);
    const timer = setTimeout(() => this.#killGroup(child), graceMs);
    try {
      return await exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Resolves when the current process (if any) has exited. */
  async exited(): Promise<VmExit | undefined> {
    return this.#state === 'off' ? undefined : this.#exited;
  }

  #killGroup(child: ChildProcess): void {
    if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      child.kill('SIGKILL');
    }
  }

  #requireQmp(what: string): QmpClient {
    if (this.#state !== 'running' || !this.#qmp || this.#qmp.closed) throw new Error(`cannot ${what}: the VM is ${this.#state}`);
    return this.#qmp;
  }

  #onEvent(e: QmpEvent): void {
    if (e.event === 'SHUTDOWN' && typeof e.data?.reason === 'string') this.#lastShutdownReason = e.data.reason;
    if (e.event === 'RESET' && e.data?.guest === true && this.#state === 'running') this.#opts.onGuestReset?.();
  }

  #onExit(child: ChildProcess, exit: VmExit): void {
    if (this.#child !== child) return;
    this.#child = undefined;
    this.#qmp = undefined;
    this.#state = 'off';
    this.#opts.onExit?.(exit);
  }

  async #rotateConsole(path: string): Promise<void> {
    const info = await stat(path).catch(() => undefined);
    if (info && info.size > MAX_CONSOLE_LOG_BYTES) await rename(path, `${path}.1`);
    const handle = await open(path, 'a', 0o600);
    try {
      await handle.write(`\n--- ingot lab: power on at ${new Date().toISOString()} ---\n`);
    } finally {
      await handle.close();
    }
  }
}
