// `ingot quickstart`: the tour, on real protocols in well under a minute, on one machine, with no
// download. In this process it starts the server (embedded database), a lab of simulated servers
// behind HTTPS Redfish BMCs that runs the real Ingot agent when a host boots the agent ISO from
// virtual media, and a loopback HTTP server for an image it builds here (a small GPT disk, qcow2
// when qemu-img is installed). As the platform admin it enrolls the lab (`ingot lab enroll` does
// the same), waits for in-band inspection, publishes the image as a verified OSImage, a NodeType,
// a Project and an IPPool; as that project's admin (a token it creates) it claims a machine and
// shows the host go to provisioned. Everything goes through the public API with the client, as
// an operator and a tenant would.
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
import { formatElapsed, parseDuration } from '../duration.js';
import { hostsTable } from '../output.js';
import { waitClaim } from '../claim-wait.js';
import { claimsTable } from '../tenancy-output.js';
import { ensureQuickstartImage, serveImages, type ImageServer } from '../quickstart-image.js';
import { waitForHosts } from '../wait.js';

const TOKEN_FILE = 'quickstart-token';
const USER_DATA_SECRET = 'demo-user-data';
const IMAGE_NAME = 'quickstart-disk';
const NODE_TYPE = 'lab.small';
const PROJECT = 'demo';
const POOL = 'lab-net';
const CLAIM = 'demo-1';
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
    .description('start a server and a lab of simulated servers running the real agent, and tour it: enroll -> inspect -> publish an image and node type -> a project claims a machine -> provisioned')
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
    out.write(`\n1/5 Enrolling ${count} lab hosts: BMC credentials in secret/<host>-bmc, the lab CA in secret/lab-ca\n`);
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
      out.write(`\n2/5 Registering and inspecting: each host boots the agent from virtual media and reports its hardware; waiting for ${toInspect.length === count ? 'every host' : toInspect.join(', ')} to become available\n`);
      await waitForHosts(client, toInspect, 'available', { timeout: opts.timeout }, out);
    } else {
      out.write('\n2/5 Every host was inspected in an earlier run\n');
    }

    // 3. The platform admin publishes what tenants may have: a verified image, a node type, a
    //    project with a quota, and an address pool.
    const image = await ensureQuickstartImage(join(dataDir, 'images'));
    images = await serveImages([image]);
    const imageUrl = `${images.baseUrl}/${image.fileName}`;
    out.write(`\n3/5 Publishing, as the platform admin: OSImage ${IMAGE_NAME} (${image.format}, ${formatBytes(image.sizeBytes)}, sha256 ${image.sha256.slice(0, 12)}…, served at ${imageUrl}), NodeType ${NODE_TYPE}, Project ${PROJECT}, IPPool ${POOL}\n`);
    if (image.note) out.write(`  note: ${image.note}\n`);
    await publishPlatform(client, imageUrl, image, count);
    const verified = await waitForImageVerified(client, opts.timeout);
    out.write(`  osimage/${IMAGE_NAME} verified: ${verified}\n`);
    for (const name of systems) {
      // The lab's disks are small: name the root disk, as an operator does on machines with several disks.
      await client.hosts.patch(name, { spec: { rootDeviceHints: { deviceName: ROOT_DEVICE } } });
    }

    // 4. A tenant claims a machine: a project-admin token of project demo, user data in a
    //    project secret, one claim. The scheduler binds it to an available host and the
    //    conductor provisions that host with the node type's image and the claim's config drive.
    const tenant = await client.tokens.create({ roles: ['project-admin'], project: PROJECT, description: 'ingot quickstart: demo project admin', expiresInSeconds: 7 * 24 * 3600 });
    const tenantClient = createClient({ server: server.apiUrl, token: tenant.token, fetch: (input, init) => undiciFetch(input, { ...(init as object), dispatcher: agent }) as unknown as Promise<Response> });
    out.write(`\n4/5 Claiming, as a project admin of ${PROJECT}: claim/${CLAIM} of node type ${NODE_TYPE}, user data from the project's secret/${USER_DATA_SECRET}, an address from ${POOL}\n`);
    await tenantClient.projectSecrets.apply(PROJECT, {
      apiVersion: API_VERSION,
      kind: 'Secret',
      metadata: { name: USER_DATA_SECRET },
      stringData: { userData: '#cloud-config\n# written by ingot quickstart: the lab records its digest when the host boots from disk\nusers: [default]\n' },
    });
    const existing = await tenantClient.claims.get(PROJECT, CLAIM).catch(() => undefined);
    if (!existing) {
      await tenantClient.claims.create(PROJECT, {
        apiVersion: API_VERSION,
        kind: 'Claim',
        metadata: { name: CLAIM },
        spec: { nodeTypeName: NODE_TYPE, userDataSecretName: USER_DATA_SECRET, networks: [{ ipPoolName: POOL }] },
      });
    }
    const hostName = await waitForBinding(tenantClient, opts.timeout);
    out.write(`  claim/${CLAIM} is bound to host ${hostName}; the admin's view of that host while it is provisioned:\n`);
    await waitForHosts(client, [hostName], 'provisioned', { timeout: opts.timeout }, out);
    const claim = await waitClaim(tenantClient, PROJECT, CLAIM, 'ready', { timeout: opts.timeout }, out);

    out.write(`\n5/5 Done in ${formatElapsed(Date.now() - started)}. The hosts (admin view):\n\n`);
    const hosts = (await client.hosts.listAll({ labelSelector: LAB_LABEL })).filter((h) => systems.includes(h.metadata.name));
    out.write(hostsTable(hosts));
    out.write(`\nThe claims of project ${PROJECT} (tenant view: the host's name and addresses, nothing else of it):\n\n`);
    out.write(claimsTable(await tenantClient.claims.listAll(PROJECT)));
    out.write(`\nThe lab disk of ${claim?.status?.hostName ?? hostName} is a file: ${join(labDir, 'systems', hostName, 'disk-0.img')} now holds the image and a config drive.\n`);
    out.write('\nTry the CLI against it, as the platform admin:\n');
    out.write(`  export INGOT_SERVER=${server.apiUrl} INGOT_TOKEN=${token}\n`);
    out.write('  ingot host list\n');
    out.write(`  ingot host events ${hostName}\n`);
    out.write('  ingot osimage list; ingot nodetype list; ingot project list; ingot ippool show ' + POOL + '\n');
    out.write('  ingot audit tail\n');
    out.write(`and as the tenant (this token is shown once; it expires in 7 days):\n`);
    out.write(`  export INGOT_TOKEN=${tenant.token} INGOT_PROJECT=${PROJECT}\n`);
    out.write('  ingot claim list\n');
    out.write(`  ingot claim create demo-2 --node-type ${NODE_TYPE} --network ${POOL} --wait\n`);
    out.write(`  ingot claim delete ${CLAIM} --wait      # the host is cleaned and returns to available\n`);
    out.write('(The web console is not built yet; the API is described at /api/openapi.json.)\n');

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

/** The platform side of the tour, applied idempotently (a second run finds it all in place). */
async function publishPlatform(client: IngotClient, imageUrl: string, image: { sha256: string; format: 'raw' | 'qcow2' }, hosts: number): Promise<void> {
  await client.osImages.apply({
    apiVersion: API_VERSION,
    kind: 'OSImage',
    metadata: { name: IMAGE_NAME },
    spec: { url: imageUrl, checksum: image.sha256, checksumType: 'sha256', format: image.format, verifyOnCreate: true },
  });
  await client.nodeTypes.apply({
    apiVersion: API_VERSION,
    kind: 'NodeType',
    metadata: { name: NODE_TYPE },
    spec: { selector: { matchLabels: { 'ingot.dev/lab': 'true' }, minCpus: 1, minMemoryMebibytes: 1024 }, osImageName: IMAGE_NAME, automatedCleaningMode: 'metadata' },
  });
  await client.projects.apply({
    apiVersion: API_VERSION,
    kind: 'Project',
    metadata: { name: PROJECT },
    spec: { description: 'the quickstart tenant', allowedNodeTypes: ['lab.*'], quotas: { claims: { soft: Math.max(1, hosts - 1), hard: hosts } } },
  });
  await client.ipPools.apply({
    apiVersion: API_VERSION,
    kind: 'IPPool',
    metadata: { name: POOL },
    spec: { ranges: [{ start: '198.51.100.10', end: '198.51.100.99' }], prefix: 24, gateway: '198.51.100.1', dnsServers: ['198.51.100.53'] },
  });
}

async function poll<T>(what: string, timeout: string, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + parseDuration(timeout);
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new CliError(`timed out after ${timeout} waiting for ${what}; run again with a longer --timeout, or look at \`ingot audit tail\` and the server log`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The server downloads, verifies and inspects the image (verifyOnCreate); a failure stops the tour. */
async function waitForImageVerified(client: IngotClient, timeout: string): Promise<string> {
  return poll(`osimage/${IMAGE_NAME} to be verified`, timeout, async () => {
    const v = (await client.osImages.get(IMAGE_NAME)).status?.verification;
    if (v?.state === 'failed') throw new CliError(`osimage/${IMAGE_NAME} failed verification: ${v.message ?? 'no reason given'}; remove the data dir's images/ folder to rebuild the image`);
    return v?.state === 'verified' ? `${v.detectedFormat ?? '?'}, ${formatBytes(v.sizeBytes ?? 0)}, digest ${String(v.digest ?? '').slice(0, 12)}…` : undefined;
  });
}

/** The host the claim was bound to (the tenant sees its name only). */
async function waitForBinding(client: IngotClient, timeout: string): Promise<string> {
  return poll(`claim/${CLAIM} to be bound to a host`, timeout, async () => {
    const c = await client.claims.get(PROJECT, CLAIM);
    if (c.status?.state === 'failed') throw new CliError(`claim/${CLAIM} failed: ${c.status.reason ?? 'no reason given'}`);
    return c.status?.hostName || undefined;
  });
}
