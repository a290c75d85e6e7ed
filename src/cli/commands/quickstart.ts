// `ingot quickstart`: a whole lifecycle on real protocols in well under a minute, on one
// machine, with no download. In this process it starts the server (embedded database), a lab of
// simulated servers behind HTTPS Redfish BMCs that runs the real Ingot agent when a host boots
// the agent ISO from virtual media, and a loopback HTTP server for an image it builds here (a
// small GPT disk, qcow2 when qemu-img is installed). It enrolls the lab through the public API
// (`ingot lab enroll` does the same), waits for in-band inspection, provisions the image with
// user data onto each host's lab disk, and shows how to drive it with the CLI. Everything goes
// through the public API with the client, as an operator would.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { Agent, fetch as undiciFetch } from 'undici';
import { createClient, type IngotClient } from '../../client/index.js';
import { enrollLab } from '../../lab/enroll.js';
import { readLabState } from '../../lab/lab-fleet.js';
import { startLab, type RunningLab } from '../../lab/run-lab.js';
import { API_VERSION } from '../../model/envelope.js';
import { runServer, type RunningServer } from '../../server/run-server.js';
import { CliError } from '../cli-error.js';
import type { CommandContext } from '../context.js';
import { formatElapsed } from '../duration.js';
import { hostsTable } from '../output.js';
import { ensureQuickstartImage, serveImages, type ImageServer } from '../quickstart-image.js';
import { waitForHosts } from '../wait.js';
import { applyManifests } from './apply.js';

const TOKEN_FILE = 'quickstart-token';
const USER_DATA_SECRET = 'quickstart-user-data';
const LAB_DIR = 'lab';
const LAB_LABEL = 'ingot.dev/lab=true';
/**
 * Each lab machine: one small NVMe disk the image goes to and one SATA disk beside it, both
 * sparse files, so the lab costs no disk space and cleaning and writing take no time. The
 * agent's default minimum root disk is 4 GiB, so the hosts name their root disk in
 * spec.rootDeviceHints, as an operator does on machines with several disks.
 */
const DISK_MIB = 64;
const ROOT_DEVICE = '/dev/nvme0n1';
const labProfile = (count: number) =>
  `# written by ingot quickstart\ngroups:\n  - {count: ${count}, cpus: 1, coresPerCpu: 4, threadsPerCore: 2, ramGiB: 8, nics: 2, model: quickstart, disks: [{sizeMiB: ${DISK_MIB}, type: nvme}, {sizeMiB: ${DISK_MIB}, type: sata}]}\n`;

interface QuickstartFlags {
  dataDir: string;
  hosts: string;
  keepRunning?: boolean;
  timeout: string;
}

export function registerQuickstart(program: Command, ctx: CommandContext): void {
  program
    .command('quickstart')
    .description('start a server and a lab of simulated servers running the real agent, and walk through enroll -> inspect -> provision')
    .option('--data-dir <dir>', 'where the quickstart keeps its database, lab and image (reused if it exists)', './.ingot-quickstart')
    .option('--hosts <n>', 'how many lab hosts', '3')
    .option('--keep-running', 'keep the server, the lab and the image server up after the tour, until Ctrl-C')
    .option('--timeout <duration>', 'how long each wait may take', '5m')
    .action(ctx.run(async (opts: QuickstartFlags) => {
      await quickstart(ctx, opts);
    }));
}

async function quickstart(ctx: CommandContext, opts: QuickstartFlags): Promise<void> {
  const count = Number(opts.hosts);
  if (!Number.isInteger(count) || count < 1 || count > 50) throw new CliError(`--hosts ${opts.hosts}: use a whole number from 1 to 50`);
  const out = ctx.out;
  const started = Date.now();
  const dataDir = resolve(opts.dataDir);
  const reuse = existsSync(dataDir);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });

  // The bootstrap token is shown only once by the server, so the quickstart chooses it and keeps
  // it in its own data dir (owner-only) to come back to the same installation next time.
  const tokenPath = join(dataDir, TOKEN_FILE);
  let token = existsSync(tokenPath) ? readFileSync(tokenPath, 'utf8').trim() : '';
  if (!token) {
    if (reuse && existsSync(join(dataDir, 'ingot.db'))) {
      throw new CliError(`${dataDir} holds an Ingot installation the quickstart did not create (no ${TOKEN_FILE}); choose another --data-dir or remove that one`);
    }
    token = `ingot_${randomBytes(32).toString('base64url')}`;
    writeFileSync(tokenPath, token + '\n', { mode: 0o600 });
  }

  out.write(`${reuse ? 'Reusing' : 'Creating'} the quickstart installation in ${dataDir}\n`);
  let lab: RunningLab | undefined;
  let server: RunningServer | undefined;
  let images: ImageServer | undefined;
  // Our own connection pool, so that its keep-alive and watch connections can be dropped before
  // the server closes (a server waits for open connections to finish).
  const agent = new Agent({ keepAliveTimeout: 5_000 });
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await agent.destroy().catch(() => undefined);
    // The server first: its conductor stops talking to the lab before the lab goes away.
    await server?.close();
    await lab?.close();
    await images?.close();
  };
  const onSignal = () => {
    out.write('\nStopping the quickstart server, lab and image server…\n');
    void close().then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    const labDir = join(dataDir, LAB_DIR);
    const profile = join(dataDir, 'lab-profile.yaml');
    writeFileSync(profile, labProfile(count), { mode: 0o600 });
    lab = await startQuickstartLab(labDir, profile, count);
    const labUrl = lab.url;

    server = await runServer({
      dataDir,
      listen: '127.0.0.1:0',
      agentListen: '127.0.0.1:0',
      bootstrapToken: token,
      fake: false,
      // Look at the simulated hardware often: its changes take fractions of a second.
      conductor: {
        pollMs: 100,
        resyncMs: 2_000,
        backoff: { baseMs: 250, capMs: 2_000 },
        handler: { powerPollMs: 150, agentPollMs: 150, idleRecheckMs: 500, agentBootTimeoutMs: 60_000 },
      },
      log: 'warn',
    });
    out.write(`Ingot API listening on ${server.apiUrl}; lab BMCs (Redfish over HTTPS) at ${labUrl}\n`);
    const client = createClient({ server: server.apiUrl, token, fetch: (input, init) => undiciFetch(input, { ...(init as object), dispatcher: agent }) as unknown as Promise<Response> });

    // 1. Enroll: a Secret per BMC and a Host per lab system, through the API.
    const systems = lab.systems.map((s) => s.id);
    const known = new Map<string, string>();
    for (const name of systems) {
      const h = await client.hosts.get(name).catch(() => undefined);
      if (h) known.set(name, h.spec.bmc?.address ?? '');
    }
    const fresh = systems.filter((n) => !known.has(n));
    out.write(`\n1/4 Enrolling ${count} lab hosts: BMC credentials in secret/<host>-bmc, the lab CA in secret/lab-ca\n`);
    if (fresh.length > 0) {
      const enrolled = await enrollLab({ dataDir: labDir, labUrl, server: server.apiUrl, token, systems: fresh });
      for (const h of enrolled.hosts) out.write(`  host/${h.name} created (${h.address})\n`);
    }
    for (const [name, address] of known) {
      // The lab could not get its old port back: point the BMC address at the new one.
      const now = address.replace(/^(redfish-virtualmedia:\/\/)[^/]+/, `$1${new URL(labUrl).host}`);
      if (now !== address) await client.hosts.patch(name, { spec: { bmc: { address: now } } });
      out.write(`  host/${name} ${now !== address ? 'configured (lab moved to a new port)' : 'unchanged'}\n`);
    }

    // 2. Inspection in-band: the server boots each host into the agent ISO over virtual media.
    const already = await provisionedHosts(client, systems);
    const toInspect = systems.filter((n) => !already.has(n));
    if (toInspect.length > 0) {
      out.write(`\n2/4 Registering and inspecting: each host boots the agent from virtual media and reports its hardware; waiting for ${toInspect.length === count ? 'every host' : toInspect.join(', ')} to become available\n`);
      await waitForHosts(client, toInspect, 'available', { timeout: opts.timeout }, out);
    } else {
      out.write('\n2/4 Every host was provisioned in an earlier run: nothing to inspect\n');
    }

    // 3. Provision a real image, built here and served on loopback.
    const image = await ensureQuickstartImage(join(dataDir, 'images'));
    images = await serveImages([image]);
    const imageUrl = `${images.baseUrl}/${image.fileName}`;
    out.write(`\n3/4 Provisioning ${imageUrl} (${image.format}, ${formatBytes(image.sizeBytes)}, sha256 ${image.sha256.slice(0, 12)}…) onto ${ROOT_DEVICE} of each host, with user data from secret/${USER_DATA_SECRET}\n`);
    if (image.note) out.write(`  note: ${image.note}\n`);
    await applyManifests(client, [
      {
        kind: 'Secret' as const,
        name: USER_DATA_SECRET,
        index: 1,
        line: 1,
        body: {
          apiVersion: API_VERSION,
          kind: 'Secret' as const,
          metadata: { name: USER_DATA_SECRET, labels: { 'ingot.dev/quickstart': 'true' } },
          stringData: { userData: '#cloud-config\n# written by ingot quickstart: the lab records its digest when a host boots from disk\nusers: [default]\n' },
        },
      },
    ]);
    for (const name of toInspect) {
      await client.hosts.patch(name, {
        spec: {
          online: true,
          image: { url: imageUrl, checksum: image.sha256, checksumType: 'sha256', format: image.format },
          rootDeviceHints: { deviceName: ROOT_DEVICE },
          userDataName: USER_DATA_SECRET,
        },
      });
    }
    await waitForHosts(client, systems, 'provisioned', { timeout: opts.timeout }, out);

    out.write(`\n4/4 Done in ${formatElapsed(Date.now() - started)}. Your hosts:\n\n`);
    const hosts = (await client.hosts.listAll({ labelSelector: LAB_LABEL })).filter((h) => systems.includes(h.metadata.name));
    out.write(hostsTable(hosts));
    out.write(`\nEach lab disk is a file: ${join(labDir, 'systems', '<host>', 'disk-0.img')} now holds the image and a config drive.\n`);
    out.write('\nTry the CLI against it:\n');
    out.write(`  export INGOT_SERVER=${server.apiUrl} INGOT_TOKEN=${token}\n`);
    out.write('  ingot host list\n');
    out.write(`  ingot host show ${systems[0]}\n`);
    out.write(`  ingot host events ${systems[0]}\n`);
    out.write(`  ingot host deprovision ${systems[0]} --wait available\n`);

    if (opts.keepRunning) {
      out.write(`\nThe server, the lab and the image server keep running (data in ${dataDir}); press Ctrl-C to stop them.\n`);
      await new Promise<void>(() => undefined); // until a signal ends the process
    } else {
      out.write('\nThe server and the lab stop now; run `ingot quickstart --keep-running` to keep them up and use the commands above.\n');
    }
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    if (!opts.keepRunning) await close();
  }
}

/**
 * The lab, on the port it had last time when it can get it back (the hosts' BMC addresses name
 * it), else on a free one. Power transitions and agent retries are short: simulated hardware.
 */
async function startQuickstartLab(labDir: string, profile: string, count: number): Promise<RunningLab> {
  const previous = existsSync(labDir) ? (await readLabState(labDir).catch(() => undefined))?.url : undefined;
  const port = previous ? new URL(previous).port : '';
  const start = (listen: string) =>
    startLab({
      hosts: count,
      listen,
      dataDir: labDir,
      profile,
      powerTransitionMs: 100,
      // The image is a few MiB: the default 1 GiB free-memory floor for qemu-img is meant for real images.
      agents: { backoff: { initialMs: 100, maxMs: 1_000 }, commandWaitSeconds: 2, conversion: { minFreeMemoryBytes: 64 * 1024 * 1024 } },
    });
  if (port) {
    try {
      return await start(`127.0.0.1:${port}`);
    } catch {
      /* taken by something else: any free port will do */
    }
  }
  return start('127.0.0.1:0');
}

function formatBytes(n: number): string {
  return n >= 1024 * 1024 ? `${(n / (1024 * 1024)).toFixed(1)} MiB` : `${Math.ceil(n / 1024)} KiB`;
}

async function provisionedHosts(client: IngotClient, names: string[]): Promise<Set<string>> {
  const done = new Set<string>();
  for (const name of names) {
    const h = await client.hosts.get(name);
    const s = h.status?.provisioning?.state;
    if (s === 'provisioned' || s === 'provisioning') done.add(name);
  }
  return done;
}
