// Sends audit events and alerts to an HTTP endpoint (a SIEM, a chat bridge, an incident
// tool) as JSON POSTs. It must never slow the API down or lose the database's copy, so:
// - sendEvent/sendAlert only queue; one worker delivers in order, one message at a time;
// - the queue is bounded: when full the OLDEST message is dropped, counted and logged (the
//   database keeps every event; a receiver can catch up with `ingot audit list --after`);
// - each attempt has a timeout; failures (network, timeout, 408, 429, 5xx) are retried with
//   "full jitter" exponential backoff (delay = random * min(max, base * 2^attempt), AWS
//   Architecture Blog, "Exponential Backoff And Jitter"), honouring Retry-After; other 4xx
//   are permanent (retrying a 400 or 401 cannot help) and logged.
// Authenticity: with a shared secret each POST carries
//   X-Ingot-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
// (the timestamp inside the MAC lets receivers refuse replays), and X-Ingot-Delivery, a
// uuid that stays the same across retries of one message so receivers can de-duplicate.
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { Agent, request, type Dispatcher } from 'undici';
import type { StoredAuditEvent } from '../../../model/audit-event.js';
import type { AlertMessage } from '../alert-rules.js';
import { describeUrl, sleep, waitUntil, type AuditSink, type AuditSinkStats } from './audit-sink.js';

export const SIGNATURE_HEADER = 'x-ingot-signature';
export const DELIVERY_HEADER = 'x-ingot-delivery';

export interface WebhookSinkOptions {
  url: string;
  /** Shared secret for the HMAC signature header (never logged). */
  secret?: string | Buffer;
  /** Default 1000 messages. */
  maxQueue?: number;
  /** Attempts per message before giving up; default 10. */
  maxAttempts?: number;
  /** Backoff base and cap; defaults 500 ms and 60 s. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Per-attempt limit for connecting, response headers and body; default 10 s. */
  timeoutMs?: number;
  /** For TLS settings (a private CA); a keep-alive Agent by default. */
  dispatcher?: Dispatcher;
  log?: (message: string) => void;
  /** For tests: the jitter source, 0 <= random() < 1. */
  random?: () => number;
}

/** What goes over the wire. */
export type WebhookMessage = { type: 'event'; event: StoredAuditEvent } | AlertMessage;

interface Queued {
  delivery: string;
  body: string;
}

export interface WebhookSink extends AuditSink {
  sendAlert(alert: AlertMessage): void;
}

export function signWebhookBody(secret: string | Buffer, body: string, timestampSeconds: number): string {
  const mac = createHmac('sha256', secret).update(`${timestampSeconds}.${body}`, 'utf8').digest('hex');
  return `t=${timestampSeconds},v1=${mac}`;
}

/** For receivers (and tests): checks a signature header and that its timestamp is recent. */
export function verifyWebhookSignature(
  secret: string | Buffer,
  header: string | undefined,
  body: string,
  options: { toleranceSeconds?: number; nowSeconds?: number } = {},
): boolean {
  if (header === undefined) return false;
  const parts = Object.fromEntries(header.split(',').map((p) => p.split('=', 2) as [string, string]));
  const t = Number(parts.t);
  const v1 = parts.v1;
  if (!Number.isSafeInteger(t) || typeof v1 !== 'string' || !/^[0-9a-f]{64}$/.test(v1)) return false;
  const now = options.nowSeconds ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - t) > (options.toleranceSeconds ?? 300)) return false;
  const expected = Buffer.from(signWebhookBody(secret, body, t).slice(`t=${t},v1=`.length), 'hex');
  return timingSafeEqual(expected, Buffer.from(v1, 'hex'));
}

export function createWebhookSink(options: WebhookSinkOptions): WebhookSink {
  let url: URL;
  try {
    url = new URL(options.url);
  } catch {
    throw new Error('audit webhook URL is not a valid URL; give an http:// or https:// URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`audit webhook URL must be http:// or https://, not ${url.protocol}`);
  const where = describeUrl(url);
  const log = options.log ?? (() => {});
  const maxQueue = positive(options.maxQueue ?? 1000, 'maxQueue');
  const maxAttempts = positive(options.maxAttempts ?? 10, 'maxAttempts');
  const baseDelayMs = options.baseDelayMs ?? 500;
  const maxDelayMs = options.maxDelayMs ?? 60_000;
  const timeoutMs = positive(options.timeoutMs ?? 10_000, 'timeoutMs');
  const random = options.random ?? Math.random;
  const ownDispatcher = options.dispatcher === undefined;
  const dispatcher = options.dispatcher ?? new Agent({ connect: { timeout: timeoutMs }, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  const secret = options.secret;

  const queue: Queued[] = [];
  const counts = { delivered: 0, dropped: 0, failed: 0 };
  let inFlight = false;
  let closed = false;
  const stop = new AbortController();
  let worker: Promise<void> | undefined;

  function enqueue(message: WebhookMessage): void {
    if (closed) {
      counts.dropped += 1;
      return;
    }
    let body: string;
    try {
      body = JSON.stringify(message);
    } catch (error) {
      counts.failed += 1;
      log(`audit webhook ${where}: could not serialize a message: ${(error as Error).message}`);
      return;
    }
    if (queue.length >= maxQueue) {
      queue.shift();
      counts.dropped += 1;
      if (counts.dropped === 1 || counts.dropped % 100 === 0) {
        log(`audit webhook ${where}: queue full (${maxQueue} messages), dropped the oldest; ${counts.dropped} dropped so far (the database keeps every event)`);
      }
    }
    queue.push({ delivery: randomUUID(), body });
    worker ??= pump().finally(() => {
      worker = undefined;
    });
  }

  async function pump(): Promise<void> {
    while (queue.length > 0 && !stop.signal.aborted) {
      const message = queue.shift() as Queued;
      inFlight = true;
      try {
        await deliver(message);
      } finally {
        inFlight = false;
      }
    }
  }

  async function deliver(message: Queued): Promise<void> {
    for (let attempt = 0; attempt < maxAttempts; attempt++) {
      if (stop.signal.aborted) break;
      const result = await attemptOnce(message);
      if (result.kind === 'delivered') {
        counts.delivered += 1;
        return;
      }
      if (result.kind === 'permanent') {
        counts.failed += 1;
        log(`audit webhook ${where}: refused a message with HTTP ${result.status}; not retrying (check the receiver's configuration)`);
        return;
      }
      if (attempt + 1 >= maxAttempts) break;
      const backoff = Math.floor(random() * Math.min(maxDelayMs, baseDelayMs * 2 ** attempt));
      const delay = result.retryAfterMs === undefined ? backoff : Math.min(maxDelayMs, Math.max(backoff, result.retryAfterMs));
      await sleep(delay, stop.signal);
    }
    counts.failed += 1;
    log(`audit webhook ${where}: gave up on a message after ${maxAttempts} attempts or at shutdown`);
  }

  type Attempt = { kind: 'delivered' } | { kind: 'permanent'; status: number } | { kind: 'retry'; retryAfterMs?: number };

  async function attemptOnce(message: Queued): Promise<Attempt> {
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': 'ingot-audit-webhook',
      [DELIVERY_HEADER]: message.delivery,
    };
    if (secret !== undefined) headers[SIGNATURE_HEADER] = signWebhookBody(secret, message.body, Math.floor(Date.now() / 1000));
    try {
      const response = await request(url, {
        method: 'POST',
        headers,
        body: message.body,
        dispatcher,
        signal: AbortSignal.any([AbortSignal.timeout(timeoutMs), stop.signal]),
      });
      await response.body.dump({ limit: 64 * 1024 }).catch(() => {});
      const status = response.statusCode;
      if (status >= 200 && status < 300) return { kind: 'delivered' };
      if (status === 408 || status === 429 || status >= 500) {
        const retryAfter = Number(response.headers['retry-after']);
        return Number.isFinite(retryAfter) && retryAfter >= 0 ? { kind: 'retry', retryAfterMs: retryAfter * 1000 } : { kind: 'retry' };
      }
      return { kind: 'permanent', status };
    } catch (error) {
      if (!stop.signal.aborted) log(`audit webhook ${where}: delivery attempt failed: ${(error as Error).message}; will retry`);
      return { kind: 'retry' };
    }
  }

  const stats = (): AuditSinkStats => ({ queued: queue.length + (inFlight ? 1 : 0), ...counts });

  return {
    name: `webhook ${where}`,
    sendEvent(event) {
      enqueue({ type: 'event', event });
    },
    sendAlert(alert) {
      enqueue(alert);
    },
    stats,
    flush(flushTimeoutMs = 30_000) {
      return waitUntil(() => queue.length === 0 && !inFlight, flushTimeoutMs);
    },
    async close(closeTimeoutMs = 5_000) {
      closed = true;
      const drained = await waitUntil(() => queue.length === 0 && !inFlight, closeTimeoutMs);
      if (!drained) {
        const left = queue.length + (inFlight ? 1 : 0);
        log(`audit webhook ${where}: closing with ${left} message(s) undelivered`);
        counts.dropped += queue.length;
        queue.length = 0;
      }
      stop.abort();
      await worker;
      if (ownDispatcher) await dispatcher.close().catch(() => {});
    },
  };
}

function positive(value: number, field: string): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new Error(`audit webhook ${field} must be a positive integer, not ${String(value)}`);
  return value;
}
