// Starts a lab: N simulated servers behind one HTTPS Redfish service, with state in DATA_DIR.
// `ingot lab` calls startLab; tests call it with listen 127.0.0.1:0 and a temp dir.
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { chooseAgentProcesses, type AgentProcessesOption } from './agent-process.js';
import { LabAgentRunner, type LabAgentLog, type LabAgentRunnerOptions } from './agent-runner.js';
import { FaultBook } from './faults.js';
import { ensureLabCa } from './lab-ca.js';
import { LabFleet, STATE_FILE } from './lab-fleet.js';
import type { BootRecord, SystemState } from './lab-model.js';
import { expandProfile, loadProfile } from './profile.js';
import { startRedfishService } from './redfish-service.js';
import { personality, type PersonalityName } from './personality.js';
import { RequestStats } from './request-stats.js';
import { DEFAULT_FORWARD_PORTS, GUEST_SERVICE_ADDRESS, checkForwards, type PortForward } from './vm/guest-network.js';
import { LabVms, type LabVmsLog } from './vm/lab-vms.js';
import { buildVmSystem, resolveVmShape, type VmShape } from './vm/vm-definition.js';
import { probeVmHost, type VmHost } from './vm/vm-host.js';

export interface StartLabOptions {
  hosts: number;
  /** HOST:PORT; port 0 picks a free one. Use a loopback address unless you mean to expose the lab. */
  listen: string;
  dataDir: string;
  /** Path to a YAML/JSON profile (see profile.ts). */
  profile?: string;
  /** Which BMC behaviour every system shows (personality.ts); default standard. */
  personality?: PersonalityName;
  /** How long PoweringOn and PoweringOff each last (ms); default 1000. */
  powerTransitionMs?: number;
  /** Called after every boot the lab records (the agent runner hooks in here). */
  onBoot?: (system: SystemState, record: BootRecord) => void;
  /**
   * Run the Ingot agent on systems that boot an agent medium from virtual CD, and read the disk
   * of systems that boot from it (agent-runner.ts). Default on; `false` only records boots.
   * An object passes agent options (backoff, long-poll wait, qemu-img limits).
   */
  agents?: boolean | NonNullable<LabAgentRunnerOptions['agent']>;
  /**
   * Where agents run (agent-process.ts): 'per-agent' (an `ingot agent` child process each, files
   * and log in DATA_DIR/systems/<id>/agent/), 'shared' (all in the lab process, for large labs),
   * or 'auto' (default): per-agent up to PER_AGENT_MAX_SYSTEMS (32) systems, shared above.
   */
  agentProcesses?: AgentProcessesOption;
  /** Where agent logs go (default: dropped). */
  agentLog?: LabAgentLog;
  /**
   * Make the lab's systems real QEMU virtual machines (src/lab/vm/) instead of simulations:
   * `hosts` of them, shaped by `shape`. Agents then run inside the VMs, booted from virtual
   * media, so `agents`/`agentProcesses` do not apply.
   */
  vms?: {
    shape?: VmShape;
    /** Ports of the host's loopback the VMs may reach at GUEST_SERVICE_ADDRESS (default: 7386, the agent API). */
    forwards?: PortForward[];
    /** Force an accelerator; default KVM when /dev/kvm works, else TCG. */
    accel?: 'kvm' | 'tcg';
    /** PEM CA certificates the BMCs trust for https:// media besides the system's. */
    mediaCaPem?: string;
    /** Largest image a BMC fetches for virtual media (bytes). */
    maxMediaBytes?: number;
    /** How long a GracefulRestart waits for the guest before forcing it (ms). */
    gracefulRestartMs?: number;
    log?: LabVmsLog;
  };
}

export interface LabSystemInfo {
  id: string;
  /** Redfish path of the ComputerSystem, e.g. /redfish/v1/Systems/node-001. */
  path: string;
  username: string;
  password: string;
  bootMac: string;
}

export interface RunningLab {
  /** https://HOST:PORT of the Redfish service (and of /lab/v1 admin endpoint). */
  url: string;
  caFile: string;
  adminToken: string;
  /** Where the BMC passwords are (mode 0600). */
  credentialsFile: string;
  systems: LabSystemInfo[];
  fleet: LabFleet;
  faults: FaultBook;
  /** Redfish requests served (also GET /lab/v1/stats). */
  stats: RequestStats;
  /** The agents the lab runs for its systems; absent when started with agents: false, and for VMs. */
  agents?: LabAgentRunner;
  /** The lab's VMs, when started with `vms`. */
  vms?: { machines: LabVms; host: VmHost; forwards: PortForward[]; guestAddress: string };
  close(): Promise<void>;
}

export const MAX_LAB_HOSTS = 10_000;

function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(listen.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new Error(`--listen "${listen}" is not HOST:PORT (e.g. 127.0.0.1:7443, or 127.0.0.1:0 for any free port)`);
  return { host: (m[1] ?? m[2])!, port };
}

/** Reads DATA_DIR/admin-token, creating it (32 random bytes, base64url, mode 0600) on first use. */
export async function ensureAdminToken(dataDir: string): Promise<string> {
  const file = join(dataDir, 'admin-token');
  try {
    const existing = (await readFile(file, 'utf8')).trim();
    if (existing.length >= 32) return existing;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const token = randomBytes(32).toString('base64url');
  await writeFile(file, `${token}\n`, { mode: 0o600 });
  await chmod(file, 0o600);
  return token;
}

export async function startLab(opts: StartLabOptions): Promise<RunningLab> {
  if (!Number.isInteger(opts.hosts) || opts.hosts < 1 || opts.hosts > MAX_LAB_HOSTS) {
    throw new Error(`--hosts must be an integer from 1 to ${MAX_LAB_HOSTS}; got ${opts.hosts}`);
  }
  const powerTransitionMs = opts.powerTransitionMs ?? 1000;
  if (!Number.isInteger(powerTransitionMs) || powerTransitionMs < 0 || powerTransitionMs > 600_000) {
    throw new Error(`powerTransitionMs must be an integer from 0 to 600000; got ${powerTransitionMs}`);
  }
  const agentProcesses = chooseAgentProcesses(opts.agentProcesses, opts.hosts);
  const { host, port } = parseListen(opts.listen);
  let vmSetup: { host: VmHost; forwards: PortForward[]; shape: ReturnType<typeof resolveVmShape> } | undefined;
  if (opts.vms) {
    if (opts.profile) throw new Error('a profile shapes simulated servers; lab VMs take --vm-cpus, --vm-memory, --vm-disk-size instead');
    const forwards = opts.vms.forwards ?? DEFAULT_FORWARD_PORTS.map((p) => ({ guestPort: p, hostPort: p }));
    checkForwards(forwards);
    vmSetup = { host: await probeVmHost(opts.vms.accel ? { accel: opts.vms.accel } : {}), forwards, shape: resolveVmShape(opts.vms.shape) };
  }
  await mkdir(opts.dataDir, { recursive: true, mode: 0o700 });
  const profile = opts.profile ? await loadProfile(opts.profile) : undefined;
  const ca = await ensureLabCa(opts.dataDir);
  const adminToken = await ensureAdminToken(opts.dataDir);
  const faults = new FaultBook();
  let fleetRef: LabFleet | undefined;
  const agents =
    opts.agents === false || vmSetup
      ? undefined
      : new LabAgentRunner({
          dataDir: opts.dataDir,
          faults,
          save: () => fleetRef?.save(),
          processes: agentProcesses,
          ...(opts.agentLog ? { log: opts.agentLog } : {}),
          ...(typeof opts.agents === 'object' ? { agent: opts.agents } : {}),
        });
  agents?.allowHost(host);
  const onBoot = (system: SystemState, record: BootRecord) => {
    agents?.onBoot(system, record);
    opts.onBoot?.(system, record);
  };
  const fleet = await LabFleet.open({
    dataDir: opts.dataDir,
    groups: expandProfile(profile, opts.hosts),
    ...(vmSetup ? { build: (i: number, total: number) => buildVmSystem(i, total, vmSetup.shape) } : {}),
    powerTransitionMs,
    onBoot,
    ...(agents ? { onPowerOff: (system: SystemState) => agents.onPowerOff(system) } : {}),
  });
  fleetRef = fleet;
  let vms: RunningLab['vms'];
  const mixed = fleet.systems.find((s) => Boolean(s.vm) !== Boolean(vmSetup));
  if (mixed) {
    await fleet.close();
    throw new Error(`${opts.dataDir} holds ${mixed.vm ? 'VM' : 'simulated'} systems; start the lab ${mixed.vm ? 'with --vms' : 'without --vms'}, or use another --data-dir`);
  }
  if (vmSetup) {
    const machines = new LabVms({
      host: vmSetup.host,
      fleet,
      dataDir: opts.dataDir,
      forwards: vmSetup.forwards,
      media: {
        selfHosts: [host],
        ...(opts.vms?.mediaCaPem ? { caPem: opts.vms.mediaCaPem } : {}),
        ...(opts.vms?.maxMediaBytes !== undefined ? { maxBytes: opts.vms.maxMediaBytes } : {}),
      },
      ...(opts.vms?.gracefulRestartMs !== undefined ? { gracefulRestartMs: opts.vms.gracefulRestartMs } : {}),
      ...(opts.vms?.log ? { log: opts.vms.log } : {}),
    });
    fleet.attachMachines(machines);
    vms = { machines, host: vmSetup.host, forwards: vmSetup.forwards, guestAddress: GUEST_SERVICE_ADDRESS };
  }
  const stats = new RequestStats();
  let service;
  try {
    service = await startRedfishService({ fleet, faults, stats, tls: { cert: ca.certPem, key: ca.keyPem }, adminToken, host, port, personality: personality(opts.personality) });
  } catch (err) {
    await agents?.close();
    await fleet.close();
    throw new Error(`cannot listen on ${opts.listen}: ${(err as Error).message}`, { cause: err });
  }
  // Name the address clients should use: a wildcard bind is reached through loopback.
  const shownHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  const url = `https://${shownHost}:${service.port}`;
  fleet.setUrl(url);
  await fleet.flush();
  return {
    url,
    caFile: ca.caFile,
    adminToken,
    credentialsFile: join(opts.dataDir, STATE_FILE),
    get systems() {
      return fleet.systems.map((s) => ({
        id: s.id,
        path: `/redfish/v1/Systems/${s.id}`,
        username: s.credentials.username,
        password: s.credentials.password,
        bootMac: s.hardware.nics[0]?.mac ?? '',
      }));
    },
    fleet,
    faults,
    stats,
    ...(agents ? { agents } : {}),
    ...(vms ? { vms } : {}),
    close: async () => {
      await service.close();
      await agents?.close();
      await fleet.close();
    },
  };
}
