import { chmodSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStore } from '../../store/open-store.js';
import type { NewAuditEvent, Store, StoredAuditEvent } from '../../store/store.js';
import { parseAlertRules } from './alert-rules.js';
import { verifyAuditChain } from './audit-hash.js';
import { createAuditWriter } from './audit-writer.js';
import { waitUntil } from './sinks/audit-sink.js';
import { createJsonlFileSink } from './sinks/jsonl-file-sink.js';
import { createWebhookSink, DELIVERY_HEADER, SIGNATURE_HEADER, verifyWebhookSignature, type WebhookMessage } from './sinks/webhook-sink.js';

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
}

/** A real HTTP receiver on 127.0.0.1; `respond` decides per request (n counts from 1). */
async function receiver(respond: (res: ServerResponse, n: number) => void) {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      respond(res, received.length);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/audit?token=not-logged`,
    received,
    messages: () => received.map((r) => JSON.parse(r.body) as WebhookMessage),
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

function event(n: number, extra: Partial<NewAuditEvent> = {}): NewAuditEvent {
  return { actor: `tok-${n}`, roles: ['platform-admin'], action: 'host:update', target: { kind: 'Host', name: `h${n}` }, outcome: 'succeeded', requestId: `req-${n}`, ...extra };
}

let dir: string;
let store: Store;
let cleanups: Array<() => Promise<void>>;
beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ingot-audit-writer-'));
  store = await openStore({ database: join(dir, 'ingot.db') });
  cleanups = [];
});
afterEach(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await store.close().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
});

describe('webhook sink', () => {
  it('retries a failing receiver with backoff and delivers every event, in order, signed, one delivery id per message', async () => {
    // 1. The receiver answers 503 to its first three requests, then 204.
    const hook = await receiver((res, n) => {
      res.statusCode = n <= 3 ? 503 : 204;
      res.end();
    });
    cleanups.push(hook.close);
    const logs: string[] = [];
    const sink = createWebhookSink({ url: hook.url, secret: 's3cret', baseDelayMs: 2, maxDelayMs: 20, random: () => 0.5, log: (m) => logs.push(m) });
    cleanups.push(() => sink.close(1000));
    const writer = createAuditWriter({ store, sinks: [sink] });
    // 2. Three events recorded while the receiver fails.
    const stored: StoredAuditEvent[] = [];
    for (let n = 1; n <= 3; n++) stored.push(await writer.record(event(n)));
    // 3. All arrive.
    expect(await writer.flush(10_000)).toBe(true);
    expect(sink.stats()).toEqual({ queued: 0, delivered: 3, dropped: 0, failed: 0 });
    expect(hook.received).toHaveLength(6);
    const delivered = hook.received.slice(3).map((r) => JSON.parse(r.body) as WebhookMessage);
    expect(delivered).toEqual(stored.map((e) => ({ type: 'event', event: e })));
    // The first message was tried four times under one delivery id.
    const ids = hook.received.map((r) => r.headers[DELIVERY_HEADER]);
    expect(new Set(ids.slice(0, 4)).size).toBe(1);
    expect(new Set(ids.slice(3)).size).toBe(3);
    for (const r of hook.received) {
      expect(r.headers['content-type']).toBe('application/json');
      expect(verifyWebhookSignature('s3cret', r.headers[SIGNATURE_HEADER] as string, r.body)).toBe(true);
      expect(verifyWebhookSignature('wrong', r.headers[SIGNATURE_HEADER] as string, r.body)).toBe(false);
      expect(verifyWebhookSignature('s3cret', r.headers[SIGNATURE_HEADER] as string, `${r.body} `)).toBe(false);
    }
    expect(logs.join('\n')).not.toContain('not-logged');
    expect(logs.join('\n')).not.toContain('s3cret');
  });

  it('a hanging receiver never blocks record(); attempts time out and are retried with the same delivery id', async () => {
    const hook = await receiver(() => {
      /* never answers */
    });
    cleanups.push(hook.close);
    const logs: string[] = [];
    const sink = createWebhookSink({ url: hook.url, timeoutMs: 200, baseDelayMs: 1, maxDelayMs: 5, random: () => 0, log: (m) => logs.push(m) });
    const writer = createAuditWriter({ store, sinks: [sink] });
    // 1. record() resolves with the stored event although the receiver holds the request.
    const first = await writer.record(event(1));
    expect(first.seq).toBe(1);
    expect(await waitUntil(() => hook.received.length >= 1, 10_000)).toBe(true);
    // 2. While that request hangs, more records still resolve and are stored.
    const second = await writer.record(event(2));
    expect(second.seq).toBe(2);
    expect((await store.listAuditEvents()).map((e) => e.seq)).toEqual([1, 2]);
    expect(sink.stats().delivered).toBe(0);
    // 3. The attempt times out and is retried: same delivery id.
    expect(await waitUntil(() => hook.received.length >= 2, 10_000)).toBe(true);
    expect(hook.received[1]?.headers[DELIVERY_HEADER]).toBe(hook.received[0]?.headers[DELIVERY_HEADER]);
    expect(logs.some((m) => m.includes('will retry'))).toBe(true);
    // 4. Closing gives up on what is left instead of waiting forever.
    await writer.close(100);
    expect(sink.stats().delivered).toBe(0);
    expect(sink.stats().queued).toBe(0);
  });

  it('drops the oldest message when its queue is full, counts and logs it', async () => {
    const hook = await receiver(() => {});
    cleanups.push(hook.close);
    const logs: string[] = [];
    const sink = createWebhookSink({ url: hook.url, maxQueue: 2, log: (m) => logs.push(m) });
    cleanups.push(() => sink.close(50));
    const events = [];
    for (let n = 1; n <= 6; n++) events.push(await store.appendAuditEvent(event(n)));
    // The first goes in flight at once; two wait; three are dropped oldest-first.
    for (const e of events) sink.sendEvent(e);
    expect(sink.stats()).toMatchObject({ queued: 3, dropped: 3 });
    expect(logs.filter((m) => m.includes('queue full'))).toHaveLength(1);
    expect(logs[0]).toContain('http://127.0.0.1');
    expect(logs[0]).not.toContain('token=');
  });

  it('does not retry a permanent refusal (400), and counts it', async () => {
    const hook = await receiver((res) => {
      res.statusCode = 400;
      res.end('bad');
    });
    cleanups.push(hook.close);
    const logs: string[] = [];
    const sink = createWebhookSink({ url: hook.url, baseDelayMs: 1, log: (m) => logs.push(m) });
    cleanups.push(() => sink.close(1000));
    sink.sendEvent(await store.appendAuditEvent(event(1)));
    expect(await sink.flush(10_000)).toBe(true);
    expect(hook.received).toHaveLength(1);
    expect(sink.stats()).toMatchObject({ delivered: 0, failed: 1 });
    expect(logs.some((m) => m.includes('HTTP 400'))).toBe(true);
  });

  it('refuses a URL that is not http(s)', () => {
    expect(() => createWebhookSink({ url: 'file:///etc/passwd' })).toThrow(/http/);
    expect(() => createWebhookSink({ url: 'not a url' })).toThrow(/valid URL/);
  });
});

describe('audit writer', () => {
  it('sends matched alerts to the webhook as {type: alert, rule, severity, event}, and logs them', async () => {
    const hook = await receiver((res) => res.end());
    cleanups.push(hook.close);
    const sink = createWebhookSink({ url: hook.url });
    const file = createJsonlFileSink({ path: join(dir, 'audit.jsonl') });
    const logs: string[] = [];
    const rules = parseAlertRules(readFileSync(new URL('../../../docs/examples/alert-rules.yaml', import.meta.url), 'utf8'));
    const writer = createAuditWriter({ store, sinks: [sink, file], alertRules: rules, log: (m) => logs.push(m) });
    cleanups.push(() => writer.close(1000));
    const byAdmin = await writer.record(event(1, { action: 'host:delete' }));
    const byController = await writer.record(event(2, { roles: ['controller'] }));
    expect(await writer.flush(10_000)).toBe(true);
    expect(hook.messages()).toEqual([
      { type: 'event', event: byAdmin },
      { type: 'alert', rule: 'host-changed-by-non-controller', severity: 'high', event: byAdmin },
      { type: 'event', event: byController },
    ]);
    expect(logs.filter((m) => m.includes('audit alert'))).toHaveLength(1);
    // The file gets events only.
    const lines = readFileSync(join(dir, 'audit.jsonl'), 'utf8').trim().split('\n');
    expect(lines.map((l) => JSON.parse(l))).toEqual([byAdmin, byController]);
    // Rules can be replaced at run time.
    writer.setAlertRules([]);
    await writer.record(event(3, { action: 'host:delete' }));
    expect(await writer.flush(10_000)).toBe(true);
    expect(hook.messages().filter((m) => m.type === 'alert')).toHaveLength(1);
  });

  it('fails record() when the event cannot be stored, and sends nothing', async () => {
    const hook = await receiver((res) => res.end());
    cleanups.push(hook.close);
    const sink = createWebhookSink({ url: hook.url });
    cleanups.push(() => sink.close(100));
    const writer = createAuditWriter({ store, sinks: [sink] });
    await expect(writer.record(event(1, { actor: '' }))).rejects.toThrow(/actor/);
    await store.close();
    await expect(writer.record(event(2))).rejects.toThrow(/closed/);
    expect(sink.stats()).toEqual({ queued: 0, delivered: 0, dropped: 0, failed: 0 });
  });

  it('appendIn() commits with the caller transaction; publish() after commit', async () => {
    const file = createJsonlFileSink({ path: join(dir, 'tx.jsonl') });
    const writer = createAuditWriter({ store, sinks: [file] });
    cleanups.push(() => writer.close(1000));
    await expect(
      store.transaction(async (tx) => {
        await writer.appendIn(tx, event(1));
        throw new Error('rolled back');
      }),
    ).rejects.toThrow('rolled back');
    const stored = await store.transaction(async (tx) => writer.appendIn(tx, event(2)));
    writer.publish(stored);
    expect(await writer.flush(10_000)).toBe(true);
    expect(stored.seq).toBe(1);
    expect(readFileSync(join(dir, 'tx.jsonl'), 'utf8')).toBe(`${JSON.stringify(stored)}\n`);
  });
});

describe('JSON-lines file sink', () => {
  it('appends one line per event to a 0600 file; the lines verify as a chain', async () => {
    const path = join(dir, 'logs', 'audit.jsonl');
    const file = createJsonlFileSink({ path });
    const writer = createAuditWriter({ store, sinks: [file] });
    cleanups.push(() => writer.close(1000));
    const stored = [];
    for (let n = 1; n <= 5; n++) stored.push(await writer.record(event(n)));
    expect(await writer.flush(10_000)).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const lines = readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as StoredAuditEvent);
    expect(lines).toEqual(stored);
    expect(await verifyAuditChain(lines, { expectedHead: await store.getAuditHead() })).toMatchObject({ ok: true, count: 5 });
    expect(file.stats()).toEqual({ queued: 0, delivered: 5, dropped: 0, failed: 0 });
  });

  it('tightens a looser existing file, and reopens the path after rotation', async () => {
    const path = join(dir, 'audit.jsonl');
    writeFileSync(path, '', { mode: 0o644 });
    chmodSync(path, 0o644);
    const logs: string[] = [];
    const file = createJsonlFileSink({ path, fsync: 'none', log: (m) => logs.push(m) });
    cleanups.push(() => file.close(1000));
    file.sendEvent(await store.appendAuditEvent(event(1)));
    expect(await file.flush(10_000)).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(logs.some((m) => m.includes('tightened'))).toBe(true);
    renameSync(path, `${path}.1`);
    file.reopen();
    file.sendEvent(await store.appendAuditEvent(event(2)));
    expect(await file.flush(10_000)).toBe(true);
    expect(readFileSync(`${path}.1`, 'utf8').trim().split('\n')).toHaveLength(1);
    expect((JSON.parse(readFileSync(path, 'utf8')) as StoredAuditEvent).seq).toBe(2);
  });

  it('a write failure is logged and counted; record() still succeeds', async () => {
    const path = join(dir, 'is-a-directory');
    mkdirSync(path);
    const logs: string[] = [];
    const file = createJsonlFileSink({ path, log: (m) => logs.push(m) });
    const writer = createAuditWriter({ store, sinks: [file] });
    cleanups.push(() => writer.close(1000));
    expect((await writer.record(event(1))).seq).toBe(1);
    expect(await writer.flush(10_000)).toBe(true);
    expect(file.stats()).toMatchObject({ delivered: 0, failed: 1 });
    expect(logs.some((m) => m.includes('could not write 1 event'))).toBe(true);
  });
});
