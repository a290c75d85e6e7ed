// How the BMC of a lab VM gets a virtual media image: as a real BMC does, it downloads the URL
// it was given (HTTP or HTTPS with certificate verification against the system CAs plus an
// optional CA bundle), up to a size limit, into a file the VM's CD drive then reads.
//
// Where it may connect: loopback, the lab's own address, and the forwarded services on the
// VM network (GUEST_SERVICE_ADDRESS, reached through 127.0.0.1; see guest-network.ts). Any
// other address is refused: the lab runs on developer machines and in CI, where nothing else
// is meant to be reached.
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { chmod, mkdir, rename, rm } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { checkServerIdentity, rootCertificates } from 'node:tls';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { Agent, request } from 'undici';
import { bmcConnectTarget, type PortForward } from './guest-network.js';

/** Agent ISOs with a Node runtime are a few hundred MiB; 2 GiB is a generous ceiling. */
export const DEFAULT_MAX_MEDIA_BYTES = 2 * 1024 ** 3;
export const DEFAULT_MEDIA_TIMEOUT_MS = 300_000;

export interface MediaFetchOptions {
  forwards: readonly PortForward[];
  /** Host names or addresses the lab itself listens on (media served beside it may be fetched). */
  selfHosts?: Iterable<string>;
  /** Extra CA certificates (PEM) trusted for https:// media, besides the system's. */
  caPem?: string;
  maxBytes?: number;
  timeoutMs?: number;
}

/** A media URL the BMC cannot or may not fetch; the message says which and why (shown to the Redfish client). */
export class MediaFetchError extends Error {
  constructor(
    message: string,
    /** True when the request itself is wrong (bad URL, address not allowed): a 4xx, not worth retrying. */
    readonly badRequest: boolean,
  ) {
    super(message);
  }
}

function isLoopback(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  return isIP(host) === 4 && host.startsWith('127.');
}

/** The redacted form of a URL for messages: no user info, no query (it may hold a token). */
export function describeUrl(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}

/**
 * Downloads `rawUrl` into `dir` and returns the file's path (mode 0600). The file appears only
 * once the whole body arrived within the limits; a failure leaves nothing behind.
 */
export async function fetchMediaImage(rawUrl: string, dir: string, opts: MediaFetchOptions): Promise<{ path: string; bytes: number }> {
  let url: URL;
  try {
    url = new URL(rawUrl);
  } catch {
    throw new MediaFetchError('the virtual media Image is not a URL', true);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new MediaFetchError('the virtual media Image must be an http:// or https:// URL', true);
  if (url.username || url.password) throw new MediaFetchError('the virtual media Image URL must not carry credentials', true);
  const target = bmcConnectTarget(url, opts.forwards);
  const self = new Set([...(opts.selfHosts ?? [])].map((h) => h.replace(/^\[|\]$/g, '')));
  if (!target.viaForward && !isLoopback(target.host) && !self.has(target.host)) {
    throw new MediaFetchError(
      `the lab BMC fetches media only from loopback, its own address or the VM network's forwarded ports (${opts.forwards.map((f) => f.guestPort).join(', ')}), not ${url.host}`,
      true,
    );
  }
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_MEDIA_BYTES;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_MEDIA_TIMEOUT_MS;
  const nameToVerify = url.hostname.replace(/^\[|\]$/g, '');
  const agent = new Agent({
    connect: {
      ...(opts.caPem ? { ca: [...rootCertificates, opts.caPem] } : {}),
      rejectUnauthorized: true,
      // Through a forward the socket goes to 127.0.0.1, but the certificate must name the host in the URL.
      ...(target.viaForward ? { checkServerIdentity: (_host: string, cert: Parameters<typeof checkServerIdentity>[1]) => checkServerIdentity(nameToVerify, cert) } : {}),
    },
    connectTimeout: 10_000,
  });
  const origin = `${url.protocol}//${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}`;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const partial = join(dir, `incoming-${randomBytes(6).toString('hex')}.part`);
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const res = await request(`${origin}${url.pathname}${url.search}`, {
      dispatcher: agent,
      method: 'GET',
      headers: { host: url.host, accept: '*/*' },
      signal,
    });
    // Redirects are not followed (undici's request does not): a BMC fetches the URL it was given.
    if (res.statusCode !== 200) {
      await res.body.dump().catch(() => undefined);
      throw new MediaFetchError(`fetching ${describeUrl(url)} answered HTTP ${res.statusCode}`, res.statusCode >= 400 && res.statusCode < 500);
    }
    const declared = Number(res.headers['content-length'] ?? NaN);
    if (Number.isFinite(declared) && declared > maxBytes) {
      await res.body.dump({ limit: 0 }).catch(() => undefined);
      throw new MediaFetchError(`${describeUrl(url)} is ${declared} bytes; the lab BMC takes media up to ${maxBytes} bytes`, true);
    }
    let bytes = 0;
    const limit = new Transform({
      transform(chunk: Buffer, _enc, done) {
        bytes += chunk.length;
        if (bytes > maxBytes) return done(new MediaFetchError(`${describeUrl(url)} is larger than ${maxBytes} bytes, the lab BMC's limit for media`, true));
        done(null, chunk);
      },
    });
    await pipeline(res.body, limit, createWriteStream(partial, { mode: 0o600 }));
    if (bytes === 0) throw new MediaFetchError(`${describeUrl(url)} is empty`, true);
    await chmod(partial, 0o600);
    const path = join(dir, 'current.iso');
    await rename(partial, path);
    return { path, bytes };
  } catch (err) {
    await rm(partial, { force: true });
    if (err instanceof MediaFetchError) throw err;
    const e = err as Error & { code?: string; cause?: { code?: string; message?: string } };
    const why = e.name === 'TimeoutError' || e.name === 'AbortError' ? `not complete within ${Math.round(timeoutMs / 1000)} s` : (e.cause?.message ?? e.message);
    throw new MediaFetchError(`cannot fetch ${describeUrl(url)}: ${why}`, false);
  } finally {
    await agent.close().catch(() => undefined);
  }
}
