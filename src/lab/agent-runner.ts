// What the lab's machines run when they boot (the lab issue): a system that boots from a
// virtual CD carrying an Ingot agent boot medium runs the real agent (src/agent/agent.ts) as
// that machine, its block devices being the system's sparse drive files and its inventory the
// system's description; a system that boots from its disk gets its partition table and config
// drive read and recorded in the boot log, as a booting OS would find them.
//
// Where an agent runs (agent-process.ts): with processes 'per-agent' each agent is its own
// `ingot agent --boot-iso ISO --machine MACHINE` child process, the files in
// DATA_DIR/systems/<id>/agent/; with 'shared' it runs in this process, one lab process holding
// many agent instances, each with its own boot configuration (token), state and disks, as a
// large lab needs. The agent code is the same as on a real host either way; only the
// MachineAccess differs (file-machine.ts). A system whose drive-write fault is set when it boots
// runs its agent in-process for that boot, since the fault wraps the machine here.
//
// Network: the lab fetches boot media only from loopback or from the address the lab itself is
// bound to (the media URL is the agent API the server told the BMC to use). A medium elsewhere
// is recorded as not started, never fetched.
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { runAgent, type AgentExit, type RunAgentOptions } from '../agent/agent.js';
import { createFileMachine, type MachineDescription } from '../agent/file-machine.js';
import type { MachineAccess } from '../agent/machine.js';
import { readBootConfigFromIso } from '../images/boot-config-iso.js';
import { readGptPartitions, type SectorIo } from '../images/gpt.js';
import { readIso9660 } from '../images/iso9660.js';
import { ingotEntry, startAgentProcess, type AgentProcesses } from './agent-process.js';
import type { FaultBook } from './faults.js';
import { ensureDiskFile, type BootRecord, type DiskFindings, type SystemState } from './lab-model.js';

/** Boot media are a few KiB; anything bigger is not an Ingot agent medium. */
export const MAX_BOOT_MEDIUM_BYTES = 4 * 1024 * 1024;
const MAX_CONFIG_DRIVE_BYTES = 64 * 1024 * 1024;
const MAX_META_DATA_BYTES = 64 * 1024;

export interface LabAgentLog {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
}

export interface LabAgentRunnerOptions {
  dataDir: string;
  faults: FaultBook;
  /** Saves the fleet state after a boot record was completed asynchronously. */
  save: () => void;
  log?: LabAgentLog;
  /** How long fetching a boot medium may take (default 30 s). */
  fetchTimeoutMs?: number;
  /** Passed to every agent (backoff, long-poll wait, qemu-img limits); never the boot config or machine. */
  agent?: Pick<RunAgentOptions, 'backoff' | 'commandWaitSeconds' | 'conversion' | 'minRootDiskBytes'>;
  /**
   * 'per-agent': each agent is its own child process; 'shared' (default): agents run in this
   * process. startLab picks one with chooseAgentProcesses. A child gets `agent` minus
   * conversion.availableMemory (a function cannot cross a process boundary).
   */
  processes?: AgentProcesses;
  /** How long a stopped agent process gets after SIGTERM before SIGKILL (default 5 s). */
  stopGraceMs?: number;
}

const silent: LabAgentLog = { info() {}, warn() {} };

/** Linux names for the system's drives: NVMe namespaces, virtio and SCSI disks, numbered in drive order. */
export function driveNames(system: SystemState): string[] {
  let nvme = 0;
  let scsi = 0;
  let virtio = 0;
  return system.hardware.drives.map((d) => (d.type === 'nvme' ? `nvme${nvme++}n1` : d.type === 'virtio' ? `vd${String.fromCharCode(97 + virtio++)}` : `sd${String.fromCharCode(97 + scsi++)}`));
}

/** The file-machine description of a system: what /proc, /sys and dmidecode would say of it. */
export async function machineDescriptionOf(dataDir: string, system: SystemState): Promise<MachineDescription> {
  const hw = system.hardware;
  const cpus = hw.processors.filter((p) => p.type === 'CPU');
  const names = driveNames(system);
  const disks: MachineDescription['disks'] = [];
  for (const drive of hw.drives) {
    disks.push({
      name: names[drive.index]!,
      file: await ensureDiskFile(dataDir, system, drive.index),
      rotational: drive.type === 'sata' || drive.type === 'hdd',
      serial: drive.serialNumber,
      wwn: `0x${drive.wwn}`,
      model: drive.model,
    });
  }
  return {
    hardware: {
      systemVendor: { manufacturer: hw.manufacturer, productName: hw.model, serialNumber: hw.serialNumber },
      cpu: {
        arch: 'x86_64',
        ...(cpus[0] ? { model: cpus[0].model, speedMHz: cpus[0].maxSpeedMHz } : {}),
        count: cpus.length,
        cores: cpus.reduce((n, p) => n + p.cores, 0),
        threads: cpus.reduce((n, p) => n + p.threads, 0),
      },
      ramMebibytes: hw.memory.reduce((n, m) => n + m.capacityMiB, 0),
      nics: hw.nics.map((n, i) => ({ name: `eno${i + 1}`, mac: n.mac, speedGbps: n.speedMbps / 1000, linkUp: true })),
      firmware: { bios: { version: hw.biosVersion }, bmc: { version: hw.bmcFirmwareVersion } },
      secureBootCapable: hw.secureBootCapable,
    },
    disks,
  };
}

/** The machine the agent of `system` runs on: its description, its drive files, its drive faults. */
export async function labMachineFor(dataDir: string, system: SystemState, faults: FaultBook): Promise<MachineAccess> {
  return labMachineFrom(await machineDescriptionOf(dataDir, system), system, faults);
}

function labMachineFrom(description: MachineDescription, system: SystemState, faults: FaultBook): MachineAccess {
  return withDriveFaults(createFileMachine(description), system, description.disks.map((d) => d.name), faults);
}

/** Wraps a machine so that writes to the drives the failDriveWrites fault names fail, as a dying disk's do. */
function withDriveFaults(machine: MachineAccess, system: SystemState, names: string[], faults: FaultBook): MachineAccess {
  return {
    ...machine,
    async openDisk(name) {
      const disk = await machine.openDisk(name);
      const index = names.indexOf(name);
      return {
        size: disk.size,
        read: (offset, length) => disk.read(offset, length),
        async write(buf, offset) {
          if (index >= 0 && faults.driveWriteFails(system.id, index)) throw new Error(`I/O error writing ${buf.length} bytes at ${offset} to /dev/${name} (lab fault failDriveWrites)`);
          return disk.write(buf, offset);
        },
        sync: () => disk.sync(),
        close: () => disk.close(),
      };
    },
  };
}

function loopbackOrSelf(url: URL, allowedHosts: Set<string>): boolean {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (host === 'localhost' || allowedHosts.has(host)) return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}

async function fetchMedium(url: string, timeoutMs: number): Promise<Buffer> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  if (!res.ok) throw new Error(`fetching the boot medium answered HTTP ${res.status}`);
  const length = Number(res.headers.get('content-length') ?? '0');
  if (length > MAX_BOOT_MEDIUM_BYTES) throw new Error(`the boot medium is ${length} bytes; more than ${MAX_BOOT_MEDIUM_BYTES} is not an agent medium`);
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    total += chunk.length;
    if (total > MAX_BOOT_MEDIUM_BYTES) throw new Error(`the boot medium is larger than ${MAX_BOOT_MEDIUM_BYTES} bytes`);
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}

function fileIo(handle: import('node:fs/promises').FileHandle, size: number): SectorIo {
  return {
    size,
    async read(offset, length) {
      const want = Math.max(0, Math.min(length, size - offset));
      const buf = Buffer.alloc(want);
      const { bytesRead } = await handle.read(buf, 0, want, offset);
      return buf.subarray(0, bytesRead);
    },
    async write() {
      throw new Error('the lab reads boot disks only');
    },
  };
}

/** Reads what an OS booting from `system`'s first drive would find: partition table and config drive. */
export async function inspectBootDisk(dataDir: string, system: SystemState, drive = 0): Promise<DiskFindings> {
  const info = system.hardware.drives[drive];
  if (!info) return { drive, partitionTable: 'none', partitions: [], error: `the system has no drive ${drive}` };
  const path = await ensureDiskFile(dataDir, system, drive);
  const handle = await open(path, 'r');
  try {
    const io = fileIo(handle, info.sizeBytes);
    const mbr = await io.read(0, 512);
    const hasMbr = mbr.length === 512 && mbr[510] === 0x55 && mbr[511] === 0xaa;
    let partitions;
    try {
      partitions = await readGptPartitions(io);
    } catch (err) {
      return { drive, partitionTable: hasMbr ? 'mbr' : 'none', partitions: [], ...(hasMbr ? {} : { error: (err as Error).message }) };
    }
    const findings: DiskFindings = {
      drive,
      partitionTable: 'gpt',
      partitions: partitions.map((p) => ({ number: p.number, name: p.name, firstLba: p.firstLba, lastLba: p.lastLba, typeGuid: p.typeGuid })),
    };
    const cd = partitions.find((p) => p.name === 'config-2');
    if (cd) {
      const bytes = Math.min((cd.lastLba - cd.firstLba + 1) * 512, MAX_CONFIG_DRIVE_BYTES);
      try {
        const volume = readIso9660(await io.read(cd.firstLba * 512, bytes));
        const metaRaw = volume.readFile('openstack/latest/meta_data.json');
        const userData = volume.readFile('openstack/latest/user_data');
        findings.configDrive = {
          files: volume.list(),
          ...(metaRaw && metaRaw.length <= MAX_META_DATA_BYTES ? { metaData: JSON.parse(metaRaw.toString('utf8')) as Record<string, unknown> } : {}),
          ...(userData ? { userDataSha256: createHash('sha256').update(userData).digest('hex') } : {}),
        };
      } catch (err) {
        findings.configDrive = { files: [], error: `the config-2 partition holds no readable ISO 9660 config drive: ${(err as Error).message}` };
      }
    }
    return findings;
  } finally {
    await handle.close();
  }
}

interface RunningAgent {
  stop: AbortController;
  done: Promise<AgentExit | undefined>;
}

export class LabAgentRunner {
  readonly #opts: LabAgentRunnerOptions;
  readonly #log: LabAgentLog;
  readonly #running = new Map<string, RunningAgent>();
  readonly #pending = new Set<Promise<unknown>>();
  readonly #selfHosts = new Set<string>();
  #closed = false;

  constructor(opts: LabAgentRunnerOptions) {
    this.#opts = opts;
    this.#log = opts.log ?? silent;
  }

  /** The lab's own bind address: media served there (an agent API beside the lab) may be fetched too. */
  allowHost(host: string): void {
    this.#selfHosts.add(host.replace(/^\[|\]$/g, ''));
  }

  /** Agents running now, by system id. */
  get runningSystems(): string[] {
    return [...this.#running.keys()];
  }

  /** The fleet's onBoot hook: whatever ran before stops, then the boot source decides what runs. */
  onBoot(system: SystemState, record: BootRecord): void {
    this.stop(system.id);
    if (this.#closed) return;
    if (record.source === 'cd' && record.mediaUrl) this.#track(this.#startAgent(system, record, record.mediaUrl));
    else if (record.source === 'hdd') this.#track(this.#recordDisk(system, record));
  }

  /** The fleet's onPowerOff hook: the agent of a system losing power stops at once. */
  onPowerOff(system: SystemState): void {
    this.stop(system.id);
  }

  stop(systemId: string): void {
    const running = this.#running.get(systemId);
    if (!running) return;
    this.#running.delete(systemId);
    running.stop.abort();
  }

  async close(): Promise<void> {
    this.#closed = true;
    const all = [...this.#running.values()];
    this.#running.clear();
    for (const r of all) r.stop.abort();
    await Promise.allSettled([...all.map((r) => r.done), ...this.#pending]);
  }

  #track(p: Promise<unknown>): void {
    this.#pending.add(p);
    void p.finally(() => this.#pending.delete(p));
  }

  async #recordDisk(system: SystemState, record: BootRecord): Promise<void> {
    try {
      record.disk = await inspectBootDisk(this.#opts.dataDir, system);
    } catch (err) {
      record.disk = { drive: 0, partitionTable: 'none', partitions: [], error: (err as Error).message };
    }
    this.#opts.save();
  }

  /** Where this runner starts agents (see LabAgentRunnerOptions.processes). */
  get processes(): AgentProcesses {
    return this.#opts.processes ?? 'shared';
  }

  /** The child-process entry, or undefined (with one warning) when agents run in this process. */
  #processEntry(system: SystemState): string | undefined {
    if (this.processes !== 'per-agent') return undefined;
    if (this.#opts.faults.get(system.id).failDriveWrites.length > 0) {
      this.#log.info('running the agent in-process: the system has a failDriveWrites fault, which only an in-process machine applies', { system: system.id });
      return undefined;
    }
    const entry = ingotEntry();
    if (!entry && !this.#warnedNoEntry) {
      this.#warnedNoEntry = true;
      this.#log.warn('the compiled CLI (dist/) is missing, so agents run in the lab process instead of one process each; run `npm run build`');
    }
    return entry;
  }

  #warnedNoEntry = false;

  async #startAgent(system: SystemState, record: BootRecord, mediaUrl: string): Promise<void> {
    const stop = new AbortController();
    let resolveDone!: (exit: AgentExit | undefined) => void;
    const done = new Promise<AgentExit | undefined>((r) => (resolveDone = r));
    // Registered before any await, so a power-off during the medium download stops it too.
    this.#running.set(system.id, { stop, done });
    const fail = (message: string) => {
      record.agent = { started: false, error: message };
      this.#opts.save();
      this.#log.warn('not starting the agent', { system: system.id, error: message });
      if (this.#running.get(system.id)?.stop === stop) this.#running.delete(system.id);
      resolveDone(undefined);
    };
    let url: URL;
    try {
      url = new URL(mediaUrl);
    } catch {
      return fail('the virtual media URL is not a URL');
    }
    if ((url.protocol !== 'http:' && url.protocol !== 'https:') || !loopbackOrSelf(url, this.#selfHosts)) {
      return fail(`the lab fetches boot media only from loopback or its own address, not ${url.host}`);
    }
    let bootConfig;
    let medium: Buffer;
    let description: MachineDescription;
    try {
      medium = await fetchMedium(mediaUrl, this.#opts.fetchTimeoutMs ?? 30_000);
      bootConfig = readBootConfigFromIso(medium);
      description = await machineDescriptionOf(this.#opts.dataDir, system);
    } catch (err) {
      return fail(`the boot medium is not an Ingot agent medium: ${(err as Error).message}`);
    }
    if (stop.signal.aborted) return resolveDone(undefined);
    const log = this.#log;
    const fields = { system: system.id, bootId: bootConfig.bootId };
    const entry = this.#processEntry(system);
    if (entry) {
      let child;
      try {
        const { conversion, ...rest } = this.#opts.agent ?? {};
        child = await startAgentProcess({
          dir: join(this.#opts.dataDir, 'systems', system.id, 'agent'),
          entry,
          medium,
          description,
          tuning: {
            ...rest,
            ...(conversion ? { conversion: { ...(conversion.minFreeMemoryBytes !== undefined ? { minFreeMemoryBytes: conversion.minFreeMemoryBytes } : {}), ...(conversion.memoryLimitBytes !== undefined ? { memoryLimitBytes: conversion.memoryLimitBytes } : {}) } } : {}),
          },
          ...(this.#opts.stopGraceMs !== undefined ? { stopGraceMs: this.#opts.stopGraceMs } : {}),
        });
      } catch (err) {
        return fail(`the agent process could not start: ${(err as Error).message}`);
      }
      // A power-off while the files were being written: stop what just started.
      const onStop = () => void child.stop();
      if (stop.signal.aborted) onStop();
      else stop.signal.addEventListener('abort', onStop, { once: true });
      record.agent = { started: true, mode: 'process', pid: child.pid, hostUid: bootConfig.hostUid, bootId: bootConfig.bootId };
      this.#opts.save();
      log.info('agent process started', { ...fields, pid: child.pid });
      const exit = await child.done;
      stop.signal.removeEventListener('abort', onStop);
      log.info('agent process exited', { ...fields, pid: child.pid, code: exit.code, signal: exit.signal });
      if (this.#running.get(system.id)?.stop === stop) this.#running.delete(system.id);
      return resolveDone(undefined);
    }
    const machine = labMachineFrom(description, system, this.#opts.faults);
    record.agent = { started: true, mode: 'in-process', hostUid: bootConfig.hostUid, bootId: bootConfig.bootId };
    this.#opts.save();
    try {
      const exit = await runAgent({
        bootConfig,
        machine,
        signal: stop.signal,
        log: { info: (m, f) => log.info(m, { ...fields, ...f }), warn: (m, f) => log.warn(m, { ...fields, ...f }) },
        ...this.#opts.agent,
      });
      log.info('agent exited', { ...fields, reason: exit.reason });
      resolveDone(exit);
    } catch (err) {
      log.warn('agent crashed', { ...fields, error: (err as Error).message });
      resolveDone(undefined);
    } finally {
      if (this.#running.get(system.id)?.stop === stop) this.#running.delete(system.id);
    }
  }
}
