// `ingot quickstart`: a whole lifecycle in seconds on one machine. It starts the server
// in-process on the embedded database, enrolls simulated (fake://) hosts, waits for them to be
// inspected and available, provisions an image onto each, and shows how to drive it with the
// CLI. Everything goes through the public API with the client, as an operator would.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { Agent, fetch as undiciFetch } from 'undici';
import { createClient, type IngotClient } from '../../client/index.js';
import type { HostInput } from '../../model/host.js';
import { runServer } from '../../server/run-server.js';
import { CliError } from '../cli-error.js';
import type { CommandContext } from '../context.js';
import { formatElapsed } from '../duration.js';
import { hostsTable } from '../output.js';
import { waitForHosts } from '../wait.js';
import { applyManifests } from './apply.js';

const SECRET_NAME = 'quickstart-bmc';
const TOKEN_FILE = 'quickstart-token';
const IMAGE_URL = 'http://images.quickstart.invalid/ubuntu-24.04-server.qcow2';
/** The digest the fake image "has": any fixed sha256 works, the fake driver verifies nothing on the wire. */
const IMAGE_CHECKSUM = createHash('sha256').update('ingot quickstart image').digest('hex');

/** Short fake delays so the tour takes seconds, not minutes (real hardware takes minutes). */
const QUICKSTART_FAKE_DELAYS = {
  powerMs: [100, 300] as const,
  inspectMs: [300, 900] as const,
  deployMs: [500, 1500] as const,
  cleanMs: [300, 900] as const,
  callMs: [0, 0] as const,
};

interface QuickstartFlags {
  dataDir: string;
  hosts: string;
  keepRunning?: boolean;
  timeout: string;
}

export function registerQuickstart(program: Command, ctx: CommandContext): void {
  program
    .command('quickstart')
    .description('start a server with simulated hosts and walk through enroll -> inspect -> provision')
    .option('--data-dir <dir>', 'where the quickstart keeps its database (reused if it exists)', './.ingot-quickstart')
    .option('--hosts <n>', 'how many simulated hosts', '3')
    .option('--keep-running', 'keep the server up after the tour, until Ctrl-C')
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
  const server = await runServer({
    dataDir,
    listen: '127.0.0.1:0',
    agentListen: '127.0.0.1:0',
    bootstrapToken: token,
    fake: { delays: QUICKSTART_FAKE_DELAYS },
    // Look at the simulated hardware often: its changes take fractions of a second.
    conductor: { handler: { powerPollMs: 200, agentPollMs: 200 } },
    log: 'warn',
  });
  // Our own connection pool, so that its keep-alive and watch connections can be dropped before
  // the server closes (a server waits for open connections to finish).
  const agent = new Agent({ keepAliveTimeout: 5_000 });
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await agent.destroy().catch(() => undefined);
    await server.close();
  };
  const onSignal = () => {
    out.write('\nStopping the quickstart server…\n');
    void close().then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    out.write(`Ingot API listening on ${server.apiUrl}\n`);
    const client = createClient({ server: server.apiUrl, token, fetch: (input, init) => undiciFetch(input, { ...(init as object), dispatcher: agent }) as unknown as Promise<Response> });

    out.write(`\n1/4 Enrolling ${count} simulated hosts (fake://qs-node-N) with BMC credentials in secret/${SECRET_NAME}\n`);
    const names = Array.from({ length: count }, (_, i) => `qs-node-${i + 1}`);
    const manifests = [
      {
        kind: 'Secret' as const,
        name: SECRET_NAME,
        index: 1,
        line: 1,
        body: { apiVersion: 'ingot.dev/v1' as const, kind: 'Secret' as const, metadata: { name: SECRET_NAME }, stringData: { username: 'admin', password: randomBytes(12).toString('base64url') } },
      },
      ...names.map((name, i) => ({
        kind: 'Host' as const,
        name,
        index: i + 2,
        line: 1,
        body: {
          apiVersion: 'ingot.dev/v1',
          kind: 'Host',
          metadata: { name, labels: { 'ingot.dev/quickstart': 'true' } },
          spec: { bmc: { address: `fake://${name}`, credentialsName: SECRET_NAME }, online: false },
        } satisfies HostInput,
      })),
    ];
    // On a reused installation the secret keeps its old value: a new one would make the hosts re-verify credentials.
    const existingSecret = await client.secrets.get(SECRET_NAME).catch(() => undefined);
    const results = await applyManifests(client, existingSecret ? manifests.slice(1) : manifests, (r) => out.write(`  ${r.kind.toLowerCase()}/${r.name} ${r.outcome}\n`));
    void results;

    const already = await provisionedHosts(client, names);
    const toInspect = names.filter((n) => !already.has(n));
    if (toInspect.length > 0) {
      out.write(`\n2/4 Registering and inspecting: waiting for ${toInspect.length === count ? 'every host' : toInspect.join(', ')} to become available\n`);
      await waitForHosts(client, toInspect, 'available', { timeout: opts.timeout }, out);
    } else {
      out.write('\n2/4 Every host was provisioned in an earlier run: nothing to inspect\n');
    }

    out.write(`\n3/4 Provisioning ${IMAGE_URL} (sha256 ${IMAGE_CHECKSUM.slice(0, 12)}…) onto each host\n`);
    for (const name of names) {
      await client.hosts.patch(name, { spec: { online: true, image: { url: IMAGE_URL, checksum: IMAGE_CHECKSUM, checksumType: 'sha256', format: 'qcow2' } } });
    }
    await waitForHosts(client, names, 'provisioned', { timeout: opts.timeout }, out);

    out.write(`\n4/4 Done in ${formatElapsed(Date.now() - started)}. Your hosts:\n\n`);
    const hosts = await client.hosts.listAll({ labelSelector: 'ingot.dev/quickstart=true' });
    out.write(hostsTable(hosts));
    out.write('\nTry the CLI against it:\n');
    out.write(`  export INGOT_SERVER=${server.apiUrl} INGOT_TOKEN=${token}\n`);
    out.write('  ingot host list\n');
    out.write(`  ingot host show ${names[0]}\n`);
    out.write(`  ingot host events ${names[0]}\n`);
    out.write(`  ingot host deprovision ${names[0]} --wait available\n`);

    if (opts.keepRunning) {
      out.write(`\nThe server keeps running (data in ${dataDir}); press Ctrl-C to stop it.\n`);
      await new Promise<void>(() => undefined); // until a signal ends the process
    } else {
      out.write('\nThe server stops now; run `ingot quickstart --keep-running` to keep it up and use the commands above.\n');
    }
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    if (!opts.keepRunning) await close();
  }
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
