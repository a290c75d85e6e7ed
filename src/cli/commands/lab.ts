// `ingot lab …`: the simulated lab (servers with real Redfish BMCs) — thin wrappers around
// src/lab: start it, enroll its systems into an Ingot server, and inject faults.
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { AGENT_PROCESSES_OPTIONS, PER_AGENT_MAX_SYSTEMS, type AgentProcessesOption } from '../../lab/agent-process.js';
import { enrollLab } from '../../lab/enroll.js';
import { LabAdminClient } from '../../lab/lab-fault-client.js';
import { startLab, type StartLabOptions } from '../../lab/run-lab.js';
import { DEFAULT_FORWARD_PORTS, GUEST_SERVICE_ADDRESS, parseForwards } from '../../lab/vm/guest-network.js';
import { VM_DEFAULTS, VM_DISK_FORMATS, type VmDiskFormat } from '../../lab/vm/vm-definition.js';
import type { FaultPatch } from '../../lab/faults.js';
import { PERSONALITIES, parsePersonality, type PersonalityName } from '../../lab/personality.js';
import { CliError } from '../cli-error.js';
import { resolveConfig } from '../config.js';
import type { CommandContext } from '../context.js';
import { parseListen } from '../listen-address.js';
import { parseOutputFormat, render, renderTable } from '../output.js';

const DEFAULT_LAB_DIR = './.ingot-lab';

export function registerLab(program: Command, ctx: CommandContext): void {
  const lab = program
    .command('lab')
    .description('run simulated servers with Redfish BMCs (start it with no subcommand), enroll them, inject faults')
    // `lab` and its subcommands share option names (--data-dir): each takes the ones after it.
    .enablePositionalOptions()
    .option('--hosts <n>', 'how many simulated servers (default 4)')
    .option('--vms <n>', 'run N real QEMU virtual machines instead of simulated servers (docs/lab-vms.md)')
    .option('--vm-cpus <n>', 'vCPUs per VM', String(VM_DEFAULTS.vcpus))
    .option('--vm-memory <mib>', 'memory per VM in MiB', String(VM_DEFAULTS.memoryMiB))
    .option('--vm-disk-size <gib>', 'disk size per VM in GiB', String(VM_DEFAULTS.diskGiB))
    .option('--vm-disk-format <format>', `disk file format: ${VM_DISK_FORMATS.join(', ')}`, VM_DEFAULTS.diskFormat)
    .option('--vm-forward <ports>', `host loopback ports the VMs reach at ${GUEST_SERVICE_ADDRESS}: PORT or GUESTPORT:HOSTPORT, comma-separated`, DEFAULT_FORWARD_PORTS.join(','))
    .option('--vm-accel <accel>', 'kvm or tcg (default: kvm when /dev/kvm works, else tcg)')
    .option('--vm-media-ca <file>', 'PEM CA certificates the VM BMCs trust for https:// virtual media, besides the system CAs')
    .option('--listen <host:port>', 'address of the lab Redfish service', '127.0.0.1:8443')
    .option('--data-dir <dir>', 'where the lab keeps its state, CA and credentials', DEFAULT_LAB_DIR)
    .option('--profile <file>', 'hardware profile (YAML/JSON)')
    .option('--power-transition <ms>', 'how long power on/off takes', '1000')
    .option('--personality <name>', `BMC behaviour of every system: ${PERSONALITIES.join(', ')}`, 'standard')
    .option('--agent-processes <mode>', `where booted agents run: per-agent (an \`ingot agent\` process each), shared (all in the lab process), auto (per-agent up to ${PER_AGENT_MAX_SYSTEMS} hosts)`, 'auto')
    .action(ctx.run(async (opts: LabStartFlags) => {
      if (!(AGENT_PROCESSES_OPTIONS as readonly string[]).includes(opts.agentProcesses)) throw new CliError(`--agent-processes ${opts.agentProcesses}: use one of ${AGENT_PROCESSES_OPTIONS.join(', ')}`);
      const agentProcesses = opts.agentProcesses as AgentProcessesOption;
      if (opts.vms !== undefined && opts.hosts !== undefined) throw new CliError('give --hosts (simulated servers) or --vms (virtual machines), not both');
      const count = opts.vms ?? opts.hosts ?? '4';
      const hosts = Number(count);
      if (!Number.isInteger(hosts) || hosts < 1) throw new CliError(`${opts.vms !== undefined ? '--vms' : '--hosts'} ${count}: use a whole number of at least 1`);
      const vms = opts.vms !== undefined ? await vmOptions(opts) : undefined;
      const powerTransitionMs = Number(opts.powerTransition);
      if (!Number.isInteger(powerTransitionMs) || powerTransitionMs < 0) throw new CliError(`--power-transition ${opts.powerTransition}: use a whole number of milliseconds`);
      parseListen(opts.listen, '--listen');
      let persona: PersonalityName;
      try {
        persona = parsePersonality(opts.personality);
      } catch (err) {
        throw new CliError(`--personality: ${(err as Error).message}`);
      }
      const dataDir = resolve(opts.dataDir);
      let running;
      try {
        running = await startLab({ hosts, listen: opts.listen, dataDir, powerTransitionMs, agentProcesses, personality: persona, ...(opts.profile ? { profile: opts.profile } : {}), ...(vms ? { vms } : {}) });
      } catch (err) {
        throw new CliError((err as Error).message);
      }
      if (running.vms) {
        const { host, forwards, guestAddress } = running.vms;
        ctx.out.write(`Ingot lab: ${running.systems.length} QEMU virtual machines (${host.accel === 'kvm' ? 'KVM' : 'TCG emulation, no usable /dev/kvm'}), Redfish at ${running.url}\n`);
        ctx.out.write(`VM network: each VM reaches only ${forwards.map((f) => `${guestAddress}:${f.guestPort} -> 127.0.0.1:${f.hostPort}`).join(', ')}\n`);
        ctx.out.write(`In the server's --config file set agentApiUrl: http://${guestAddress}:${forwards[0]!.guestPort} (docs/lab-vms.md)\n`);
        ctx.out.write(`Serial consoles: ${join(dataDir, 'systems', '<id>', 'console.log')}\n`);
      } else {
        ctx.out.write(`Ingot lab: ${running.systems.length} simulated servers, Redfish at ${running.url}\n`);
      }
      if (running.agents) ctx.out.write(`Agents: ${running.agents.processes === 'per-agent' ? 'one process each (logs in DATA_DIR/systems/<id>/agent/agent.log)' : 'in the lab process'}\n`);
      ctx.out.write(`Lab CA: ${running.caFile}\nBMC credentials: ${running.credentialsFile} (owner-only)\n`);
      ctx.out.write(`Enroll them into a server: ingot lab enroll --data-dir ${opts.dataDir} (uses INGOT_SERVER / INGOT_TOKEN or \`ingot login\`)\n`);
      ctx.out.write('Press Ctrl-C to stop.\n');
      await new Promise<void>((done) => {
        const stop = () => {
          ctx.err.write('ingot: stopping the lab\n');
          running
            .close()
            .catch((err: unknown) => {
              ctx.err.write(`ingot: error while stopping the lab: ${(err as Error).message}\n`);
              process.exitCode = 1;
            })
            .finally(done);
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    }));

  lab
    .command('enroll')
    .description("create a Secret and a Host in Ingot for each of the lab's systems")
    .option('--server <url>', 'the Ingot API (default: INGOT_SERVER or `ingot login`)')
    .option('--token <token>', 'API token (default: INGOT_TOKEN or `ingot login`)')
    .option('--data-dir <dir>', 'the lab data directory', DEFAULT_LAB_DIR)
    .option('--lab-url <url>', 'https://HOST:PORT of the lab (default: where the lab last listened)')
    .option('--systems <ids>', 'only these system ids, comma-separated')
    .option('-o, --output <format>', 'output format: table (default), json, yaml')
    .action(ctx.run(async (opts: { server?: string; token?: string; dataDir: string; labUrl?: string; systems?: string; output?: string }) => {
      const format = parseOutputFormat(opts.output);
      const config = resolveConfig(process.env, opts.server);
      const server = config.server;
      const token = opts.token ?? config.token;
      if (!server || !token) throw new CliError('say which Ingot server to enroll into: --server URL --token TOKEN, or set INGOT_SERVER and INGOT_TOKEN, or run `ingot login`');
      let result;
      try {
        result = await enrollLab({
          server,
          token,
          dataDir: resolve(opts.dataDir),
          ...(opts.labUrl ? { labUrl: opts.labUrl } : {}),
          ...(opts.systems ? { systems: opts.systems.split(',').map((s) => s.trim()).filter(Boolean) } : {}),
        });
      } catch (err) {
        const cause = (err as Error).message;
        if (/fetch failed/.test(cause)) throw new CliError(`cannot reach the Ingot API at ${server}. Is \`ingot server\` running? Set INGOT_SERVER or run \`ingot login\``);
        throw new CliError(`enrolling the lab failed: ${cause}`);
      }
      ctx.out.write(
        render(result, format, () =>
          renderTable(['HOST', 'SECRET', 'BMC ADDRESS', 'BOOT MAC'], result.hosts.map((h) => [h.name, h.secretName, h.address, h.bootMACAddress])) +
          `${result.hosts.length} hosts enrolled (CA in secret/${result.caSecretName}); follow them with \`ingot host list\`\n`,
        ),
      );
    }));

  const fault = lab.command('fault').description("inject or clear faults in a lab system's BMC");
  const labClient = (dataDir: string, url?: string) =>
    LabAdminClient.fromDataDir(resolve(dataDir), url).catch((err: unknown) => {
      throw new CliError(`cannot use the lab in ${dataDir}: ${(err as Error).message}; start it with \`ingot lab --data-dir ${dataDir}\``);
    });

  fault
    .command('list')
    .description('systems with their power state and faults')
    .option('--data-dir <dir>', 'the lab data directory', DEFAULT_LAB_DIR)
    .option('-o, --output <format>', 'output format: table (default), json, yaml')
    .action(ctx.run(async (opts: { dataDir: string; output?: string }) => {
      const format = parseOutputFormat(opts.output);
      const client = await labClient(opts.dataDir);
      try {
        const systems = await client.listSystems();
        ctx.out.write(
          render({ systems }, format, () =>
            renderTable(['SYSTEM', 'POWER', 'FAULTS'], systems.map((s) => [s.id, s.powerState, describeFaults(s.faults)])),
          ),
        );
      } finally {
        await client.close();
      }
    }));

  fault
    .command('set')
    .description('inject faults into one system (merged with its current faults)')
    .argument('<system>')
    .option('--data-dir <dir>', 'the lab data directory', DEFAULT_LAB_DIR)
    .option('--delay <ms>', 'delay every Redfish answer by this long')
    .option('--error-burst <n>', 'answer the next N requests with an error')
    .option('--error-status <status>', 'the status of those errors (500-599)')
    .option('--drop-connections <n>', 'drop the next N connections unanswered')
    .option('--ignore-power', 'accept power actions and do nothing')
    .option('--fail-drive-writes <indexes>', 'comma-separated drive indexes whose writes fail')
    .action(ctx.run(async (system: string, opts: { dataDir: string; delay?: string; errorBurst?: string; errorStatus?: string; dropConnections?: string; ignorePower?: boolean; failDriveWrites?: string }) => {
      const patch: FaultPatch = {};
      if (opts.delay !== undefined) patch.delayMs = int(opts.delay, '--delay');
      if (opts.errorBurst !== undefined) patch.errorBurst = int(opts.errorBurst, '--error-burst');
      if (opts.errorStatus !== undefined) patch.errorStatus = int(opts.errorStatus, '--error-status');
      if (opts.dropConnections !== undefined) patch.dropConnections = int(opts.dropConnections, '--drop-connections');
      if (opts.ignorePower) patch.ignorePower = true;
      if (opts.failDriveWrites !== undefined) patch.failDriveWrites = opts.failDriveWrites.split(',').filter(Boolean).map((x) => int(x, '--fail-drive-writes'));
      if (Object.keys(patch).length === 0) throw new CliError('say which fault to inject, e.g. --error-burst 3 or --delay 2000 (see --help)');
      const client = await labClient(opts.dataDir);
      try {
        const faults = await client.setFaults(system, patch);
        ctx.out.write(`${system}: ${describeFaults(faults)}\n`);
      } catch (err) {
        throw new CliError((err as Error).message);
      } finally {
        await client.close();
      }
    }));

  fault
    .command('clear')
    .description('remove every fault from one system')
    .argument('<system>')
    .option('--data-dir <dir>', 'the lab data directory', DEFAULT_LAB_DIR)
    .action(ctx.run(async (system: string, opts: { dataDir: string }) => {
      const client = await labClient(opts.dataDir);
      try {
        await client.clearFaults(system);
        ctx.out.write(`${system}: no faults\n`);
      } catch (err) {
        throw new CliError((err as Error).message);
      } finally {
        await client.close();
      }
    }));
}

interface LabStartFlags {
  hosts?: string;
  vms?: string;
  vmCpus: string;
  vmMemory: string;
  vmDiskSize: string;
  vmDiskFormat: string;
  vmForward: string;
  vmAccel?: string;
  vmMediaCa?: string;
  listen: string;
  dataDir: string;
  profile?: string;
  powerTransition: string;
  personality: string;
  agentProcesses: string;
}

async function vmOptions(opts: LabStartFlags): Promise<NonNullable<StartLabOptions['vms']>> {
  if (opts.vmAccel !== undefined && opts.vmAccel !== 'kvm' && opts.vmAccel !== 'tcg') throw new CliError(`--vm-accel ${opts.vmAccel}: use kvm or tcg`);
  if (!(VM_DISK_FORMATS as readonly string[]).includes(opts.vmDiskFormat)) throw new CliError(`--vm-disk-format ${opts.vmDiskFormat}: use one of ${VM_DISK_FORMATS.join(', ')}`);
  let forwards;
  try {
    forwards = parseForwards(opts.vmForward);
  } catch (err) {
    throw new CliError((err as Error).message);
  }
  let mediaCaPem: string | undefined;
  if (opts.vmMediaCa) {
    try {
      mediaCaPem = await readFile(opts.vmMediaCa, 'utf8');
    } catch (err) {
      throw new CliError(`--vm-media-ca ${opts.vmMediaCa}: ${(err as Error).message}`);
    }
    if (!mediaCaPem.includes('-----BEGIN CERTIFICATE-----')) throw new CliError(`--vm-media-ca ${opts.vmMediaCa}: not a PEM certificate file`);
  }
  return {
    shape: { vcpus: int(opts.vmCpus, '--vm-cpus'), memoryMiB: int(opts.vmMemory, '--vm-memory'), diskGiB: int(opts.vmDiskSize, '--vm-disk-size'), diskFormat: opts.vmDiskFormat as VmDiskFormat },
    forwards,
    ...(opts.vmAccel ? { accel: opts.vmAccel as 'kvm' | 'tcg' } : {}),
    ...(mediaCaPem ? { mediaCaPem } : {}),
  };
}

function int(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw new CliError(`${flag} ${text}: use a whole number`);
  return n;
}

function describeFaults(f: { delayMs: number; errorBurst: number; errorStatus: number; dropConnections: number; ignorePower: boolean; failDriveWrites: number[] }): string {
  const parts: string[] = [];
  if (f.delayMs) parts.push(`delay ${f.delayMs}ms`);
  if (f.errorBurst) parts.push(`next ${f.errorBurst} answers ${f.errorStatus}`);
  if (f.dropConnections) parts.push(`drop next ${f.dropConnections} connections`);
  if (f.ignorePower) parts.push('ignores power actions');
  if (f.failDriveWrites.length) parts.push(`drive writes fail: ${f.failDriveWrites.join(',')}`);
  return parts.join(', ') || 'none';
}
