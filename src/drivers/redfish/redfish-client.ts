// HTTP to Redfish services: TLS pools, authentication, sessions, timeouts and retries.
//
// - One undici Agent per (origin, CA bundle, verify) with keep-alive, so the BMCs' few TLS
//   handshakes per second are not spent on every call; closed by close().
// - Authentication as real clients (Ironic's sushy, DMTF's redfishtool) do it: read the public
//   service root; a service that advertises a SessionService (or Links.Sessions) gets a
//   session (DSP0266 "Session login authentication"): POST the Sessions collection, keep
//   X-Auth-Token and the session's Location, re-login once on 401, DELETE on close(). A
//   service that advertises none gets HTTP Basic. When session creation is refused (401/403)
//   but Basic works, Basic is used and reported (authNotice), so the host's events say why.
// - Auth state is kept per (host, endpoint, system path, username, password hash, CA bundle
//   hash, verification): one host's verdict never reaches another host, a rotated password
//   never rides an old session, and a host without a CA bundle never reuses a session made
//   over another host's trust settings.
// - Retries with jittered exponential backoff only where resending cannot act twice: GET,
//   HEAD and DELETE on 5xx, 429 (honouring Retry-After, RFC 9110 §10.2.3) and connection
//   errors; any method when the connection failed before the request was sent.
// - Links the BMC hands back (Location, @odata.id, nextLink) are followed only on the BMC's
//   own origin, so credentials are never sent elsewhere.
// Secrets: the password and tokens live only in request headers and this module's memory;
// they never enter an error message (errors name host, method and URL only).
import { createHash } from 'node:crypto';
import { Agent, request as undiciRequest } from 'undici';
import type { BmcTarget } from '../driver.js';
import { BmcRefused } from '../driver.js';
import {
  authenticationError,
  certificateError,
  certificateFailureCode,
  failedBeforeSending,
  redfishMessages,
  refusedError,
  unreachableError,
} from './redfish-errors.js';

export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PATCH' | 'DELETE';

export interface RedfishClientOptions {
  /** TCP + TLS connect timeout (default 10 s). */
  connectTimeoutMs?: number;
  /** Whole request timeout, headers and body (default 30 s). */
  requestTimeoutMs?: number;
  /** Attempts per request including the first (default 4). */
  maxAttempts?: number;
  /** First backoff delay; doubles each attempt, with full jitter (default 500 ms). */
  retryBaseDelayMs?: number;
  /** Backoff cap (default 8 s). */
  retryMaxDelayMs?: number;
  /** Longest Retry-After honoured before giving up on the request (default 60 s). */
  maxRetryAfterMs?: number;
  /** Largest response body read (default 8 MiB): a BMC is an external input. */
  maxBodyBytes?: number;
  /** Idle keep-alive time of pooled connections (default 30 s). */
  keepAliveMs?: number;
  /** Injected for tests: how to wait, and the jitter source. */
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

export interface RedfishRequest {
  method: HttpMethod;
  /** A path on the BMC (`/redfish/v1/...`) or an absolute URL on the BMC's own origin. */
  path: string;
  body?: unknown;
  headers?: Record<string, string>;
}

export interface RedfishResponse {
  status: number;
  headers: Record<string, string>;
  body: unknown;
  url: string;
  /** Why a non-empty body is not JSON (an HTML error page, truncated JSON), for error messages. */
  bodyProblem?: string;
}

type AuthState =
  | { mode: 'session'; token: string; sessionPath?: string; origin: string; username: string; target: BmcTarget }
  | { mode: 'basic'; /** Why not a session, when the service advertised one but refused to create it. */ sessionRefused?: string };

type SessionDiscovery = { kind: 'sessions'; path: string; systems: string } | { kind: 'none' };

/** How the client authenticates to a host's BMC, for the host's events. */
export interface AuthNotice {
  mode: 'session' | 'basic';
  /** Set when the BMC advertises sessions but refused to create one while Basic works. */
  sessionRefused?: string;
}

const DEFAULT_SESSIONS_PATH = '/redfish/v1/SessionService/Sessions';
const DEFAULT_SYSTEMS_PATH = '/redfish/v1/Systems';
const MAX_PATH_LENGTH = 2048;

export function originOf(target: BmcTarget): string {
  const a = target.address;
  const port = a.port !== undefined ? `:${a.port}` : '';
  return `${a.protocol === 'http' ? 'http' : 'https'}://${a.host}${port}`;
}

/** The TLS settings that change a BMC's answer: the CA bundle (by digest) and verification. */
function tlsKeyParts(target: BmcTarget): string[] {
  if (!originOf(target).startsWith('https:')) return ['http'];
  return [target.tls.caBundle ? sha256(target.tls.caBundle) : 'system', String(target.tls.verify)];
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

function describe(err: unknown): string {
  if (err && typeof err === 'object') {
    const e = err as { name?: string; code?: string; message?: string };
    if (e.name === 'TimeoutError' || e.name === 'AbortError') return 'no answer before the request timeout';
    const code = e.code ? `${e.code}: ` : '';
    return `${code}${(e.message ?? String(err)).slice(0, 300)}`;
  }
  return String(err).slice(0, 300);
}

/** Retry-After as delta-seconds or HTTP-date (RFC 9110 §10.2.3), in ms; undefined if absent or unreadable. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

export class RedfishClient {
  readonly #opts: Required<RedfishClientOptions>;
  readonly #agents = new Map<string, Agent>();
  readonly #auth = new Map<string, AuthState>();
  readonly #logins = new Map<string, Promise<AuthState>>();
  readonly #sessionDiscovery = new Map<string, SessionDiscovery>();
  #closed = false;

  constructor(options: RedfishClientOptions = {}) {
    this.#opts = {
      connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
      requestTimeoutMs: options.requestTimeoutMs ?? 30_000,
      maxAttempts: Math.max(1, options.maxAttempts ?? 4),
      retryBaseDelayMs: options.retryBaseDelayMs ?? 500,
      retryMaxDelayMs: options.retryMaxDelayMs ?? 8_000,
      maxRetryAfterMs: options.maxRetryAfterMs ?? 60_000,
      maxBodyBytes: options.maxBodyBytes ?? 8 * 1024 * 1024,
      keepAliveMs: options.keepAliveMs ?? 30_000,
      sleep: options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms))),
      random: options.random ?? Math.random,
    };
  }

  /**
   * Sends one authenticated request. Returns any response the caller must judge (2xx, 3xx,
   * 4xx other than 401/403); throws BmcAuthenticationError, BmcCertificateError, or
   * BmcUnreachable (5xx other than 501, 429 or network after the retries allowed).
   */
  async request(target: BmcTarget, req: RedfishRequest): Promise<RedfishResponse> {
    if (this.#closed) throw new BmcRefused(`host "${target.hostName}": the Redfish driver was closed`);
    const path = this.resolveLink(target, req.path);
    let { state: auth, fresh } = await this.#authenticate(target, false);
    let res = await this.#send(target, { ...req, path }, this.#authHeaders(target, auth));
    if (res.status === 401 && auth.mode === 'session' && !fresh) {
      // The cached session expired or was deleted on the BMC: log in again, once.
      this.#auth.delete(this.#authKey(target));
      ({ state: auth } = await this.#authenticate(target, true));
      res = await this.#send(target, { ...req, path }, this.#authHeaders(target, auth));
    }
    if (res.status === 401 || res.status === 403) throw authenticationError(target, res.status, res.url);
    if (res.status >= 300 && res.status < 400) {
      const location = (res.headers['location'] ?? '').slice(0, 200);
      throw new BmcRefused(
        `host "${target.hostName}": ${req.method} ${res.url} answered HTTP ${res.status}${location ? ` redirecting to ${location}` : ''}; ` +
          'Ingot does not follow BMC redirects (they could carry the credentials elsewhere): put the address the BMC serves Redfish on in spec.bmc.address',
      );
    }
    return res;
  }

  /** GETs a resource that must exist; returns its JSON object. */
  async get(target: BmcTarget, path: string, what?: string): Promise<Record<string, unknown>> {
    const res = await this.request(target, { method: 'GET', path });
    if (res.status === 404) {
      throw new BmcRefused(`host "${target.hostName}": ${what ? `${what}: ` : ''}the BMC has no resource at ${res.url} (HTTP 404)`);
    }
    if (res.status < 200 || res.status >= 300) throw refusedError(target, 'GET', res.url, res.status, res.body, what);
    if (!res.body || typeof res.body !== 'object' || Array.isArray(res.body)) {
      const why = res.bodyProblem ? ` (it sent ${res.bodyProblem})` : '';
      throw new BmcRefused(`host "${target.hostName}": ${what ? `${what}: ` : ''}GET ${res.url} did not return a JSON object${why}; is this a Redfish service?`);
    }
    return res.body as Record<string, unknown>;
  }

  /** GETs a resource that may be absent (404/405/501): returns undefined then. */
  async getOptional(target: BmcTarget, path: string): Promise<Record<string, unknown> | undefined> {
    const res = await this.request(target, { method: 'GET', path });
    if (res.status === 404 || res.status === 405 || res.status === 501) return undefined;
    if (res.status < 200 || res.status >= 300) throw refusedError(target, 'GET', res.url, res.status, res.body);
    return res.body && typeof res.body === 'object' ? (res.body as Record<string, unknown>) : undefined;
  }

  /** Turns a link from the BMC into a path on its origin; refuses links to other origins. */
  resolveLink(target: BmcTarget, link: string): string {
    if (typeof link !== 'string' || link.length === 0 || link.length > MAX_PATH_LENGTH) {
      throw new BmcRefused(`host "${target.hostName}": the BMC returned an invalid link`);
    }
    if (link.startsWith('/') && !link.startsWith('//')) return link;
    let url: URL;
    try {
      url = new URL(link);
    } catch {
      throw new BmcRefused(`host "${target.hostName}": the BMC returned an invalid link "${link.slice(0, 200)}"`);
    }
    if (url.origin !== new URL(originOf(target)).origin) {
      throw new BmcRefused(
        `host "${target.hostName}": the BMC linked to ${url.origin}, another origin than ${originOf(target)}; Ingot does not send BMC credentials elsewhere`,
      );
    }
    return `${url.pathname}${url.search}`;
  }

  /** Deletes every session this client opened and closes pooled connections. */
  async close(): Promise<void> {
    if (this.#closed) return;
    const sessions = [...this.#auth.values()].filter((a): a is Extract<AuthState, { mode: 'session' }> => a.mode === 'session');
    await Promise.allSettled(sessions.map((s) => this.#deleteSession(s)));
    this.#closed = true;
    this.#auth.clear();
    const agents = [...this.#agents.values()];
    this.#agents.clear();
    await Promise.allSettled(agents.map((a) => a.close()));
  }

  // ---- authentication --------------------------------------------------------------------

  #authKey(target: BmcTarget): string {
    return [
      originOf(target),
      target.credentials.username,
      sha256(target.credentials.password),
      target.hostName,
      target.address.path ?? '',
      ...tlsKeyParts(target),
    ].join('\0');
  }

  /** How this client authenticates to the target's BMC, once it has (undefined before the first request). */
  authNotice(target: BmcTarget): AuthNotice | undefined {
    const state = this.#auth.get(this.#authKey(target));
    if (!state) return undefined;
    return state.mode === 'basic' && state.sessionRefused ? { mode: 'basic', sessionRefused: state.sessionRefused } : { mode: state.mode };
  }

  #authHeaders(target: BmcTarget, auth: AuthState): Record<string, string> {
    if (auth.mode === 'session') return { 'x-auth-token': auth.token };
    const { username, password } = target.credentials;
    return { authorization: `Basic ${Buffer.from(`${username}:${password}`, 'utf8').toString('base64')}` };
  }

  /** The auth state for this target; `fresh` when it was just made (so a 401 is the credentials' fault). */
  async #authenticate(target: BmcTarget, force: boolean): Promise<{ state: AuthState; fresh: boolean }> {
    const key = this.#authKey(target);
    const cached = this.#auth.get(key);
    if (cached && !force) return { state: cached, fresh: false };
    let pending = this.#logins.get(key);
    if (!pending) {
      pending = this.#login(target).finally(() => this.#logins.delete(key));
      this.#logins.set(key, pending);
    }
    const state = await pending;
    this.#auth.set(key, state);
    if (state.mode === 'session') await this.#dropStaleSessions(target, key);
    return { state, fresh: true };
  }

  async #login(target: BmcTarget): Promise<AuthState> {
    const discovery = await this.#discoverSessions(target);
    if (discovery.kind === 'none') return { mode: 'basic' };
    const res = await this.#send(
      target,
      { method: 'POST', path: discovery.path, body: { UserName: target.credentials.username, Password: target.credentials.password } },
      {},
    );
    if (res.status === 401 || res.status === 403) {
      // Some BMCs refuse sessions to accounts that may still use Basic (or allow sessions only
      // from their web UI). Only a Basic request that succeeds proves the credentials good.
      if (await this.#basicWorks(target, discovery.systems)) {
        return { mode: 'basic', sessionRefused: `the BMC refused to create a session (HTTP ${res.status} from POST ${res.url}) but accepts HTTP Basic` };
      }
      throw authenticationError(target, res.status, res.url);
    }
    const token = res.headers['x-auth-token'];
    if (res.status >= 200 && res.status < 300 && token) {
      let sessionPath: string | undefined;
      const location = res.headers['location'] ?? (res.body as { '@odata.id'?: string } | undefined)?.['@odata.id'];
      if (typeof location === 'string') {
        try {
          sessionPath = this.resolveLink(target, location);
        } catch {
          sessionPath = undefined;
        }
      }
      return { mode: 'session', token, sessionPath, origin: originOf(target), username: target.credentials.username, target };
    }
    // No session service after all (404/405/501), a 2xx without a token, or a 400 from a
    // service that only knows Basic: HTTP Basic, which DSP0266 requires services to support.
    return { mode: 'basic' };
  }

  /** Whether an authenticated GET with HTTP Basic succeeds (on the Systems collection: every service has one). */
  async #basicWorks(target: BmcTarget, systemsPath: string): Promise<boolean> {
    const res = await this.#send(target, { method: 'GET', path: systemsPath }, this.#authHeaders(target, { mode: 'basic' }));
    return res.status >= 200 && res.status < 300;
  }

  /**
   * Reads the service root (public per DSP0266) for its SessionService and Sessions links.
   * A root that cannot be read as JSON tells nothing: try the well-known Sessions path.
   */
  async #discoverSessions(target: BmcTarget): Promise<SessionDiscovery> {
    const key = [originOf(target), ...tlsKeyParts(target)].join('\0');
    const known = this.#sessionDiscovery.get(key);
    if (known) return known;
    const root = await this.#send(target, { method: 'GET', path: '/redfish/v1' }, {});
    const body = root.status === 200 && root.body && typeof root.body === 'object' ? (root.body as Record<string, unknown>) : undefined;
    const linkIn = (obj: unknown, name: string): string | undefined => {
      const v = (obj as Record<string, { '@odata.id'?: unknown } | undefined> | undefined)?.[name]?.['@odata.id'];
      if (typeof v !== 'string') return undefined;
      try {
        return this.resolveLink(target, v);
      } catch {
        return undefined;
      }
    };
    const systems = linkIn(body, 'Systems') ?? DEFAULT_SYSTEMS_PATH;
    let found: SessionDiscovery;
    if (!body) found = { kind: 'sessions', path: DEFAULT_SESSIONS_PATH, systems };
    else {
      const sessions = linkIn(body['Links'], 'Sessions');
      const service = linkIn(body, 'SessionService');
      found = sessions || service ? { kind: 'sessions', path: sessions ?? `${service!.replace(/\/$/, '')}/Sessions`, systems } : { kind: 'none' };
    }
    // Only a readable root is remembered: a BMC that was still booting is asked again next time.
    if (body) this.#sessionDiscovery.set(key, found);
    return found;
  }

  /**
   * After a login, sessions of the same user on the same BMC under an older password are dead
   * weight: delete them. "The same BMC" is the origin AND the system path: one Redfish service
   * may front many systems whose accounts share a user name but not a password (the Ingot lab,
   * chassis managers, emulators); there another system's session is not stale, and deleting it
   * would fail that system's request in flight with a 401 that looks like wrong credentials.
   */
  async #dropStaleSessions(target: BmcTarget, currentKey: string): Promise<void> {
    const prefix = `${originOf(target)}\0${target.credentials.username}\0`;
    for (const [key, state] of [...this.#auth.entries()]) {
      const sameSystem = state.mode !== 'session' || state.target.address.path === target.address.path;
      if (key !== currentKey && key.startsWith(prefix) && sameSystem) {
        this.#auth.delete(key);
        if (state.mode === 'session') await this.#deleteSession(state).catch(() => undefined);
      }
    }
  }

  async #deleteSession(session: Extract<AuthState, { mode: 'session' }>): Promise<void> {
    if (!session.sessionPath) return;
    await this.#send(session.target, { method: 'DELETE', path: session.sessionPath }, { 'x-auth-token': session.token }, 1);
  }

  // ---- transport --------------------------------------------------------------------------

  #agentFor(target: BmcTarget): Agent {
    const origin = originOf(target);
    const https = origin.startsWith('https:');
    const ca = https ? target.tls.caBundle : undefined;
    const verify = https ? target.tls.verify : true;
    const key = [origin, ...tlsKeyParts(target)].join('\0');
    let agent = this.#agents.get(key);
    if (!agent) {
      agent = new Agent({
        connect: {
          timeout: this.#opts.connectTimeoutMs,
          ...(https ? { rejectUnauthorized: verify, ...(ca ? { ca } : {}) } : {}),
        },
        keepAliveTimeout: this.#opts.keepAliveMs,
        headersTimeout: this.#opts.requestTimeoutMs,
        bodyTimeout: this.#opts.requestTimeoutMs,
        connections: 4,
      });
      this.#agents.set(key, agent);
    }
    return agent;
  }

  #backoff(attempt: number): number {
    const ceiling = Math.min(this.#opts.retryMaxDelayMs, this.#opts.retryBaseDelayMs * 2 ** (attempt - 1));
    // Full jitter (AWS architecture blog "Exponential Backoff and Jitter"): spreads a fleet's retries.
    return Math.round(ceiling / 2 + (this.#opts.random() * ceiling) / 2);
  }

  async #send(target: BmcTarget, req: RedfishRequest, auth: Record<string, string>, attemptsOverride?: number): Promise<RedfishResponse> {
    const url = `${originOf(target)}${req.path}`;
    const idempotent = req.method === 'GET' || req.method === 'HEAD' || req.method === 'DELETE';
    const attempts = attemptsOverride ?? this.#opts.maxAttempts;
    const headers: Record<string, string> = {
      accept: 'application/json',
      'odata-version': '4.0',
      'user-agent': 'ingot-redfish',
      ...req.headers,
      ...auth,
    };
    let body: string | undefined;
    if (req.body !== undefined) {
      body = JSON.stringify(req.body);
      headers['content-type'] = 'application/json; charset=utf-8';
    }
    let lastError = '';
    let lastCause: unknown;
    let attempt = 0;
    while (attempt < attempts) {
      attempt++;
      let status: number;
      let resHeaders: Record<string, string>;
      let resBody: unknown;
      let bodyProblem: string | undefined;
      try {
        const res = await undiciRequest(url, {
          method: req.method,
          headers,
          body,
          dispatcher: this.#agentFor(target),
          signal: AbortSignal.timeout(this.#opts.requestTimeoutMs),
        });
        status = res.statusCode;
        resHeaders = flattenHeaders(res.headers);
        ({ body: resBody, problem: bodyProblem } = await this.#readBody(target, url, res.body, resHeaders['content-type']));
      } catch (err) {
        if (err instanceof BmcRefused) throw err;
        const certCode = certificateFailureCode(err);
        if (certCode) throw certificateError(target, url, certCode, err);
        lastError = describe(err);
        lastCause = err;
        if (!(idempotent || failedBeforeSending(err))) break;
        if (attempt < attempts) await this.#opts.sleep(this.#backoff(attempt));
        continue;
      }
      // 501 Not Implemented is an answer ("cannot do that"), not a busy service.
      const busy = status === 429 || (status >= 500 && status !== 501);
      if (!busy) return { status, headers: resHeaders, body: resBody, url, ...(bodyProblem ? { bodyProblem } : {}) };
      const said = redfishMessages(resBody);
      lastError = `HTTP ${status}${said.length ? ` (${said.join('; ')})` : bodyProblem ? ` (${bodyProblem})` : ''}`;
      lastCause = undefined;
      if (!idempotent) break;
      const retryAfter = parseRetryAfter(resHeaders['retry-after']);
      if (retryAfter !== undefined && retryAfter > this.#opts.maxRetryAfterMs) {
        lastError += `; its Retry-After of ${Math.round(retryAfter / 1000)} s is longer than Ingot waits`;
        break;
      }
      if (attempt < attempts) await this.#opts.sleep(retryAfter ?? this.#backoff(attempt));
    }
    throw unreachableError(target, req.method, url, attempt, lastError, lastCause);
  }

  async #readBody(
    target: BmcTarget,
    url: string,
    stream: AsyncIterable<Buffer> & { destroy(): void },
    contentType?: string,
  ): Promise<{ body: unknown; problem?: string }> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of stream) {
      size += chunk.length;
      if (size > this.#opts.maxBodyBytes) {
        stream.destroy();
        throw new BmcRefused(`host "${target.hostName}": ${url} answered with more than ${this.#opts.maxBodyBytes} bytes; Ingot refuses oversized responses`);
      }
      chunks.push(chunk);
    }
    if (size === 0) return { body: undefined };
    const text = Buffer.concat(chunks).toString('utf8');
    const type = (contentType ?? '').split(';')[0]!.trim() || 'no content type';
    if (!type.includes('json') && !/^\s*[[{]/.test(text)) {
      return { body: undefined, problem: /^\s*<(!doctype html|html)/i.test(text) ? `an HTML page (${type})` : `${size} bytes of ${type}, not JSON` };
    }
    try {
      return { body: JSON.parse(text) as unknown };
    } catch {
      return { body: undefined, problem: `truncated or malformed JSON (${size} bytes)` };
    }
  }
}

function flattenHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    out[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

/** Whether a response is 2xx. */
export function isSuccess(res: RedfishResponse): boolean {
  return res.status >= 200 && res.status < 300;
}
