// `ingot server`: the process wiring. Opens the store (running migrations), loads or creates
// the secret key, makes the first platform-admin token on first start, starts the public and
// agent listeners and the conductor according to the role, and closes all of it on close().
// Signal handling is the CLI's job; this module never touches process-wide state.
import { randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { LevelWithSilent, Logger } from 'pino';
import { createConductor, type Conductor, type ConductorOptions } from '../conductor/conductor.js';
import { createAgentQueue } from '../conductor/agent-queue.js';
import { createSecretCredentialsResolver } from '../conductor/credentials.js';
import { FakeFleet, type FakeFleetDelays } from '../drivers/fake/fake-fleet.js';
import { createRedfishDriver } from '../drivers/redfish/redfish-driver.js';
import { createDriverRegistry } from '../drivers/registry.js';
import { openStore } from '../store/open-store.js';
import { SecretBox } from '../store/secret-box.js';
import { readSecretValues } from '../store/secret-reader.js';
import type { Store } from '../store/store.js';
import { currentRamdisk } from '../boot/ramdisk-store.js';
import { buildAgentServer } from './agent-server.js';
import { ImageCache } from '../images/image-cache.js';
import type { ImageProxy } from '../conductor/handlers/types.js';
import { buildApiServer } from './api-server.js';
import type { ApprovalConfig } from './approvals/approval-gate.js';
import { createPolicy, replacePolicyRules, type Policy } from './auth/policy.js';
import { loadPolicyFile } from './auth/policy-file.js';
import { createAuditWriter, type AuditWriter } from './audit/audit-writer.js';
import type { AlertRule } from './audit/alert-rules.js';
import type { AuditSink } from './audit/sinks/audit-sink.js';
import { createJsonlFileSink } from './audit/sinks/jsonl-file-sink.js';
import { createWebhookSink } from './audit/sinks/webhook-sink.js';
import type { RateLimitConfig } from './limits/rate-limit.js';
import type { BodyBounds } from './body-scan-error.js';
import { generateToken, hashToken, isWellFormedToken, TOKEN_PATTERN } from './auth/tokens.js';
import { createLogger } from './logger.js';
import { claimConfigDriveSource, createClaimController } from '../tenancy/claim-controller.js';
import { createClaimSetController } from '../tenancy/claim-set-controller.js';
import { createOsImageVerifier } from '../tenancy/os-image-verifier.js';
import type { ControllerLog } from '../tenancy/reconcile-loop.js';
import { loadApiHttpsOptions, type ApiTlsConfig } from './tls/api-tls.js';
import { createOidcVerifier, type OidcConfig } from './auth/oidc.js';

export const DEFAULT_LISTEN = '127.0.0.1:7385';
export const DEFAULT_AGENT_LISTEN = '127.0.0.1:7386';
export const BOOTSTRAP_SETTING = 'bootstrap.done';
export type ServerRole = 'all' | 'api' | 'conductor';

export interface RunServerOptions {
  /** Where the SQLite database, the secret key and the fake fleet's state live (created 0700). */
  dataDir: string;
  /** SQLite file path or postgres:// URL; default DATA_DIR/ingot.db. */
  database?: string;
  /** HOST:PORT ([V6]:PORT for IPv6) of the public API; port 0 picks a free one. Default 127.0.0.1:7385. */
  listen?: string;
  /** HOST:PORT of the agent API (the provisioning network). Default 127.0.0.1:7386. */
  agentListen?: string;
  /** all (default): API + conductor; api: listeners only; conductor: reconcile only, no listeners. */
  role?: ServerRole;
  /** The secret key file; default DATA_DIR/secrets.key (created 0600 on first start). */
  keyFile?: string;
  /** The first admin token, in `ingot_…` form; default the INGOT_BOOTSTRAP_TOKEN env var, else generated. */
  bootstrapToken?: string;
  /** The simulated fleet for fake:// hosts; `false` disables fake:// hosts. */
  /** `statePath: false` keeps the simulated fleet in memory only (benchmarks: its JSON file is not Ingot's cost). */
  fake?: false | { delays?: FakeFleetDelays; statePath?: string | false };
  /** Enables redfish:// hosts (default true). */
  redfish?: boolean;
  /**
   * The on-host agent for non-fake hosts (inspection in-band, deploy, cleaning), through the
   * agent API. Default on. `false` leaves those hosts without an agent: inspection is then
   * out-of-band through the BMC and deploys and cleaning fail with a clear error.
   * `apiUrl` is the agent API as hosts reach it (default: the bound agent listener; required
   * for role conductor, which has no listener of its own).
   */
  agent?: false | { apiUrl?: string; caPem?: string; tokenTtlMs?: number; agentLostAfterMs?: number; allowMd5?: boolean; requireHttps?: boolean };
  /**
   * Where images come from (DESIGN.md "Images"). `direct` (default): agents download
   * spec.image.url themselves. `local`: the conductor downloads each image once into
   * DATA_DIR/images, verifies and inspects it, and agents fetch it from the agent listener
   * (which must share DATA_DIR with the conductor). `caPem`/`caBundleFile`: CA trusted for
   * https:// image URLs by the conductor's cache. `requireHttps`: refuse http:// image URLs
   * (in the cache and, unless agent.requireHttps says otherwise, on the agent).
   */
  images?: { downloadSource?: 'direct' | 'local'; cacheMaxBytes?: number; caPem?: string; caBundleFile?: string; requireHttps?: boolean };
  conductor?: Partial<Omit<ConductorOptions, 'store' | 'drivers' | 'credentials'>>;
  /** Claim, claim-set and OS-image controllers: how often they look without a nudge (default 1 s). */
  tenancy?: { pollMs?: number };
  policy?: Policy;
  /** A pino logger, or a level for the default one (info). */
  log?: Logger | LevelWithSilent;
  /** Request body limit in bytes (default 1 MiB). */
  bodyLimit?: number;
  /** A YAML policy override file (policy-file.ts); reloaded by RunningServer.reloadPolicy (SIGHUP). */
  policyFile?: string;
  /** Audit trail copies and alerts; the database always holds the trail. */
  audit?: {
    /** JSONL copy of every event; default DATA_DIR/audit.jsonl; `false` for none. */
    file?: string | false;
    webhook?: { url: string; secret?: string };
    alertRules?: AlertRule[];
  };
  /** Public API request limits (defaults in limits/rate-limit.ts); `false` disables them. */
  rateLimits?: RateLimitConfig | false;
  /** Agent listener request limits (DEFAULT_AGENT_RATE_LIMITS); `false` disables them. */
  agentRateLimits?: RateLimitConfig | false;
  /** Depth, value and alias bounds of request bodies on both listeners (DEFAULT_BODY_BOUNDS). */
  bodyBounds?: Partial<BodyBounds>;
  /** Longest lifetime of API tokens created through the API (seconds); default 90 days. */
  maxTokenLifetimeSeconds?: number;
  /** Two-person rule (approvals/approval-gate.ts): defaults 10 destructive changes per 300 s, approvals live 3600 s; `false` turns it off. */
  approvals?: Partial<ApprovalConfig> | false;
  /** HTTPS for the public API (and mutual TLS with clientCaFile); plain HTTP without. See docs/security.md. */
  tls?: ApiTlsConfig;
  /** Accept OIDC bearer JWTs on the public API besides Ingot tokens. See docs/security.md. */
  oidc?: OidcConfig;
}

export interface RunningServer {
  /** `http://HOST:PORT` of the public API as bound ('' for role conductor). */
  apiUrl: string;
  /** `http://HOST:PORT` of the agent API as bound ('' for role conductor). */
  agentUrl: string;
  /** The first admin token, set only on the first start of an installation and only when generated here (not when supplied). */
  bootstrapToken?: string;
  /** tls.dev: the generated CA certificate clients must trust (INGOT_CA_FILE). */
  tlsCaFile?: string;
  store: Store;
  audit: AuditWriter;
  /**
   * Re-reads opts.policyFile and swaps the rules in (SIGHUP). A bad file is refused, logged,
   * and the running policy kept: resolves { ok: false, error } rather than throwing.
   */
  reloadPolicy(): Promise<{ ok: true } | { ok: false; error: string }>;
  /** Stops the conductor (waiting for running steps), then the listeners, then the store. Safe to call twice. */
  close(): Promise<void>;
}

/** Default bound of the conductor's image cache (images.cacheMaxBytes). */
export const DEFAULT_IMAGE_CACHE_BYTES = 20 * 1024 ** 3;

/** Image URLs may carry credentials (user:pass@, signed query strings): log origin and path only. */
function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '(invalid URL)';
  }
}

function readCaBundle(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`images.caBundleFile ${path} cannot be read (${(err as Error).message}); give the PEM file of the CA that issued the image server's certificate`);
  }
  if (text.length > 1024 * 1024 || !text.includes('-----BEGIN CERTIFICATE-----')) {
    throw new Error(`images.caBundleFile ${path} is not a PEM CA bundle (no "BEGIN CERTIFICATE" block, or larger than 1 MiB)`);
  }
  return text;
}

/** The conductor's side of the cache: verified images are served at the agent listener's image route. */
export function imageProxyOf(cache: ImageCache, agentApiUrl: string): ImageProxy {
  const base = agentApiUrl.replace(/\/+$/, '');
  return {
    async prepare(image) {
      const status = await cache.ensure(image);
      if (status.state === 'ready') return { state: 'ready', url: `${base}/agent/v1/images/${status.key.slice(status.key.indexOf('-') + 1)}` };
      if (status.state === 'failed') return { state: 'failed', message: `${status.reason}: ${status.message}` };
      const percent = status.expectedBytes ? Math.min(99, Math.floor((100 * status.bytesReceived) / status.expectedBytes)) : 0;
      return { state: 'downloading', percent };
    },
  };
}

/** Parses HOST:PORT or [V6]:PORT. */
export function parseListenAddress(value: string, option: string): { host: string; port: number } {
  const match = /^\[([0-9a-fA-F:.]+)\]:([0-9]{1,5})$/.exec(value) ?? /^([^:[\]]+):([0-9]{1,5})$/.exec(value);
  const port = match ? Number(match[2]) : NaN;
  if (!match || port > 65535) {
    throw new Error(`${option} "${value}" is not HOST:PORT (e.g. 127.0.0.1:7385, 0.0.0.0:7385, [::1]:7385; port 0 picks a free port)`);
  }
  return { host: match[1]!, port };
}

function urlOf(app: FastifyInstance, scheme: 'http' | 'https' = 'http'): string {
  const address = app.server.address();
  if (!address || typeof address === 'string') throw new Error('listener has no TCP address');
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `${scheme}://${host}:${address.port}`;
}

function prepareDataDir(dataDir: string, log: Logger): string {
  const dir = resolve(dataDir);
  if (!existsSync(dir)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
  } else if ((statSync(dir).mode & 0o077) !== 0) {
    log.warn({ dataDir: dir }, `data directory ${dir} is accessible to group or others; run \`chmod 700 ${dir}\``);
  }
  return dir;
}

/**
 * On the first start of an installation (no token exists and the bootstrap setting is unset)
 * creates a platform-admin token and stores only its hash. Returns the token when it was
 * generated here, so the caller prints it once; a supplied token is not echoed back.
 */
export async function bootstrapAdminToken(store: Store, supplied: string | undefined): Promise<{ created: boolean; token?: string }> {
  if (supplied !== undefined && !(isWellFormedToken(supplied) && TOKEN_PATTERN.test(supplied))) {
    throw new Error('the bootstrap token (INGOT_BOOTSTRAP_TOKEN) must be "ingot_" followed by 43 base64url characters, as `ingot token generate` prints; unset it to have one generated');
  }
  return store.transaction(async (tx) => {
    if ((await tx.getSetting(BOOTSTRAP_SETTING)) !== undefined) return { created: false };
    if ((await tx.listTokens()).length > 0) {
      await tx.setSetting(BOOTSTRAP_SETTING, new Date().toISOString());
      return { created: false };
    }
    const token = supplied ?? generateToken();
    await tx.createToken({
      id: randomUUID(),
      hash: hashToken(token),
      description: 'bootstrap platform-admin token (created on first start)',
      roles: ['platform-admin'],
      project: '',
      type: 'api',
      hostUid: '',
      expiresAt: 0,
      createdAt: new Date().toISOString(),
    });
    await tx.setSetting(BOOTSTRAP_SETTING, new Date().toISOString());
    return supplied === undefined ? { created: true, token } : { created: true };
  });
}

export async function runServer(opts: RunServerOptions): Promise<RunningServer> {
  const log = typeof opts.log === 'object' ? opts.log : createLogger({ level: opts.log ?? 'info' });
  const role = opts.role ?? 'all';
  if (!['all', 'api', 'conductor'].includes(role)) throw new Error(`role "${role}" is not one of all, api, conductor`);
  const listen = parseListenAddress(opts.listen ?? DEFAULT_LISTEN, 'listen');
  const agentListen = parseListenAddress(opts.agentListen ?? DEFAULT_AGENT_LISTEN, 'agent listen');
  const dataDir = prepareDataDir(opts.dataDir, log);
  const basePolicy = opts.policy ?? createPolicy();
  const policy = opts.policyFile ? await loadPolicyFile(opts.policyFile, { allowMd5Checksums: basePolicy.allowMd5Checksums }) : basePolicy;
  if (opts.policyFile) log.info({ policyFile: opts.policyFile }, 'policy file loaded');

  const cleanups: Array<() => Promise<void>> = [];
  async function closeAll(): Promise<void> {
    // Reverse order of start: conductor, listeners, drivers, store.
    while (cleanups.length > 0) {
      const cleanup = cleanups.pop()!;
      try {
        await cleanup();
      } catch (err) {
        log.error({ err }, 'error while shutting down');
      }
    }
  }

  try {
    const store = await openStore({ database: opts.database ?? join(dataDir, 'ingot.db'), log: (message) => log.info(message) });
    cleanups.push(() => store.close());
    const secretBox = await SecretBox.fromKeyFile(opts.keyFile ?? join(dataDir, 'secrets.key'));

    const sinks: AuditSink[] = [];
    const auditLog = (message: string) => log.warn({ component: 'audit' }, message);
    if (opts.audit?.file !== false) sinks.push(createJsonlFileSink({ path: opts.audit?.file ?? join(dataDir, 'audit.jsonl'), log: auditLog }));
    if (opts.audit?.webhook) sinks.push(createWebhookSink({ url: opts.audit.webhook.url, ...(opts.audit.webhook.secret ? { secret: opts.audit.webhook.secret } : {}), log: auditLog }));
    const audit = createAuditWriter({ store, sinks, alertRules: opts.audit?.alertRules ?? [], log: auditLog });
    cleanups.push(() => audit.close());

    const bootstrap = await bootstrapAdminToken(store, opts.bootstrapToken ?? process.env.INGOT_BOOTSTRAP_TOKEN);
    if (bootstrap.created) log.info('first start: created the bootstrap platform-admin token (stored as a hash only)');

    const imagesLocal = opts.images?.downloadSource === 'local';
    const imageCacheDir = join(dataDir, 'images');
    let apiUrl = '';
    let tlsCaFile: string | undefined;
    let agentUrl = '';
    if (role !== 'conductor') {
      const httpsOptions = opts.tls ? loadApiHttpsOptions(opts.tls, dataDir) : undefined;
      if (httpsOptions?.devCaFile) {
        tlsCaFile = httpsOptions.devCaFile;
        log.warn(
          { caFile: tlsCaFile },
          `WARNING: TLS dev mode: the public API uses a self-signed development CA generated in ${join(dataDir, 'tls')}; ` +
            `it is for development only, never production. Clients must trust ${tlsCaFile} (export INGOT_CA_FILE=${tlsCaFile})`,
        );
      }
      const oidc = opts.oidc ? createOidcVerifier(opts.oidc, { onKeySetError: (message) => log.warn({ component: 'oidc' }, message) }) : undefined;
      if (opts.oidc) log.info({ issuer: opts.oidc.issuer, audience: opts.oidc.audience }, 'OIDC bearer tokens accepted');
      const api = buildApiServer({
        store,
        secretBox,
        policy,
        log,
        audit,
        ...(opts.bodyLimit ? { bodyLimit: opts.bodyLimit } : {}),
        ...(opts.rateLimits !== undefined ? { rateLimits: opts.rateLimits } : {}),
        ...(opts.bodyBounds ? { bodyBounds: opts.bodyBounds } : {}),
        ...(opts.maxTokenLifetimeSeconds ? { maxTokenLifetimeSeconds: opts.maxTokenLifetimeSeconds } : {}),
        ...(httpsOptions ? { https: httpsOptions.https } : {}),
        ...(oidc ? { oidc } : {}),
        ...(opts.approvals !== undefined ? { approvals: opts.approvals } : {}),
      });
      cleanups.push(() => api.close());
      await api.listen(listen);
      apiUrl = urlOf(api, httpsOptions ? 'https' : 'http');
      const agent = buildAgentServer({
        store,
        policy,
        secretBox,
        audit,
        log: log.child({ listener: 'agent' }),
        ...(opts.bodyLimit ? { bodyLimit: opts.bodyLimit } : {}),
        ...(opts.bodyBounds ? { bodyBounds: opts.bodyBounds } : {}),
        ...(opts.agentRateLimits !== undefined ? { rateLimits: opts.agentRateLimits } : {}),
        ...(imagesLocal ? { imageCacheDir } : {}),
        ramdisk: () => currentRamdisk(dataDir),
      });
      cleanups.push(() => agent.close());
      const ramdisk = currentRamdisk(dataDir);
      if (ramdisk) log.info({ ramdisk: ramdisk.dir, digest: ramdisk.manifest.digest }, 'boot media boot the agent ramdisk');
      else log.info({ dataDir }, `no agent ramdisk in ${dataDir}: boot media carry only the agent's configuration and boot nothing (enough for simulated lab systems); run \`ingot ramdisk build --data-dir ${dataDir}\` before enrolling real servers or lab VMs`);
      await agent.listen(agentListen);
      agentUrl = urlOf(agent);
      log.info({ apiUrl, agentUrl }, 'listening');
    }

    let conductor: Conductor | undefined;
    if (role !== 'api') {
      const fake = opts.fake === false ? undefined : new FakeFleet({ ...(opts.fake?.delays ? { delays: opts.fake.delays } : {}), ...(opts.fake?.statePath === false ? {} : { statePath: opts.fake?.statePath ?? join(dataDir, 'fake-fleet.json') }) });
      const redfish = opts.redfish === false ? undefined : createRedfishDriver();
      if (redfish) cleanups.push(() => redfish.close());
      // The agent queue needs the agent API's URL as hosts reach it, so it is made after the
      // agent listener is bound (port 0 picks the port only then).
      const agentOpts = opts.agent === false ? undefined : (opts.agent ?? {});
      const agentApiUrl = agentOpts?.apiUrl ?? agentUrl;
      if (agentOpts && !agentApiUrl) log.warn('no agent API URL (role conductor without agent.apiUrl): non-fake hosts get no agent; inspection is out-of-band and deploys fail');
      const agent =
        agentOpts && agentApiUrl
          ? createAgentQueue({
              store,
              box: secretBox,
              agentApiUrl,
              ...(agentOpts.caPem ? { caPem: agentOpts.caPem } : {}),
              ...(agentOpts.tokenTtlMs !== undefined ? { tokenTtlMs: agentOpts.tokenTtlMs } : {}),
              ...(agentOpts.agentLostAfterMs !== undefined ? { agentLostAfterMs: agentOpts.agentLostAfterMs } : {}),
              ...(agentOpts.allowMd5 !== undefined ? { allowMd5: agentOpts.allowMd5 } : {}),
              ...((agentOpts.requireHttps ?? opts.images?.requireHttps) !== undefined ? { requireHttps: (agentOpts.requireHttps ?? opts.images?.requireHttps)! } : {}),
            })
          : undefined;
      let images: ImageProxy | undefined;
      if (imagesLocal) {
        if (!agentApiUrl) throw new Error('images.downloadSource local needs the agent API URL (agent.apiUrl for role conductor): agents fetch images from it');
        const caPem = opts.images?.caPem ?? (opts.images?.caBundleFile ? readCaBundle(opts.images.caBundleFile) : undefined);
        const cache = new ImageCache({
          dir: imageCacheDir,
          maxTotalBytes: opts.images?.cacheMaxBytes ?? DEFAULT_IMAGE_CACHE_BYTES,
          ...(caPem ? { caPem } : {}),
          ...(opts.images?.requireHttps !== undefined ? { requireHttps: opts.images.requireHttps } : {}),
          ...(agentOpts?.allowMd5 !== undefined ? { allowMd5: agentOpts.allowMd5 } : {}),
          onEvent: (e) => (e.kind === 'failed' ? log.warn : log.info).call(log, { image: e.key, ...(e.url ? { url: redactUrl(e.url) } : {}), ...(e.message ? { reason: e.message } : {}) }, `image cache: ${e.kind}`),
        });
        cleanups.push(() => cache.close());
        images = imageProxyOf(cache, agentApiUrl);
      }
      const drivers = createDriverRegistry({ ...(fake ? { fake } : {}), ...(redfish ? { redfish } : {}), ...(agent ? { agent } : {}) });
      const credentials = createSecretCredentialsResolver((ref) => readSecretValues(store, secretBox, ref));
      const conductorLog = log.child({ component: 'conductor' });
      // Tenancy runs beside the conductor: claims and claim sets become host bindings and host
      // specs, which the conductor then acts on; claims supply their hosts' config drives.
      const tenancyLog = (component: string): ControllerLog => {
        const child = log.child({ component });
        return { info: (m, f) => child.info(f ?? {}, m), warn: (m, f) => child.warn(f ?? {}, m), error: (m, f) => child.error(f ?? {}, m) };
      };
      const tenancyPoll = opts.tenancy?.pollMs !== undefined ? { pollMs: opts.tenancy.pollMs } : {};
      const controllers = [
        createClaimController({ store, secretBox, log: tenancyLog('claims'), ...tenancyPoll }),
        createClaimSetController({ store, secretBox, log: tenancyLog('claimsets'), ...tenancyPoll }),
      ];
      const imageCa = opts.images?.caPem ?? (opts.images?.caBundleFile ? readCaBundle(opts.images.caBundleFile) : undefined);
      const verifier = createOsImageVerifier({
        store,
        workDir: join(dataDir, 'osimage-verify'),
        log: tenancyLog('osimage-verifier'),
        ...tenancyPoll,
        // Published images are fetched like deploys fetch them: http(s) only, the same CA and https rule.
        fetchOptions: { allowFileUrls: false, ...(imageCa ? { caPem: imageCa } : {}), ...(opts.images?.requireHttps !== undefined ? { requireHttps: opts.images.requireHttps } : {}) },
      });
      conductor = createConductor({
        log: {
          info: (message, fields) => conductorLog.info(fields ?? {}, message),
          warn: (message, fields) => conductorLog.warn(fields ?? {}, message),
          error: (message, fields) => conductorLog.error(fields ?? {}, message),
        },
        // Every secret the conductor uses is audited with the host it was used for: names,
        // version and purpose, never the value (DESIGN.md "Security, by design").
        onSecretUse: (use) => {
          audit
            .record({
              actor: 'system:conductor',
              roles: [],
              project: '',
              action: 'secret:use',
              target: { kind: 'Secret', project: use.secretProject ?? '', name: use.secretName },
              outcome: 'succeeded',
              reason: `version ${use.secretVersion} used as ${use.purpose} for host ${use.hostName} (uid ${use.hostUid})${use.hostState ? ` while ${use.hostState}` : ''}`,
            })
            .catch((err: unknown) => conductorLog.error({ err: String(err), secret: use.secretName, host: use.hostName }, 'could not audit a secret use'));
        },
        configDriveSource: claimConfigDriveSource(store, secretBox),
        ...opts.conductor,
        ...(images ? { images } : {}),
        store,
        drivers,
        credentials,
      });
      const started = conductor;
      cleanups.push(() => started.stop());
      await conductor.start();
      for (const controller of controllers) {
        controller.start();
        cleanups.push(() => controller.stop());
      }
      verifier.start();
      cleanups.push(() => verifier.stop());
    }

    let closing: Promise<void> | undefined;
    return {
      apiUrl,
      agentUrl,
      ...(bootstrap.token ? { bootstrapToken: bootstrap.token } : {}),
      ...(tlsCaFile ? { tlsCaFile } : {}),
      store,
      audit,
      async reloadPolicy() {
        if (!opts.policyFile) return { ok: false, error: 'no policy file was given (--policy-file); nothing to reload' };
        try {
          replacePolicyRules(policy, await loadPolicyFile(opts.policyFile));
          log.info({ policyFile: opts.policyFile }, 'policy file reloaded');
          return { ok: true };
        } catch (err) {
          const error = (err as Error).message;
          log.error({ policyFile: opts.policyFile, error }, 'policy file refused; the running policy is unchanged');
          return { ok: false, error };
        }
      },
      close: () => (closing ??= closeAll()),
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
