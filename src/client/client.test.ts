// The client against small real HTTP servers on 127.0.0.1 (node:http), scripted per test.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ApiError } from './api-error.js';
import { createClient } from './client.js';

type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void;
const servers: Server[] = [];

async function serve(handler: Handler): Promise<string> {
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => handler(req, res, body));
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

const host = (name: string, state: string, rv = '1') => ({
  apiVersion: 'ingot.dev/v1',
  kind: 'Host',
  metadata: { name, uid: 'u-' + name, labels: {}, annotations: {}, resourceVersion: rv, createdAt: '2026-01-01T00:00:00Z', updatedAt: '2026-01-01T00:00:00Z' },
  spec: {},
  status: { provisioning: { state }, poweredOn: false, errorType: '', errorMessage: '', errorCount: 0, operationHistory: {}, conditions: [] },
});

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

describe('createClient', () => {
  it('sends the bearer token, the merge-patch content type, and tells create (201) from update (200)', async () => {
    const seen: Array<{ method?: string; url?: string; auth?: string; type?: string; body: string }> = [];
    let exists = false;
    const server = await serve((req, res, body) => {
      seen.push({ method: req.method, url: req.url, auth: req.headers.authorization, type: req.headers['content-type'], body });
      if (req.method === 'PUT') {
        json(res, exists ? 200 : 201, host('n1', 'registering'));
        exists = true;
      } else json(res, 200, host('n1', 'registering'));
    });
    const client = createClient({ server: server + '/', token: 'ingot_abc' });
    const input = { metadata: { name: 'n1' }, spec: {} };
    expect((await client.hosts.apply(input)).created).toBe(true);
    expect((await client.hosts.apply(input)).created).toBe(false);
    await client.hosts.patch('n1', { spec: { online: true } });
    expect(seen.map((s) => `${s.method} ${s.url}`)).toEqual(['PUT /api/v1/hosts/n1', 'PUT /api/v1/hosts/n1', 'PATCH /api/v1/hosts/n1']);
    expect(seen.every((s) => s.auth === 'Bearer ingot_abc')).toBe(true);
    expect(seen[2]!.type).toBe('application/merge-patch+json');
    expect(JSON.parse(seen[2]!.body)).toEqual({ spec: { online: true } });
  });

  it('turns error bodies into ApiError with status, code, message and details', async () => {
    const server = await serve((_req, res) =>
      json(res, 400, { code: 'INGOT_ERR_VALIDATION', message: 'spec.bogus: unknown field', details: [{ field: 'spec.bogus', message: 'unknown field' }] }),
    );
    const err = await createClient({ server, token: 't' }).hosts.get('x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 400, code: 'INGOT_ERR_VALIDATION', message: 'spec.bogus: unknown field', details: [{ field: 'spec.bogus', message: 'unknown field' }] });
  });

  it('reports a refused connection as INGOT_ERR_CONNECTION naming the server', async () => {
    const server = await serve((_req, res) => json(res, 200, {}));
    const s = servers.pop()!;
    await new Promise((r) => s.close(r));
    const err = (await createClient({ server, token: 't' }).hosts.list().catch((e: unknown) => e)) as ApiError;
    expect(err).toBeInstanceOf(ApiError);
    expect(err.code).toBe('INGOT_ERR_CONNECTION');
    expect(err.status).toBe(0);
    expect(err.message).toBe(`cannot reach the Ingot API at ${server}: connection refused`);
  });

  it('refuses responses larger than maxResponseBytes, declared or streamed', async () => {
    const big = JSON.stringify({ items: [], pad: 'x'.repeat(5000) });
    const server = await serve((req, res) => {
      if (req.url?.includes('chunked')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write(big.slice(0, 2500));
        res.end(big.slice(2500));
      } else json(res, 200, JSON.parse(big));
    });
    const client = createClient({ server, token: 't', maxResponseBytes: 1000 });
    await expect(client.request('GET', '/api/v1/hosts')).rejects.toMatchObject({ code: 'INGOT_ERR_RESPONSE_TOO_LARGE' });
    await expect(client.request('GET', '/chunked')).rejects.toMatchObject({ code: 'INGOT_ERR_RESPONSE_TOO_LARGE' });
    const roomy = createClient({ server, token: 't', maxResponseBytes: 10_000 });
    expect((await roomy.request<{ pad: string }>('GET', '/chunked')).body.pad.length).toBe(5000);
  });

  it('follows continue cursors in listAll', async () => {
    const server = await serve((req, res) => {
      const u = new URL(req.url!, 'http://x');
      const cont = u.searchParams.get('continue');
      if (!cont) json(res, 200, { apiVersion: 'ingot.dev/v1', kind: 'HostList', items: [host('a', 'available')], metadata: { continue: 'p2' } });
      else json(res, 200, { apiVersion: 'ingot.dev/v1', kind: 'HostList', items: [host('b', 'available')], metadata: {} });
    });
    const all = await createClient({ server, token: 't' }).hosts.listAll({ labelSelector: 'rack=r1' });
    expect(all.map((h) => h.metadata.name)).toEqual(['a', 'b']);
  });

  it('watch parses events and reconnects with Last-Event-ID after the stream drops', async () => {
    const lastIds: Array<string | undefined> = [];
    let connection = 0;
    const server = await serve((req, res) => {
      lastIds.push(req.headers['last-event-id'] as string | undefined);
      connection++;
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      if (connection === 1) {
        res.write('retry: 10\n\n');
        res.write(`id: 1\ndata: ${JSON.stringify({ type: 'ADDED', object: host('a', 'registering') })}\n\n`);
        // a multi-line data field, split over two writes
        const obj = JSON.stringify({ type: 'MODIFIED', object: host('a', 'inspecting', '2') }, null, 1).split('\n');
        res.write(`id: 2\ndata: ${obj.slice(0, 3).join('\ndata: ')}\n`);
        res.write(`data: ${obj.slice(3).join('\ndata: ')}\n\n`);
        // half an event, then the connection dies
        res.write('id: 3\ndata: {"type":"MODI');
        setTimeout(() => res.destroy(), 20);
      } else {
        res.write(`id: 4\ndata: ${JSON.stringify({ type: 'DELETED', object: host('a', 'deleting', '4') })}\n\n`);
      }
    });
    const client = createClient({ server, token: 't' });
    const seen: string[] = [];
    const ac = new AbortController();
    const reconnects: string[] = [];
    for await (const ev of client.hosts.watch({ signal: ac.signal, onReconnect: (i) => reconnects.push(i.lastEventId) })) {
      seen.push(`${ev.id}:${ev.type}:${ev.object.status.provisioning.state}`);
      if (ev.type === 'DELETED') ac.abort();
    }
    expect(seen).toEqual(['1:ADDED:registering', '2:MODIFIED:inspecting', '4:DELETED:deleting']);
    expect(lastIds).toEqual([undefined, '2']);
    expect(reconnects).toEqual(['2']);
  });

  it('watch gives up on a refused token instead of retrying', async () => {
    let calls = 0;
    const server = await serve((_req, res) => {
      calls++;
      json(res, 401, { code: 'INGOT_ERR_UNAUTHENTICATED', message: 'the token is not valid' });
    });
    const it = createClient({ server, token: 'bad' }).hosts.watch();
    await expect(it.next()).rejects.toMatchObject({ status: 401, code: 'INGOT_ERR_UNAUTHENTICATED' });
    expect(calls).toBe(1);
  });
});

describe('createClient tokens, audit and secret reveal', () => {
  it('speaks the routes with the right methods, paths, bodies and query parameters', async () => {
    const seen: string[] = [];
    const server = await serve((req, res, body) => {
      seen.push(`${req.method} ${req.url}${body ? ' ' + body : ''}`);
      const path = (req.url ?? '').split('?')[0];
      if (req.method === 'POST' && path === '/api/v1/tokens') return json(res, 201, { id: 'ab-1', roles: ['platform-reader'], token: 'ingot_once' });
      if (path === '/api/v1/tokens') return json(res, 200, { items: [{ id: 'ab-1' }] });
      if (req.method === 'DELETE') return json(res, 200, { id: 'ab-1', revokedAt: '2026-01-01T00:00:00Z' });
      if (path === '/api/v1/audit') return json(res, 200, { items: [{ seq: 3 }, { seq: 2 }] });
      if (path === '/api/v1/audit/verify') return json(res, 200, { ok: false, seq: 2, id: 'e2', problem: 'hash-mismatch', message: 'edited', count: 1 });
      if (path === '/api/v1/secrets/bmc%201/reveal') return json(res, 403, { code: 'INGOT_ERR_FORBIDDEN', message: 'action secret:reveal is not allowed' });
      json(res, 404, { code: 'INGOT_ERR_NOT_FOUND', message: 'no' });
    });
    const client = createClient({ server, token: 'ingot_abc' });
    expect((await client.tokens.create({ roles: ['platform-reader'], description: 'ci', expiresInSeconds: 3600 })).token).toBe('ingot_once');
    expect(await client.tokens.list()).toEqual([{ id: 'ab-1' }]);
    expect((await client.tokens.revoke('ab-1')).revokedAt).toBe('2026-01-01T00:00:00Z');
    expect((await client.audit.list({ actor: 'a b', action: 'secret:create', limit: 2, order: 'desc', afterSeq: 1 })).map((e) => e.seq)).toEqual([3, 2]);
    const verdict = await client.audit.verify();
    expect(verdict.ok).toBe(false);
    if (!verdict.ok) expect(verdict).toMatchObject({ seq: 2, id: 'e2', problem: 'hash-mismatch' });
    const refused = await client.secrets.reveal('bmc 1').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ApiError);
    expect(refused).toMatchObject({ status: 403, code: 'INGOT_ERR_FORBIDDEN' });
    expect(seen).toEqual([
      'POST /api/v1/tokens {"roles":["platform-reader"],"description":"ci","expiresInSeconds":3600}',
      'GET /api/v1/tokens',
      'DELETE /api/v1/tokens/ab-1',
      'GET /api/v1/audit?afterSeq=1&limit=2&order=desc&actor=a+b&action=secret%3Acreate',
      'GET /api/v1/audit/verify',
      'GET /api/v1/secrets/bmc%201/reveal',
    ]);
  });
});
