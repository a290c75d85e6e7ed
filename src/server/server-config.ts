// The server's configuration file (`ingot server --config FILE`): tunables an operator sets
// once per installation. Validated strictly so a typo is an error at start, not a silent
// default. Flags on the command line win over the file.
import { readFile } from 'node:fs/promises';
import { Type, type Static } from 'typebox';
import { Compile } from 'typebox/compile';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { IngotError } from '../model/errors.js';
import { INSPECTION_MODES } from '../model/host.js';
import { parseAlertRules, validateAlertRules, type AlertRule } from './audit/alert-rules.js';
import { createPolicy } from './auth/policy.js';
import { validateOidcConfig } from './auth/oidc.js';
import type { RateLimitConfig } from './limits/rate-limit.js';
import type { RunServerOptions } from './run-server.js';

/** Config files are small; refuse anything that is clearly not one. */
const MAX_CONFIG_BYTES = 256 * 1024;

const Millis = (description: string) => Type.Integer({ minimum: 1, maximum: 7 * 24 * 3600 * 1000, description });
const DelayRange = Type.Tuple([Type.Integer({ minimum: 0, maximum: 3_600_000 }), Type.Integer({ minimum: 0, maximum: 3_600_000 })], {
  description: '[min, max] in milliseconds',
});

const Bucket = Type.Object(
  {
    burst: Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'requests allowed at once after idling' }),
    perSecond: Type.Number({ exclusiveMinimum: 0, maximum: 1_000_000, description: 'sustained requests per second' }),
  },
  { additionalProperties: false },
);
const ListenerLimits = Type.Object(
  {
    authFailures: Type.Optional(
      Type.Object(
        {
          maxFailures: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'failures per known token, or per address for unknown tokens, in a window; default 10' })),
          windowMs: Type.Optional(Millis('the counting window; default 60000')),
          maxUnknownTotal: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000_000, description: 'failures with unknown tokens from all addresses together in a window; default 300' })),
        },
        { additionalProperties: false },
      ),
    ),
    requests: Type.Optional(
      Type.Object(
        {
          default: Type.Optional(Bucket),
          perRole: Type.Optional(Type.Record(Type.String({ minLength: 1, maxLength: 64 }), Bucket, { maxProperties: 64 })),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

export const ServerConfigSchema = Type.Object(
  {
    listen: Type.Optional(Type.String({ maxLength: 256 })),
    agentListen: Type.Optional(Type.String({ maxLength: 256 })),
    agentApiUrl: Type.Optional(Type.String({ minLength: 1, maxLength: 2048, pattern: '^https?://', description: 'the agent API as hosts reach it (the boot medium carries it); default the bound agent listener' })),
    database: Type.Optional(Type.String({ maxLength: 4096 })),
    keyFile: Type.Optional(Type.String({ maxLength: 4096 })),
    approvals: Type.Optional(
      Type.Object(
        {
          destructiveThreshold: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000, description: 'destructive host changes allowed per window before each needs an approval; default 10' })),
          windowSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 86_400, description: 'the counting window; default 300' })),
          ttlSeconds: Type.Optional(Type.Integer({ minimum: 60, maximum: 30 * 86_400, description: 'how long an approval waits for a decision; default 3600' })),
        },
        { additionalProperties: false },
      ),
    ),
    limits: Type.Optional(
      Type.Object(
        {
          body: Type.Optional(
            Type.Object(
              {
                maxBytes: Type.Optional(Type.Integer({ minimum: 1024, maximum: 64 * 1024 * 1024, description: 'largest request body; default 1 MiB (agent listener: at most 256 KiB)' })),
                maxDepth: Type.Optional(Type.Integer({ minimum: 8, maximum: 256, description: 'deepest nesting in a body; default 64' })),
                maxNodes: Type.Optional(Type.Integer({ minimum: 100, maximum: 10_000_000, description: 'most values in a body; default 100000' })),
                maxAliases: Type.Optional(Type.Integer({ minimum: 0, maximum: 1000, description: 'most YAML aliases in a body; default 20' })),
              },
              { additionalProperties: false },
            ),
          ),
          api: Type.Optional(ListenerLimits),
          agent: Type.Optional(ListenerLimits),
        },
        { additionalProperties: false },
      ),
    ),
    conductor: Type.Optional(
      Type.Object(
        {
          workers: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024 })),
          leaseTtlMs: Type.Optional(Millis('how long a conductor holds a host without renewing')),
          resyncMs: Type.Optional(Millis('full relist period')),
          pollMs: Type.Optional(Millis('change-feed poll period (writes by other processes)')),
          backoff: Type.Optional(
            Type.Object({ baseMs: Type.Optional(Millis('first retry delay')), capMs: Type.Optional(Millis('longest retry delay')) }, { additionalProperties: false }),
          ),
          powerPollMs: Type.Optional(Millis('how often power is read back after a change')),
          softPowerOffTimeoutMs: Type.Optional(Millis('how long a soft power-off may take before it is escalated once to a hard one')),
          powerChangeTimeoutMs: Type.Optional(Millis('how long a hard power change may take before it is a power-management error')),
          agentPollMs: Type.Optional(Millis('how often a running agent operation is polled')),
          agentBootTimeoutMs: Type.Optional(Millis('how long to wait for a booted agent')),
          agentLostAfterMs: Type.Optional(
            Type.Integer({
              minimum: 60_000,
              maximum: 24 * 3600 * 1000,
              description: 'an agent silent this long (no heartbeat, poll or report; it heartbeats every 30 s) is lost and its inspection, deploy or cleaning fails; default 300000 (5 min)',
            }),
          ),
          idleRecheckMs: Type.Optional(Millis('how often resting hosts are compared with their spec')),
          defaultInspection: Type.Optional(Type.Enum(INSPECTION_MODES, { description: 'how hosts without spec.inspection are inspected: agent (default), bmc or disabled' })),
          inspectionAttempts: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'failed inspections retried before the host stays in error until its spec changes; default 5' })),
          maxConcurrentDeploys: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000, description: 'deploys running at once across all conductors; default 250' })),
          maxConcurrentCleanings: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000, description: 'cleanings running at once across all conductors; default 50' })),
          slotRecheckMs: Type.Optional(Millis('how often a host waiting for a deploy or cleaning slot looks again')),
        },
        { additionalProperties: false },
      ),
    ),
    cleaning: Type.Optional(
      Type.Object(
        {
          resetBios: Type.Optional(Type.Boolean({ description: 'reset BIOS settings to the defaults when cleaning; default true' })),
          approvedFirmware: Type.Optional(
            Type.Record(Type.String({ minLength: 1, maxLength: 256 }), Type.Array(Type.String({ minLength: 1, maxLength: 128 }), { minItems: 1, maxItems: 64 }), {
              maxProperties: 256,
              description: 'firmware component id or name -> approved versions',
            }),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    images: Type.Optional(
      Type.Object(
        {
          allowMd5Checksums: Type.Optional(Type.Boolean()),
          downloadSource: Type.Optional(Type.Enum(['direct', 'local'], { description: 'direct: agents download spec.image.url; local: through the conductor\'s verified cache' })),
          cacheMaxBytes: Type.Optional(Type.Integer({ minimum: 1024 * 1024, maximum: 2 ** 50, description: 'bound of the conductor\'s image cache (LRU eviction)' })),
          caBundleFile: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, description: 'PEM CA bundle trusted for https:// image URLs by the conductor\'s cache' })),
          requireHttps: Type.Optional(Type.Boolean({ description: 'refuse http:// image URLs (default false: the checksum guards integrity)' })),
        },
        { additionalProperties: false },
      ),
    ),
    tls: Type.Optional(
      Type.Object(
        {
          certFile: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, description: 'PEM server certificate (chain) of the public API' })),
          keyFile: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, description: 'PEM private key of that certificate' })),
          clientCaFile: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, description: 'PEM CA bundle: require client certificates issued by it (mutual TLS)' })),
          dev: Type.Optional(Type.Boolean({ description: 'generate a self-signed development CA and certificate in DATA_DIR/tls (never in production)' })),
        },
        { additionalProperties: false },
      ),
    ),
    oidc: Type.Optional(
      Type.Object(
        {
          issuer: Type.String({ minLength: 1, maxLength: 2048, description: 'expected iss claim' }),
          audience: Type.String({ minLength: 1, maxLength: 2048, description: 'expected aud claim (the client id)' }),
          jwksFile: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, description: "the issuer's JWKS document on disk" })),
          jwksUrl: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, description: "the issuer's JWKS endpoint (https://)" })),
          rolesClaim: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'claim holding groups; default groups' })),
          roleMap: Type.Record(Type.String({ minLength: 1, maxLength: 512 }), Type.String({ minLength: 1, maxLength: 64 }), {
            maxProperties: 1024,
            description: 'claim value (group) -> Ingot role',
          }),
          projectClaim: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
          clockToleranceSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 600 })),
        },
        { additionalProperties: false },
      ),
    ),
    audit: Type.Optional(
      Type.Object(
        {
          file: Type.Optional(Type.Union([Type.String({ minLength: 1, maxLength: 4096 }), Type.Literal(false)], { description: 'JSON-lines copy of the trail; default DATA_DIR/audit.jsonl; false for none' })),
          webhook: Type.Optional(
            Type.Object(
              {
                url: Type.String({ minLength: 1, maxLength: 4096, description: 'http:// or https:// endpoint receiving events and alerts' }),
                // A file, never the value itself: config files are copied around and shown.
                secretFile: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, description: 'file holding the HMAC signing secret' })),
              },
              { additionalProperties: false },
            ),
          ),
          // Validated by alert-rules.ts, whose errors name the rule index and field.
          alertRules: Type.Optional(Type.Array(Type.Unknown(), { maxItems: 500, description: 'alert rules (docs/audit.md)' })),
          alertRulesFile: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, description: 'a YAML file of alert rules ({rules: [...]})' })),
        },
        { additionalProperties: false },
      ),
    ),
    fake: Type.Optional(
      Type.Object(
        {
          enabled: Type.Optional(Type.Boolean({ description: 'serve fake:// hosts (the simulated fleet); default true' })),
          delays: Type.Optional(
            Type.Object(
              {
                powerMs: Type.Optional(DelayRange),
                inspectMs: Type.Optional(DelayRange),
                deployMs: Type.Optional(DelayRange),
                cleanMs: Type.Optional(DelayRange),
                callMs: Type.Optional(DelayRange),
              },
              { additionalProperties: false },
            ),
          ),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
type ServerConfigDocument = Static<typeof ServerConfigSchema>;

/** The `audit:` section once validated; `secret` and rules from files are filled by loadServerConfig. */
export interface AuditConfig {
  file?: string | false;
  webhook?: { url: string; secretFile?: string; /** read from secretFile by loadServerConfig; never accepted inline */ secret?: string };
  alertRules?: AlertRule[];
  alertRulesFile?: string;
}
export type ServerConfig = Omit<ServerConfigDocument, 'audit'> & { audit?: AuditConfig };

/** Largest webhook secret file read (a secret is a few dozen bytes). */
const MAX_SECRET_FILE_BYTES = 4096;

const checker = Compile(ServerConfigSchema);

function configError(path: string, message: string): IngotError {
  return new IngotError('INGOT_ERR_VALIDATION', `config file ${path}: ${message}`);
}

/** Parses and validates a config document; errors name the file, the field and what is expected. */
export function parseServerConfig(text: string, path: string): ServerConfig {
  let doc: unknown;
  try {
    doc = parseYaml(text, { maxAliasCount: 10 });
  } catch (err) {
    const where = err instanceof YAMLParseError && err.linePos ? ` at line ${err.linePos[0].line}, column ${err.linePos[0].col}` : '';
    throw configError(path, `not valid YAML${where}: ${(err as Error).message.split('\n')[0]}`);
  }
  if (doc === null || doc === undefined) return {};
  if (!checker.Check(doc)) {
    const first = [...checker.Errors(doc)][0];
    const field = first ? first.instancePath.replace(/^\//, '').replace(/\//g, '.') || '(top level)' : '(top level)';
    // TypeBox reports an unknown property as the property's own path with a `false` schema.
    const unknown = first?.keyword === 'additionalProperties' || first?.message === 'schema is false';
    const keyword = unknown ? 'unknown field; see docs/server-config.md for the fields allowed' : first?.message ?? 'invalid';
    throw configError(path, `${field}: ${keyword}`);
  }
  if (doc.tls && !doc.tls.dev && (!doc.tls.certFile || !doc.tls.keyFile)) throw configError(path, 'tls: give both certFile and keyFile, or dev: true for a generated development certificate');
  if (doc.tls?.dev && (doc.tls.certFile || doc.tls.keyFile)) throw configError(path, 'tls: dev generates its own certificate; remove certFile/keyFile or dev');
  if (doc.oidc) {
    try {
      validateOidcConfig(doc.oidc);
    } catch (err) {
      throw configError(path, (err as Error).message);
    }
  }
  for (const [name, range] of Object.entries(doc.fake?.delays ?? {})) {
    if (range && range[0] > range[1]) throw configError(path, `fake.delays.${name}: [min, max] with min <= max`);
  }
  const { audit, ...rest } = doc;
  if (audit === undefined) return rest;
  if (audit.alertRules !== undefined && audit.alertRulesFile !== undefined) {
    throw configError(path, 'audit: give alert rules inline (alertRules) or in a file (alertRulesFile), not both');
  }
  if (audit.webhook !== undefined && !/^https?:\/\/[^/\s]/i.test(audit.webhook.url)) {
    throw configError(path, 'audit.webhook.url: give an http:// or https:// URL of the receiver');
  }
  const { alertRules, ...auditRest } = audit;
  if (alertRules === undefined) return { ...rest, audit: auditRest };
  const rules = checkAlertRules(() => validateAlertRules({ rules: alertRules }, 'audit.alertRules'), path, (field) => field.replace(/^rules(?=\[|$)/, 'audit.alertRules'));
  return { ...rest, audit: { ...auditRest, alertRules: rules } };
}

/** Runs an alert-rules.ts validation, renaming its fields (`rules[0].match`) to where they are in the config. */
function checkAlertRules(run: () => AlertRule[], path: string, rename: (field: string) => string): AlertRule[] {
  try {
    return run();
  } catch (err) {
    if (!(err instanceof IngotError)) throw err;
    const problems = err.details.length > 0 ? err.details.map((d) => `${rename(d.field)}: ${d.message}`) : [err.message];
    throw configError(path, problems.join('; '));
  }
}

async function readBounded(file: string, maxBytes: number, field: string, configPath: string): Promise<string> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    throw configError(configPath, `${field}: ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  if (bytes.length > maxBytes) throw configError(configPath, `${field}: ${file} is larger than ${maxBytes} bytes; is this the right file?`);
  return bytes.toString('utf8');
}

/**
 * Reads the files the audit section points to: alertRulesFile (validated like inline rules,
 * errors naming `audit.alertRulesFile (FILE) rules[i].field`) and webhook.secretFile. Relative paths
 * are relative to the working directory, like every other path in the file.
 */
export async function resolveAuditFiles(config: ServerConfig, path: string): Promise<ServerConfig> {
  const audit = config.audit;
  if (audit === undefined) return config;
  const next: AuditConfig = { ...audit };
  if (audit.alertRulesFile !== undefined) {
    const file = audit.alertRulesFile;
    const text = await readBounded(file, MAX_CONFIG_BYTES, 'audit.alertRulesFile', path);
    next.alertRules = checkAlertRules(() => parseAlertRules(text, file), path, (field) => `audit.alertRulesFile (${file}) ${field === file ? '' : field}`.trimEnd());
    delete next.alertRulesFile;
  }
  if (audit.webhook?.secretFile !== undefined) {
    const secret = (await readBounded(audit.webhook.secretFile, MAX_SECRET_FILE_BYTES, 'audit.webhook.secretFile', path)).trim();
    if (secret.length < 16) throw configError(path, `audit.webhook.secretFile: ${audit.webhook.secretFile} holds fewer than 16 characters; put a long random secret in it (e.g. \`openssl rand -hex 32\`)`);
    const { secretFile: _file, ...webhook } = audit.webhook;
    next.webhook = { ...webhook, secret };
  }
  return { ...config, audit: next };
}

export async function loadServerConfig(path: string): Promise<ServerConfig> {
  let text: string;
  try {
    const bytes = await readFile(path);
    if (bytes.length > MAX_CONFIG_BYTES) throw configError(path, `larger than ${MAX_CONFIG_BYTES} bytes; is this the right file?`);
    text = bytes.toString('utf8');
  } catch (err) {
    if (err instanceof IngotError) throw err;
    throw configError(path, `cannot be read: ${(err as Error).message}`);
  }
  return resolveAuditFiles(parseServerConfig(text, path), path);
}

/** Turns a config file into runServer options (flags given on the command line override these). */
export function serverOptionsFromConfig(config: ServerConfig): Partial<RunServerOptions> {
  const c = config.conductor ?? {};
  const handler = {
    ...(c.powerPollMs !== undefined ? { powerPollMs: c.powerPollMs } : {}),
    ...(c.softPowerOffTimeoutMs !== undefined ? { softPowerOffTimeoutMs: c.softPowerOffTimeoutMs } : {}),
    ...(c.powerChangeTimeoutMs !== undefined ? { powerChangeTimeoutMs: c.powerChangeTimeoutMs } : {}),
    ...(c.agentPollMs !== undefined ? { agentPollMs: c.agentPollMs } : {}),
    ...(c.agentBootTimeoutMs !== undefined ? { agentBootTimeoutMs: c.agentBootTimeoutMs } : {}),
    ...(c.idleRecheckMs !== undefined ? { idleRecheckMs: c.idleRecheckMs } : {}),
    ...(c.defaultInspection !== undefined ? { defaultInspection: c.defaultInspection } : {}),
    ...(c.inspectionAttempts !== undefined ? { inspectionAttempts: c.inspectionAttempts } : {}),
    ...(config.cleaning?.resetBios !== undefined ? { resetBiosOnClean: config.cleaning.resetBios } : {}),
    ...(config.cleaning?.approvedFirmware ? { approvedFirmware: config.cleaning.approvedFirmware } : {}),
  };
  const conductor = {
    ...(c.workers !== undefined ? { workers: c.workers } : {}),
    ...(c.leaseTtlMs !== undefined ? { leaseTtlMs: c.leaseTtlMs } : {}),
    ...(c.resyncMs !== undefined ? { resyncMs: c.resyncMs } : {}),
    ...(c.pollMs !== undefined ? { pollMs: c.pollMs } : {}),
    ...(c.backoff ? { backoff: c.backoff } : {}),
    ...(c.maxConcurrentDeploys !== undefined ? { maxConcurrentDeploys: c.maxConcurrentDeploys } : {}),
    ...(c.maxConcurrentCleanings !== undefined ? { maxConcurrentCleanings: c.maxConcurrentCleanings } : {}),
    ...(c.slotRecheckMs !== undefined ? { slotRecheckMs: c.slotRecheckMs } : {}),
    ...(Object.keys(handler).length > 0 ? { handler } : {}),
  };
  const img = config.images ?? {};
  const images = {
    ...(img.downloadSource !== undefined ? { downloadSource: img.downloadSource } : {}),
    ...(img.cacheMaxBytes !== undefined ? { cacheMaxBytes: img.cacheMaxBytes } : {}),
    ...(img.caBundleFile !== undefined ? { caBundleFile: img.caBundleFile } : {}),
    ...(img.requireHttps !== undefined ? { requireHttps: img.requireHttps } : {}),
  };
  const a = config.audit;
  if (a?.alertRulesFile !== undefined || a?.webhook?.secretFile !== undefined) {
    throw new Error('audit.alertRulesFile and audit.webhook.secretFile are read by loadServerConfig; call it (or resolveAuditFiles) before serverOptionsFromConfig');
  }
  const audit = {
    ...(a?.file !== undefined ? { file: a.file } : {}),
    ...(a?.webhook ? { webhook: { url: a.webhook.url, ...(a.webhook.secret ? { secret: a.webhook.secret } : {}) } } : {}),
    ...(a?.alertRules ? { alertRules: a.alertRules } : {}),
  };
  const body = config.limits?.body ?? {};
  const bodyBounds = {
    ...(body.maxDepth !== undefined ? { maxDepth: body.maxDepth } : {}),
    ...(body.maxNodes !== undefined ? { maxNodes: body.maxNodes } : {}),
    ...(body.maxAliases !== undefined ? { maxAliases: body.maxAliases } : {}),
  };
  const rateLimits = listenerLimits(config.limits?.api);
  const agentRateLimits = listenerLimits(config.limits?.agent);
  const fake = config.fake?.enabled === false ? false : config.fake?.delays ? { delays: config.fake.delays } : undefined;
  return {
    ...(config.listen ? { listen: config.listen } : {}),
    ...(config.agentListen ? { agentListen: config.agentListen } : {}),
    ...(config.agentApiUrl || c.agentLostAfterMs !== undefined
      ? { agent: { ...(config.agentApiUrl ? { apiUrl: config.agentApiUrl } : {}), ...(c.agentLostAfterMs !== undefined ? { agentLostAfterMs: c.agentLostAfterMs } : {}) } }
      : {}),
    ...(config.database ? { database: config.database } : {}),
    ...(body.maxBytes !== undefined ? { bodyLimit: body.maxBytes } : {}),
    ...(Object.keys(bodyBounds).length > 0 ? { bodyBounds } : {}),
    ...(rateLimits ? { rateLimits } : {}),
    ...(agentRateLimits ? { agentRateLimits } : {}),
    ...(config.keyFile ? { keyFile: config.keyFile } : {}),
    ...(config.approvals ? { approvals: { ...config.approvals } } : {}),
    ...(Object.keys(conductor).length > 0 ? { conductor } : {}),
    ...(fake !== undefined ? { fake } : {}),
    ...(Object.keys(images).length > 0 ? { images } : {}),
    ...(config.tls ? { tls: { ...config.tls } } : {}),
    ...(config.oidc ? { oidc: { ...config.oidc } } : {}),
    ...(Object.keys(audit).length > 0 ? { audit } : {}),
    ...(config.images?.allowMd5Checksums !== undefined ? { policy: createPolicy({ allowMd5Checksums: config.images.allowMd5Checksums }) } : {}),
  };
}

type ListenerLimitsDocument = Static<typeof ListenerLimits>;

/** A listener's `limits.api` / `limits.agent` section as rate-limit.ts takes it (defaults fill the rest). */
function listenerLimits(section: ListenerLimitsDocument | undefined): RateLimitConfig | undefined {
  if (section === undefined) return undefined;
  return {
    ...(section.authFailures ? { authFailures: { ...section.authFailures } } : {}),
    ...(section.requests?.default ? { default: section.requests.default } : {}),
    ...(section.requests?.perRole ? { perRole: section.requests.perRole } : {}),
  };
}
