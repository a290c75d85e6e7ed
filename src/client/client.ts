// The typed Ingot API client, used by the CLI, tests and the console. It speaks only the
// public REST API (never the store), so whatever it can do, any HTTP client can do too.
import type { AuditHead, AuditOutcome, StoredAuditEvent } from '../model/audit-event.js';
import type { ResourceList } from '../model/envelope.js';
import type { Host, HostInput } from '../model/host.js';
import type { Secret, SecretInput } from '../model/secret.js';
import { ApiError, describeFetchFailure } from './api-error.js';
import { SseParser } from './sse-parser.js';
import type {
  Claim,
  ClaimInput,
  ClaimSet,
  ClaimSetInput,
  IPAddressInfo,
  IPPool,
  IPPoolInput,
  NodeType,
  NodeTypeInput,
  OSImage,
  OSImageInput,
  Project,
  ProjectInput,
} from './tenancy-types.js';

export type FetchLike = (input: string | URL, init?: RequestInit) => Promise<Response>;

export interface ClientOptions {
  /** API base URL, e.g. http://127.0.0.1:7385 (a path prefix is kept). */
  server: string;
  /** Bearer token; omitted only for unauthenticated probes such as /healthz. */
  token?: string;
  /** Defaults to the global fetch (undici under Node 20). */
  fetch?: FetchLike;
  /** Upper bound on one response body; larger answers fail with INGOT_ERR_RESPONSE_TOO_LARGE. */
  maxResponseBytes?: number;
  /** Per-request timeout for ordinary (non-watch) requests; default 60 s. */
  requestTimeoutMs?: number;
  /**
   * PEM CA file trusted for an https:// server (e.g. the CA `ingot server --tls-dev` prints);
   * default the INGOT_CA_FILE environment variable. Ignored when `fetch` is given.
   */
  caFile?: string;
  /** Client certificate and key (PEM files) for a server that requires mutual TLS; default INGOT_CLIENT_CERT / INGOT_CLIENT_KEY. */
  clientCertFile?: string;
  clientKeyFile?: string;
}

/**
 * A fetch trusting `caFile` and presenting a client certificate, or undefined when neither is
 * configured (the global fetch then applies). undici and node:fs are imported on first use so
 * the client module itself stays free of Node-only imports.
 */
function tlsFetch(options: ClientOptions): FetchLike | undefined {
  const env = typeof process !== 'undefined' ? process.env : {};
  const caFile = options.caFile ?? (env.INGOT_CA_FILE || undefined);
  const certFile = options.clientCertFile ?? (env.INGOT_CLIENT_CERT || undefined);
  const keyFile = options.clientKeyFile ?? (env.INGOT_CLIENT_KEY || undefined);
  if (!caFile && !certFile && !keyFile) return undefined;
  if (!certFile !== !keyFile) {
    throw new ApiError({ status: 0, code: 'INGOT_ERR_CONNECTION', message: 'a client certificate needs both its certificate and key files (INGOT_CLIENT_CERT and INGOT_CLIENT_KEY)', server: options.server });
  }
  let ready: Promise<FetchLike> | undefined;
  const make = async (): Promise<FetchLike> => {
    const [{ Agent, fetch: undiciFetch }, { readFile }] = await Promise.all([import('undici'), import('node:fs/promises')]);
    const read = async (path: string | undefined, what: string) => {
      if (!path) return undefined;
      try {
        return await readFile(path, 'utf8');
      } catch (err) {
        throw new ApiError({ status: 0, code: 'INGOT_ERR_CONNECTION', message: `cannot read the ${what} ${path}: ${(err as Error).message}`, server: options.server });
      }
    };
    const [ca, cert, key] = await Promise.all([read(caFile, 'CA file (INGOT_CA_FILE)'), read(certFile, 'client certificate (INGOT_CLIENT_CERT)'), read(keyFile, 'client key (INGOT_CLIENT_KEY)')]);
    const dispatcher = new Agent({ connect: { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) } });
    return (input, init) => undiciFetch(input, { ...(init as object), dispatcher }) as unknown as Promise<Response>;
  };
  return async (input, init) => (await (ready ??= make()))(input, init);
}

export interface ListOptions {
  labelSelector?: string;
  limit?: number;
  continue?: string;
}

export interface HostEvent {
  id: number;
  type: 'Normal' | 'Warning' | string;
  reason: string;
  message: string;
  fromState?: string;
  toState?: string;
  createdAt: string;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | string;

export interface WatchEvent<T> {
  type: WatchEventType;
  object: T;
  /** The SSE id of this event: resume after it with Last-Event-ID. */
  id: string;
}

export interface WatchOptions {
  labelSelector?: string;
  signal?: AbortSignal;
  /** Resume after this event id (as if reconnecting). */
  lastEventId?: string;
  /** Delay before reconnecting when the server did not say (`retry:`); default 1000 ms. */
  reconnectDelayMs?: number;
  /** Give up after this many consecutive failed (re)connections; default unlimited. */
  maxReconnectAttempts?: number;
  /** Called when the stream dropped and is about to be reopened. */
  onReconnect?: (info: { attempt: number; lastEventId: string; error?: unknown }) => void;
}

/** An API token as lists show it: never its value. */
export interface TokenInfo {
  id: string;
  description: string;
  roles: string[];
  project: string;
  createdAt: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

export interface TokenCreateInput {
  roles: string[];
  /** Only for project-* roles. */
  project?: string;
  description: string;
  expiresInSeconds: number;
}

/** The create answer: the only time the token value is ever returned. */
export interface CreatedToken extends TokenInfo {
  token: string;
}

export interface AuditListOptions {
  afterSeq?: number;
  beforeSeq?: number;
  limit?: number;
  order?: 'asc' | 'desc';
  actor?: string;
  action?: string;
  outcome?: AuditOutcome;
}

export type AuditEvent = StoredAuditEvent;

/** GET /api/v1/audit/verify: the chain's head, or the first bad event. */
export type AuditVerifyResult =
  | { ok: true; count: number; head: AuditHead }
  | { ok: false; seq: number; id: string; problem: string; message: string; count: number };

/** Body of POST /api/v1/secrets/-/rekey. */
export interface SecretRekeyOptions {
  retireOld?: boolean;
  retireOnly?: boolean;
  batchSize?: number;
}

/** What a rekey did: counts and key ids, never a value or a key. */
export interface SecretRekeyReport {
  keyId: string;
  previousKeyId?: string;
  rows: number;
  moved: number;
  remaining: number;
  previousKeyIds: string[];
  retiredKeyIds: string[];
  message: string;
}

export interface SecretReveal {
  metadata: { name: string };
  version: number;
  stringData: Record<string, string>;
}

export interface ApplyResult<T> {
  object: T;
  /** true when the PUT created the resource (201), false when it replaced it (200). */
  created: boolean;
  /** The texts of the answer's `Warning: 299` headers (soft quotas), for the caller to show. */
  warnings?: string[];
}

/** A create or patch answer, with the server's warnings (soft quotas exceeded, …). */
export interface WriteResult<T> {
  object: T;
  warnings: string[];
}

/** A delete answer: `accepted` (202) when a controller finishes the deletion later. */
export interface DeleteResult<T> {
  object: T | undefined;
  accepted: boolean;
}

/** list/get/create/apply/patch/delete (and watch) of one spec-and-status kind at one URL. */
export interface ResourceClient<T, I> {
  list(options?: ListOptions): Promise<ResourceList<T>>;
  /** Follows `continue` cursors until the last page. */
  listAll(options?: Omit<ListOptions, 'continue'>): Promise<T[]>;
  get(name: string): Promise<T>;
  create(input: I): Promise<WriteResult<T>>;
  /** Create-or-replace with PUT; include metadata.resourceVersion for compare-and-swap. */
  apply(input: I): Promise<ApplyResult<T> & { warnings: string[] }>;
  /** JSON merge patch (RFC 7396) on metadata.labels, metadata.annotations and spec. */
  patch(name: string, patch: Record<string, unknown>): Promise<WriteResult<T>>;
  delete(name: string): Promise<DeleteResult<T>>;
  watch(options?: WatchOptions): AsyncIterableIterator<WatchEvent<T>>;
}

/** The same for a project kind: every call names the project first. */
export type ProjectResourceClient<T, I> = {
  [K in keyof ResourceClient<T, I>]: ResourceClient<T, I>[K] extends (...args: infer A) => infer R ? (project: string, ...args: A) => R : never;
};

/** Secrets of a project (user data for its claims): write-only values, as at /api/v1/secrets. */
export interface ProjectSecretsClient {
  list(project: string, options?: ListOptions): Promise<ResourceList<Secret>>;
  get(project: string, name: string): Promise<Secret>;
  create(project: string, input: SecretInput): Promise<Secret>;
  apply(project: string, input: SecretInput): Promise<ApplyResult<Secret>>;
  delete(project: string, name: string): Promise<void>;
}

/** A change held by the two-person rule (server: src/server/approvals/). */
export interface ApprovalInfo {
  apiVersion: string;
  kind: 'Approval';
  id: string;
  action: string;
  target: { kind: string; name: string };
  request: { method: string; path: string };
  cause: string;
  state: 'pending' | 'approved' | 'rejected' | 'expired' | 'executed';
  requestedBy: string;
  requestedAt: string;
  expiresAt: string;
  decidedBy?: string;
  decidedAt?: string;
  reason?: string;
  /** On a held request's 202: what to do next. */
  message?: string;
  /** On approve: the answer of the replayed request. */
  result?: { statusCode: number; body: unknown };
}

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
  signal?: AbortSignal;
  headers?: Record<string, string>;
}

export interface RawResponse<T = unknown> {
  status: number;
  headers: Headers;
  body: T;
}

export interface IngotClient {
  readonly server: string;
  /** Any API call: JSON in, JSON out; non-2xx throws ApiError. */
  request<T = unknown>(method: string, path: string, options?: RequestOptions): Promise<RawResponse<T>>;
  hosts: {
    list(options?: ListOptions): Promise<ResourceList<Host>>;
    /** Follows `continue` cursors until the last page. */
    listAll(options?: Omit<ListOptions, 'continue'>): Promise<Host[]>;
    get(name: string): Promise<Host>;
    create(input: HostInput): Promise<Host>;
    /** Create-or-replace with PUT; include metadata.resourceVersion for compare-and-swap. */
    apply(input: HostInput): Promise<ApplyResult<Host>>;
    /** JSON merge patch (RFC 7396): null removes a field. */
    patch(name: string, patch: Record<string, unknown>): Promise<Host>;
    /**
     * Asks for deletion (202); the conductor cleans (where a tenant's data may be), powers the
     * host off and removes it. `force` deletes a host a claim holds: held for a second admin's
     * approval (the answer is then an Approval).
     */
    delete(name: string, options?: { force?: boolean }): Promise<Host | undefined>;
    events(name: string, options?: { afterId?: number; limit?: number }): Promise<HostEvent[]>;
    watch(options?: WatchOptions): AsyncIterableIterator<WatchEvent<Host>>;
  };
  secrets: {
    list(options?: ListOptions): Promise<ResourceList<Secret>>;
    get(name: string): Promise<Secret>;
    create(input: SecretInput): Promise<Secret>;
    apply(input: SecretInput): Promise<ApplyResult<Secret>>;
    delete(name: string): Promise<void>;
    /** The values (action secret:reveal, denied by default and always audited). */
    reveal(name: string): Promise<SecretReveal>;
    /** Rotates the server's secret key and re-seals every value under it (action secret:rekey, admins). */
    rekey(options?: SecretRekeyOptions): Promise<SecretRekeyReport>;
  };
  tokens: {
    /** The answer carries the token value; it cannot be read again. */
    create(input: TokenCreateInput): Promise<CreatedToken>;
    list(): Promise<TokenInfo[]>;
    revoke(id: string): Promise<TokenInfo>;
  };
  approvals: {
    list(options?: { state?: ApprovalInfo['state'] }): Promise<ApprovalInfo[]>;
    /** Runs the held change with your authority; you must not be its requester. */
    approve(id: string, reason?: string): Promise<ApprovalInfo>;
    reject(id: string, reason?: string): Promise<ApprovalInfo>;
  };
  audit: {
    list(options?: AuditListOptions): Promise<AuditEvent[]>;
    verify(): Promise<AuditVerifyResult>;
  };
  /** Published images (platform roles only; tenants never see image URLs). */
  osImages: ResourceClient<OSImage, OSImageInput>;
  nodeTypes: ResourceClient<NodeType, NodeTypeInput> & {
    /** The node types `project` may claim (what its members can read). */
    listForProject(project: string, options?: ListOptions): Promise<ResourceList<NodeType>>;
    getForProject(project: string, name: string): Promise<NodeType>;
  };
  /** Projects; get/patch/delete at /api/v1/projects/:project (members may read their own). */
  projects: ResourceClient<Project, ProjectInput>;
  ipPools: ResourceClient<IPPool, IPPoolInput> & {
    /** The pool's allocated addresses, in address order, with the claim holding each. */
    addresses(name: string): Promise<IPAddressInfo[]>;
  };
  claims: ProjectResourceClient<Claim, ClaimInput> & {
    /** Claims of every project (platform roles). */
    listAllProjects(options?: ListOptions): Promise<ResourceList<Claim>>;
  };
  claimSets: ProjectResourceClient<ClaimSet, ClaimSetInput>;
  projectSecrets: ProjectSecretsClient;
}

/**
 * The texts of `Warning` headers (RFC 7234 §5.5: `299 ingot "text"`, comma-separated), as the
 * server sends for soft quotas. Text that does not parse is returned whole rather than dropped.
 */
export function parseWarningHeader(header: string | null | undefined): string[] {
  if (!header) return [];
  const out: string[] = [];
  const re = /\s*(\d{3})\s+\S+\s+"((?:[^"\\]|\\.)*)"(?:\s+"[^"]*")?\s*(?:,|$)/gy;
  let m: RegExpExecArray | null;
  let end = 0;
  while ((m = re.exec(header)) !== null && m[0].length > 0) {
    out.push(m[2]!.replace(/\\(.)/g, '$1'));
    end = re.lastIndex;
  }
  if (end < header.length && header.slice(end).trim() !== '') out.push(header.slice(end).trim());
  return out;
}

const DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

export function createClient(options: ClientOptions): IngotClient {
  const server = options.server.replace(/\/+$/, '');
  let parsedServer: URL;
  try {
    parsedServer = new URL(server);
  } catch {
    throw new ApiError({ status: 0, code: 'INGOT_ERR_CONNECTION', message: `"${options.server}" is not a URL; use the form http://HOST:PORT`, server });
  }
  if (parsedServer.protocol !== 'http:' && parsedServer.protocol !== 'https:') {
    throw new ApiError({ status: 0, code: 'INGOT_ERR_CONNECTION', message: `"${options.server}" must start with http:// or https://`, server });
  }
  const doFetch: FetchLike = options.fetch ?? tlsFetch(options) ?? ((input, init) => fetch(input, init));
  const maxBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  const timeoutMs = options.requestTimeoutMs ?? 60_000;

  function url(path: string, query?: RequestOptions['query']): string {
    const u = new URL(server + path);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) u.searchParams.set(k, String(v));
    return u.toString();
  }

  function headers(extra?: Record<string, string>): Record<string, string> {
    const h: Record<string, string> = { accept: 'application/json', ...extra };
    if (options.token) h.authorization = `Bearer ${options.token}`;
    return h;
  }

  async function send(method: string, path: string, opts: RequestOptions, accept?: string, useTimeout = true): Promise<Response> {
    const init: RequestInit = { method, headers: headers({ ...(accept ? { accept } : {}), ...opts.headers }) };
    if (opts.body !== undefined) {
      init.body = JSON.stringify(opts.body);
      (init.headers as Record<string, string>)['content-type'] = opts.contentType ?? 'application/json';
    }
    const signals: AbortSignal[] = [];
    if (opts.signal) signals.push(opts.signal);
    if (useTimeout) signals.push(AbortSignal.timeout(timeoutMs));
    if (signals.length > 0) init.signal = signals.length === 1 ? signals[0] : AbortSignal.any(signals);
    try {
      return await doFetch(url(path, opts.query), init);
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      if ((err as Error)?.name === 'TimeoutError') {
        throw new ApiError({ status: 0, code: 'INGOT_ERR_TIMEOUT', message: `the Ingot API at ${server} did not answer ${method} ${path} within ${Math.round(timeoutMs / 1000)} s`, server, cause: err });
      }
      throw new ApiError({ status: 0, code: 'INGOT_ERR_CONNECTION', message: `cannot reach the Ingot API at ${server}: ${describeFetchFailure(err)}`, server, cause: err });
    }
  }

  async function readBody(res: Response): Promise<string> {
    const declared = Number(res.headers.get('content-length') ?? '');
    if (Number.isFinite(declared) && declared > maxBytes) {
      await res.body?.cancel().catch(() => undefined);
      throw tooLarge();
    }
    if (!res.body) return '';
    const reader = res.body.getReader();
    const chunks: Uint8Array[] = [];
    let size = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > maxBytes) {
        await reader.cancel().catch(() => undefined);
        throw tooLarge();
      }
      chunks.push(value);
    }
    return Buffer.concat(chunks).toString('utf8');
  }

  function tooLarge(): ApiError {
    return new ApiError({ status: 0, code: 'INGOT_ERR_RESPONSE_TOO_LARGE', message: `the answer from ${server} is larger than ${maxBytes} bytes; ask for smaller pages (--limit)`, server });
  }

  async function errorFrom(res: Response, method: string, path: string): Promise<ApiError> {
    let text = '';
    try {
      text = await readBody(res);
    } catch {
      // the status alone still tells what happened
    }
    let parsed: { code?: unknown; message?: unknown; details?: unknown } | undefined;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    const code = typeof parsed?.code === 'string' ? parsed.code : `HTTP_${res.status}`;
    const message = typeof parsed?.message === 'string' ? parsed.message : `${method} ${path} answered ${res.status} ${res.statusText}`.trim();
    const details = Array.isArray(parsed?.details)
      ? (parsed.details as unknown[]).filter((d): d is { field: string; message: string } => typeof (d as { field?: unknown })?.field === 'string' && typeof (d as { message?: unknown })?.message === 'string')
      : [];
    return new ApiError({ status: res.status, code, message, details, server });
  }

  async function request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<RawResponse<T>> {
    const res = await send(method, path, opts);
    if (!res.ok) throw await errorFrom(res, method, path);
    const text = await readBody(res);
    let body: unknown = undefined;
    if (text.length > 0) {
      try {
        body = JSON.parse(text);
      } catch (err) {
        if ((res.headers.get('content-type') ?? '').includes('json')) {
          throw new ApiError({ status: res.status, code: 'INGOT_ERR_BAD_RESPONSE', message: `${method} ${path} returned JSON that could not be parsed; is ${server} an Ingot API?`, server, cause: err });
        }
        body = text;
      }
    }
    return { status: res.status, headers: res.headers, body: body as T };
  }

  const enc = encodeURIComponent;
  const listQuery = (o: ListOptions = {}) => ({ labelSelector: o.labelSelector, limit: o.limit, continue: o.continue });

  async function* watchPath<T>(path: string, opts: WatchOptions = {}): AsyncIterableIterator<WatchEvent<T>> {
    const parser = new SseParser();
    let lastEventId = opts.lastEventId ?? '';
    let failures = 0;
    const maxAttempts = opts.maxReconnectAttempts ?? Infinity;
    for (;;) {
      if (opts.signal?.aborted) return;
      let lastError: unknown;
      try {
        const res = await send(
          'GET',
          path,
          { query: { watch: 'true', labelSelector: opts.labelSelector }, signal: opts.signal, headers: lastEventId ? { 'last-event-id': lastEventId } : {} },
          'text/event-stream',
          false,
        );
        if (!res.ok) {
          const err = await errorFrom(res, 'GET', `${path}?watch=true`);
          // Client errors will not heal by retrying (bad token, bad selector).
          if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) throw err;
          lastError = err;
        } else if (!(res.headers.get('content-type') ?? '').includes('text/event-stream')) {
          await res.body?.cancel().catch(() => undefined);
          throw new ApiError({ status: res.status, code: 'INGOT_ERR_BAD_RESPONSE', message: `the watch answered ${res.headers.get('content-type') ?? 'no content type'}, not text/event-stream`, server });
        } else if (res.body) {
          failures = 0;
          parser.reset();
          const decoder = new TextDecoder();
          const reader = res.body.getReader();
          try {
            for (;;) {
              const { done, value } = await reader.read();
              if (done) break;
              for (const ev of parser.push(decoder.decode(value, { stream: true }))) {
                lastEventId = ev.id || lastEventId;
                const parsed = parseWatchData<T>(ev.data, ev.event);
                if (parsed) yield { ...parsed, id: ev.id };
              }
            }
          } catch (err) {
            if (opts.signal?.aborted) return;
            lastError = err;
          } finally {
            reader.cancel().catch(() => undefined);
          }
        }
      } catch (err) {
        if (opts.signal?.aborted) return;
        if (err instanceof ApiError && !err.isConnectionError) throw err;
        if (!(err instanceof ApiError)) throw err;
        lastError = err;
      }
      failures++;
      if (failures > maxAttempts) {
        throw lastError instanceof Error ? lastError : new ApiError({ status: 0, code: 'INGOT_ERR_CONNECTION', message: `the watch on ${server} kept closing`, server });
      }
      opts.onReconnect?.({ attempt: failures, lastEventId, error: lastError });
      // A stream that closed cleanly is reopened after the server's `retry:` (or our default);
      // failed connections back off exponentially up to 10 s.
      const base = parser.retryMs ?? opts.reconnectDelayMs ?? 1000;
      const delay = lastError === undefined ? base : Math.min(base * 2 ** Math.max(0, failures - 1), 10_000);
      await sleep(delay, opts.signal);
    }
  }

  async function listAllAt<T>(path: string, o: Omit<ListOptions, 'continue'> = {}): Promise<T[]> {
    const all: T[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < 10_000; page++) {
      const list = (await request<ResourceList<T>>('GET', path, { query: listQuery({ ...o, continue: cursor }) })).body;
      all.push(...list.items);
      cursor = list.metadata?.continue;
      if (!cursor) break;
    }
    return all;
  }

  /** The CRUD routes of resource-routes.ts under `base` (e.g. /api/v1/osimages). */
  function resourceAt<T, I extends { metadata: { name: string } }>(base: string): ResourceClient<T, I> {
    const item = (name: string) => `${base}/${enc(name)}`;
    return {
      list: async (o) => (await request<ResourceList<T>>('GET', base, { query: listQuery(o) })).body,
      listAll: (o) => listAllAt<T>(base, o),
      get: async (name) => (await request<T>('GET', item(name))).body,
      create: async (input) => {
        const res = await request<T>('POST', base, { body: input });
        return { object: res.body, warnings: parseWarningHeader(res.headers.get('warning')) };
      },
      apply: async (input) => {
        const res = await request<T>('PUT', item(input.metadata.name), { body: input });
        return { object: res.body, created: res.status === 201, warnings: parseWarningHeader(res.headers.get('warning')) };
      },
      patch: async (name, patch) => {
        const res = await request<T>('PATCH', item(name), { body: patch, contentType: 'application/merge-patch+json' });
        return { object: res.body, warnings: parseWarningHeader(res.headers.get('warning')) };
      },
      delete: async (name) => {
        const res = await request<T | undefined>('DELETE', item(name));
        return { object: res.body && typeof res.body === 'object' ? res.body : undefined, accepted: res.status === 202 };
      },
      watch: (o) => watchPath<T>(base, o),
    };
  }

  /** A project kind: the same routes under /api/v1/projects/:project/<plural>. */
  function projectResource<T, I extends { metadata: { name: string } }>(plural: string): ProjectResourceClient<T, I> {
    const at = (project: string) => resourceAt<T, I>(`/api/v1/projects/${enc(project)}/${plural}`);
    return {
      list: (project, o) => at(project).list(o),
      listAll: (project, o) => at(project).listAll(o),
      get: (project, name) => at(project).get(name),
      create: (project, input) => at(project).create(input),
      apply: (project, input) => at(project).apply(input),
      patch: (project, name, patch) => at(project).patch(name, patch),
      delete: (project, name) => at(project).delete(name),
      watch: (project, o) => at(project).watch(o),
    };
  }

  const projectSecretsBase = (project: string) => `/api/v1/projects/${enc(project)}/secrets`;

  return {
    server,
    request,
    osImages: resourceAt<OSImage, OSImageInput>('/api/v1/osimages'),
    nodeTypes: {
      ...resourceAt<NodeType, NodeTypeInput>('/api/v1/nodetypes'),
      listForProject: async (project, o) => (await request<ResourceList<NodeType>>('GET', `/api/v1/projects/${enc(project)}/nodetypes`, { query: listQuery(o) })).body,
      getForProject: async (project, name) => (await request<NodeType>('GET', `/api/v1/projects/${enc(project)}/nodetypes/${enc(name)}`)).body,
    },
    projects: resourceAt<Project, ProjectInput>('/api/v1/projects'),
    ipPools: {
      ...resourceAt<IPPool, IPPoolInput>('/api/v1/ippools'),
      addresses: async (name) => (await request<{ items: IPAddressInfo[] }>('GET', `/api/v1/ippools/${enc(name)}/addresses`)).body?.items ?? [],
    },
    claims: {
      ...projectResource<Claim, ClaimInput>('claims'),
      listAllProjects: async (o) => (await request<ResourceList<Claim>>('GET', '/api/v1/claims', { query: listQuery(o) })).body,
    },
    claimSets: projectResource<ClaimSet, ClaimSetInput>('claimsets'),
    projectSecrets: {
      list: async (project, o) => (await request<ResourceList<Secret>>('GET', projectSecretsBase(project), { query: listQuery(o) })).body,
      get: async (project, name) => (await request<Secret>('GET', `${projectSecretsBase(project)}/${enc(name)}`)).body,
      create: async (project, input) => (await request<Secret>('POST', projectSecretsBase(project), { body: input })).body,
      apply: async (project, input) => {
        const res = await request<Secret>('PUT', `${projectSecretsBase(project)}/${enc(input.metadata.name)}`, { body: input });
        return { object: res.body, created: res.status === 201 };
      },
      delete: async (project, name) => {
        await request('DELETE', `${projectSecretsBase(project)}/${enc(name)}`);
      },
    },
    hosts: {
      list: async (o) => (await request<ResourceList<Host>>('GET', '/api/v1/hosts', { query: listQuery(o) })).body,
      listAll: async (o = {}) => {
        const all: Host[] = [];
        let cursor: string | undefined;
        for (let page = 0; page < 10_000; page++) {
          const list = (await request<ResourceList<Host>>('GET', '/api/v1/hosts', { query: listQuery({ ...o, continue: cursor }) })).body;
          all.push(...list.items);
          cursor = list.metadata?.continue;
          if (!cursor) break;
        }
        return all;
      },
      get: async (name) => (await request<Host>('GET', `/api/v1/hosts/${enc(name)}`)).body,
      create: async (input) => (await request<Host>('POST', '/api/v1/hosts', { body: input })).body,
      apply: async (input) => {
        const res = await request<Host>('PUT', `/api/v1/hosts/${enc(input.metadata.name)}`, { body: input });
        return { object: res.body, created: res.status === 201 };
      },
      patch: async (name, patch) =>
        (await request<Host>('PATCH', `/api/v1/hosts/${enc(name)}`, { body: patch, contentType: 'application/merge-patch+json' })).body,
      delete: async (name, o = {}) => {
        const res = o.force ? await request<Host | undefined>('POST', `/api/v1/hosts/${enc(name)}/force-delete`) : await request<Host | undefined>('DELETE', `/api/v1/hosts/${enc(name)}`);
        return res.body && typeof res.body === 'object' ? res.body : undefined;
      },
      events: async (name, o = {}) => {
        const res = await request<HostEvent[] | { items: HostEvent[] }>('GET', `/api/v1/hosts/${enc(name)}/events`, { query: { afterId: o.afterId, limit: o.limit } });
        return Array.isArray(res.body) ? res.body : (res.body?.items ?? []);
      },
      watch: (o) => watchPath<Host>('/api/v1/hosts', o),
    },
    secrets: {
      list: async (o) => (await request<ResourceList<Secret>>('GET', '/api/v1/secrets', { query: listQuery(o) })).body,
      get: async (name) => (await request<Secret>('GET', `/api/v1/secrets/${enc(name)}`)).body,
      create: async (input) => (await request<Secret>('POST', '/api/v1/secrets', { body: input })).body,
      apply: async (input) => {
        const res = await request<Secret>('PUT', `/api/v1/secrets/${enc(input.metadata.name)}`, { body: input });
        return { object: res.body, created: res.status === 201 };
      },
      delete: async (name) => {
        await request('DELETE', `/api/v1/secrets/${enc(name)}`);
      },
      reveal: async (name) => (await request<SecretReveal>('GET', `/api/v1/secrets/${enc(name)}/reveal`)).body,
      rekey: async (options = {}) => (await request<SecretRekeyReport>('POST', '/api/v1/secrets/-/rekey', { body: options })).body,
    },
    tokens: {
      create: async (input) => (await request<CreatedToken>('POST', '/api/v1/tokens', { body: input })).body,
      list: async () => (await request<{ items: TokenInfo[] }>('GET', '/api/v1/tokens')).body?.items ?? [],
      revoke: async (id) => (await request<TokenInfo>('DELETE', `/api/v1/tokens/${enc(id)}`)).body,
    },
    approvals: {
      list: async (o = {}) => (await request<{ items: ApprovalInfo[] }>('GET', '/api/v1/approvals', { query: { state: o.state } })).body?.items ?? [],
      approve: async (id, reason) => (await request<ApprovalInfo>('POST', `/api/v1/approvals/${enc(id)}/approve`, { body: reason !== undefined ? { reason } : {} })).body,
      reject: async (id, reason) => (await request<ApprovalInfo>('POST', `/api/v1/approvals/${enc(id)}/reject`, { body: reason !== undefined ? { reason } : {} })).body,
    },
    audit: {
      list: async (o = {}) =>
        (
          await request<{ items: AuditEvent[] }>('GET', '/api/v1/audit', {
            query: { afterSeq: o.afterSeq, beforeSeq: o.beforeSeq, limit: o.limit, order: o.order, actor: o.actor, action: o.action, outcome: o.outcome },
          })
        ).body?.items ?? [],
      verify: async () => (await request<AuditVerifyResult>('GET', '/api/v1/audit/verify')).body,
    },
  };
}

/** The server sends `data: {"type":"MODIFIED","object":{…}}`; the SSE event name may repeat the type. */
export function parseWatchData<T>(data: string, eventName: string): { type: WatchEventType; object: T } | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(data);
  } catch {
    return undefined; // a keep-alive or a message we do not understand: skip, keep the stream
  }
  if (!parsed || typeof parsed !== 'object') return undefined;
  const p = parsed as { type?: unknown; object?: unknown };
  if (p.object && typeof p.object === 'object') {
    const type = typeof p.type === 'string' ? p.type : eventName !== 'message' ? eventName : 'MODIFIED';
    return { type, object: p.object as T };
  }
  return undefined;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
