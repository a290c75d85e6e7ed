// waitForHostState against a scripted API on 127.0.0.1: the host's state is advanced by the
// test, and the server serves it both by GET (poll) and on an SSE watch.
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createClient } from './client.js';
import { HostFailedError, WaitTimeoutError, waitForHostState, waitForHostStates } from './wait-for-host-state.js';

interface FakeApi {
  url: string;
  set(state: string | undefined, extra?: Record<string, unknown>): void;
  gets: number;
  /** Open watch streams: a test advances the host only once the waiter is listening. */
  readonly watchers: number;
}

// Waits for a condition of the fake API instead of a fixed delay, so a loaded machine
// cannot make the waiter miss a state it was meant to see.
async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((r) => setTimeout(r, 5));
}

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

async function fakeApi(options: { watch: boolean }): Promise<FakeApi> {
  let rv = 1;
  let current: Record<string, unknown> | undefined;
  const streams = new Set<ServerResponse>();
  const api: FakeApi = {
    url: '',
    gets: 0,
    get watchers() {
      return streams.size;
    },
    set(state, extra = {}) {
      rv++;
      const type = state === undefined ? 'DELETED' : 'MODIFIED';
      const obj = state === undefined ? current : hostObject(state, rv, extra);
      current = state === undefined ? undefined : obj;
      for (const res of streams) res.write(`id: ${rv}\ndata: ${JSON.stringify({ type, object: obj })}\n\n`);
    },
  };
  current = hostObject('registering', rv, {});
  const server = createServer((req, res) => {
    const u = new URL(req.url!, 'http://x');
    if (u.pathname === '/api/v1/hosts' && u.searchParams.get('watch') === 'true') {
      if (!options.watch) {
        res.writeHead(404, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ code: 'INGOT_ERR_NOT_FOUND', message: 'no watch here' }));
      }
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      if (current) res.write(`id: ${rv}\ndata: ${JSON.stringify({ type: 'ADDED', object: current })}\n\n`);
      streams.add(res);
      res.on('close', () => streams.delete(res));
      return;
    }
    if (u.pathname === '/api/v1/hosts/n1') {
      api.gets++;
      res.writeHead(current ? 200 : 404, { 'content-type': 'application/json' });
      return res.end(JSON.stringify(current ?? { code: 'INGOT_ERR_NOT_FOUND', message: 'Host "n1" does not exist' }));
    }
    res.writeHead(404).end();
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  api.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return api;
}

function hostObject(state: string, rv: number, extra: Record<string, unknown>) {
  return {
    apiVersion: 'ingot.dev/v1',
    kind: 'Host',
    metadata: { name: 'n1', uid: 'u1', labels: {}, annotations: {}, resourceVersion: String(rv), createdAt: '', updatedAt: '' },
    spec: {},
    status: { provisioning: { state }, poweredOn: false, errorType: '', errorMessage: '', errorCount: 0, operationHistory: {}, conditions: [], ...extra },
  };
}

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('waitForHostState', () => {
  it('resolves when the watch reports the target state, reporting each state on the way', async () => {
    const api = await fakeApi({ watch: true });
    const client = createClient({ server: api.url, token: 't' });
    const states: string[] = [];
    const done = waitForHostState(client, 'n1', 'available', { pollIntervalMs: 60_000, onProgress: (h) => states.push(h.status.provisioning.state) });
    await until(() => api.watchers > 0 && states.length > 0);
    api.set('inspecting');
    await tick(50);
    api.set('available');
    const host = await done;
    expect(host?.status.provisioning.state).toBe('available');
    expect(states).toEqual(['registering', 'inspecting', 'available']);
  });

  it('falls back to polling when the watch is not available', async () => {
    const api = await fakeApi({ watch: false });
    const client = createClient({ server: api.url, token: 't' });
    const done = waitForHostState(client, 'n1', 'provisioned', { pollIntervalMs: 30 });
    await until(() => api.gets > 1);
    api.set('provisioned');
    await expect(done).resolves.toMatchObject({ status: { provisioning: { state: 'provisioned' } } });
    expect(api.gets).toBeGreaterThan(1);
  });

  it('rejects with the error type and message when the host enters error', async () => {
    const api = await fakeApi({ watch: true });
    const client = createClient({ server: api.url, token: 't' });
    const done = waitForHostState(client, 'n1', 'available', { pollIntervalMs: 60_000, errorGraceMs: 0 });
    await until(() => api.watchers > 0);
    api.set('inspecting');
    await tick(50);
    api.set('error', { errorType: 'inspection', errorMessage: 'the BMC did not answer' });
    const err = (await done.catch((e: unknown) => e)) as HostFailedError;
    expect(err).toBeInstanceOf(HostFailedError);
    expect(err.message).toBe('host n1 failed in inspecting: inspection: the BMC did not answer');
    expect(err).toMatchObject({ failedIn: 'inspecting', errorType: 'inspection' });
  });

  it("waits out the grace period for an old error the conductor has not yet acted on", async () => {
    const api = await fakeApi({ watch: true });
    api.set('error', { errorType: 'registration', errorMessage: 'bad credentials' });
    const client = createClient({ server: api.url, token: 't' });
    const done = waitForHostState(client, 'n1', 'available', { pollIntervalMs: 60_000, errorGraceMs: 5_000 });
    await until(() => api.watchers > 0);
    api.set('registering');
    await tick(20);
    api.set('available');
    await expect(done).resolves.toBeDefined();
  });

  it("resolves for 'deleted' when the host disappears, and rejects when waiting for another state", async () => {
    const api = await fakeApi({ watch: true });
    const client = createClient({ server: api.url, token: 't' });
    const gone = waitForHostState(client, 'n1', 'deleted', { pollIntervalMs: 60_000 });
    const never = waitForHostState(client, 'n1', 'available', { pollIntervalMs: 60_000 });
    await until(() => api.watchers > 1);
    api.set('deleting');
    api.set(undefined);
    // Both settle on the same event: assert them together, so neither rejection goes unhandled.
    await Promise.all([
      expect(gone).resolves.toBeUndefined(),
      expect(never).rejects.toMatchObject({ name: 'HostFailedError', failedIn: 'deleted', message: 'host n1 was deleted before it reached available' }),
    ]);
  });

  it("resolves for 'deleted' by polling when the host is already gone", async () => {
    const api = await fakeApi({ watch: false });
    api.set(undefined);
    const client = createClient({ server: api.url, token: 't' });
    await expect(waitForHostState(client, 'n1', 'deleted', { pollIntervalMs: 30 })).resolves.toBeUndefined();
  });

  it('times out naming the last state seen', async () => {
    const api = await fakeApi({ watch: true });
    const client = createClient({ server: api.url, token: 't' });
    const err = await waitForHostState(client, 'n1', 'provisioned', { timeoutMs: 300, pollIntervalMs: 50 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WaitTimeoutError);
    expect((err as Error).message).toMatch(/^host n1 did not reach provisioned within 0\.3s \(last state: registering\)$/);
  });

  it('waits for several hosts over one watch, settling each on its own', async () => {
    const api = await fakeApi({ watch: true });
    let watches = 0;
    const counting = createClient({
      server: api.url,
      token: 't',
      fetch: (input, init) => {
        if (String(input).includes('watch=true')) watches++;
        return fetch(input, init);
      },
    });
    // n1 is served by the fake API; n2 never exists, so it is "deleted" at the first poll.
    const done = waitForHostStates(counting, ['n1', 'n2'], 'available', { pollIntervalMs: 60_000, errorGraceMs: 0 });
    await until(() => api.watchers > 0);
    api.set('available');
    const results = await done;
    expect(results[0]).toMatchObject({ status: 'fulfilled', value: { status: { provisioning: { state: 'available' } } } });
    expect(results[1]).toMatchObject({ status: 'rejected', reason: { name: 'HostFailedError', failedIn: 'deleted' } });
    expect(watches).toBe(1);
  });

  it('counts the target state only when accept() agrees', async () => {
    const api = await fakeApi({ watch: true });
    api.set('provisioned', { provisioning: { state: 'provisioned', image: { url: 'http://old' } } });
    const client = createClient({ server: api.url, token: 't' });
    const done = waitForHostState(client, 'n1', 'provisioned', {
      pollIntervalMs: 60_000,
      accept: (h) => h.status.provisioning.image?.url === 'http://new',
    });
    let settled = false;
    void done.then(() => (settled = true));
    await tick(150);
    expect(settled).toBe(false);
    api.set('provisioning', { provisioning: { state: 'provisioning' } });
    api.set('provisioned', { provisioning: { state: 'provisioned', image: { url: 'http://new' } } });
    await expect(done).resolves.toMatchObject({ status: { provisioning: { image: { url: 'http://new' } } } });
  });
});
