// A real public API for tests: SQLite file in a temp dir, real SecretBox, real HTTP on
// 127.0.0.1 port 0, and tokens for an admin and for a caller with no roles.
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { SecretBox } from '../../store/secret-box.js';
import { openStore } from '../../store/open-store.js';
import type { Store } from '../../store/store.js';
import { buildAgentServer } from '../agent-server.js';
import { buildApiServer } from '../api-server.js';
import type { ApprovalConfig } from '../approvals/approval-gate.js';
import { createPolicy, type Policy } from '../auth/policy.js';
import { generateToken, hashToken } from '../auth/tokens.js';
import { createLogger } from '../logger.js';
import { createAuditWriter, type AuditWriter } from '../audit/audit-writer.js';
import type { RateLimitConfig } from '../limits/rate-limit.js';
import { Writable } from 'node:stream';

/**
 * The test run's secret-leak capture (test/support/leak-capture-hook.mjs), when loaded: this
 * fixture's log lines and tokens go to it. Looked up on globalThis so this file has no import
 * from test/ and does nothing outside a test run.
 */
type LeakCapture = { recordSecret(kind: string, value: string): void; recordOutput(channel: string, text: string): void };
const leakCapture = {
  recordSecret: (kind: string, value: string) => (globalThis as { [key: symbol]: LeakCapture | undefined })[Symbol.for('ingot.test.capture')]?.recordSecret(kind, value),
  recordOutput: (channel: string, text: string) => (globalThis as { [key: symbol]: LeakCapture | undefined })[Symbol.for('ingot.test.capture')]?.recordOutput(channel, text),
};

export interface ApiFixture {
  url: string;
  agentUrl: string;
  app: FastifyInstance;
  agentApp: FastifyInstance;
  store: Store;
  adminToken: string;
  noRoleToken: string;
  agentToken: string;
  /** Every response body read through `call`, for "no secret value ever appears" checks. */
  bodies: string[];
  /** Every log line the API wrote (level debug), for the same checks. */
  logLines: string[];
  audit: AuditWriter;
  /** The SQLite file (for tests that tamper with rows). */
  databasePath: string;
  call(method: string, path: string, options?: CallOptions): Promise<CallResult>;
  close(): Promise<void>;
}

export interface CallOptions {
  token?: string | null;
  body?: unknown;
  /** Raw body text (sent as is); overrides `body`. */
  raw?: string;
  contentType?: string;
  headers?: Record<string, string>;
  base?: 'api' | 'agent';
}

export interface CallResult {
  status: number;
  headers: Headers;
  text: string;
  json: any;
}

export async function addToken(store: Store, roles: string[], opts: { type?: 'api' | 'agent'; expiresAt?: number; revokedAt?: string; project?: string } = {}): Promise<string> {
  const token = generateToken();
  leakCapture.recordSecret(`test ${opts.type ?? 'api'} token (addToken)`, token);
  await store.createToken({
    id: randomUUID(),
    hash: hashToken(token),
    description: `test ${roles.join(',') || 'no roles'}`,
    roles,
    project: opts.project ?? '',
    type: opts.type ?? 'api',
    hostUid: '',
    expiresAt: opts.expiresAt ?? 0,
    createdAt: new Date().toISOString(),
    ...(opts.revokedAt ? { revokedAt: opts.revokedAt } : {}),
  });
  return token;
}

export async function startApiFixture(
  options: { policy?: Policy; bodyLimit?: number; watchPollMs?: number; watchHeartbeatMs?: number; rateLimits?: RateLimitConfig; agentRateLimits?: RateLimitConfig; now?: () => number; maxTokenLifetimeSeconds?: number; approvals?: Partial<ApprovalConfig> | false } = {},
): Promise<ApiFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'ingot-api-'));
  const store = await openStore({ database: join(dir, 'ingot.db') });
  const logLines: string[] = [];
  const capture = new Writable({
    write(chunk, _encoding, done) {
      const text = String(chunk);
      logLines.push(text);
      leakCapture.recordOutput('api-fixture-log', text);
      if (process.env.INGOT_TEST_LOG) process.stderr.write(text);
      done();
    },
  });
  const log = createLogger({ level: 'debug', destination: capture });
  const audit = createAuditWriter({ store });
  const policy = options.policy ?? createPolicy();
  const app = buildApiServer({
    store,
    secretBox: new SecretBox(randomBytes(32)),
    policy,
    log,
    audit,
    // Off unless a test asks: suites that make hundreds of calls must not trip the defaults.
    rateLimits: options.rateLimits ?? false,
    ...(options.now ? { now: options.now } : {}),
    ...(options.approvals !== undefined ? { approvals: options.approvals } : {}),
    ...(options.maxTokenLifetimeSeconds ? { maxTokenLifetimeSeconds: options.maxTokenLifetimeSeconds } : {}),
    ...(options.bodyLimit ? { bodyLimit: options.bodyLimit } : {}),
    ...(options.watchPollMs ? { watchPollMs: options.watchPollMs } : {}),
    ...(options.watchHeartbeatMs ? { watchHeartbeatMs: options.watchHeartbeatMs } : {}),
  });
  const agentApp = buildAgentServer({ store, policy, log, audit, rateLimits: options.agentRateLimits ?? false });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  const agentUrl = await agentApp.listen({ host: '127.0.0.1', port: 0 });
  const adminToken = await addToken(store, ['platform-admin']);
  const noRoleToken = await addToken(store, []);
  const agentToken = await addToken(store, [], { type: 'agent' });
  const bodies: string[] = [];

  async function call(method: string, path: string, o: CallOptions = {}): Promise<CallResult> {
    const headers: Record<string, string> = { ...o.headers };
    const token = o.token === undefined ? adminToken : o.token;
    if (token) headers.authorization = `Bearer ${token}`;
    let body: string | undefined;
    if (o.raw !== undefined) body = o.raw;
    else if (o.body !== undefined) body = JSON.stringify(o.body);
    if (body !== undefined) headers['content-type'] = o.contentType ?? 'application/json';
    const res = await fetch(`${o.base === 'agent' ? agentUrl : url}${path}`, { method, headers, ...(body !== undefined ? { body } : {}) });
    const text = await res.text();
    bodies.push(text);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, headers: res.headers, text, json };
  }

  return {
    url,
    agentUrl,
    app,
    agentApp,
    store,
    adminToken,
    noRoleToken,
    agentToken,
    bodies,
    logLines,
    audit,
    databasePath: join(dir, 'ingot.db'),
    call,
    async close() {
      await app.close();
      await agentApp.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const CHECKSUM_SHA256 = 'a'.repeat(64);

export function hostManifest(name: string, spec: Record<string, unknown> = {}, metadata: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    apiVersion: 'ingot.dev/v1',
    kind: 'Host',
    metadata: { name, ...metadata },
    spec: { bmc: { address: `fake://${name}`, credentialsName: 'bmc-creds' }, online: false, ...spec },
  };
}

export function secretManifest(name: string, stringData: Record<string, string>, metadata: Record<string, unknown> = {}): Record<string, unknown> {
  return { apiVersion: 'ingot.dev/v1', kind: 'Secret', metadata: { name, ...metadata }, stringData };
}
