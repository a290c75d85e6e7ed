import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostManifest, secretManifest, startApiFixture, type ApiFixture } from './testing/api-fixture.js';

interface SseEvent {
  id?: string;
  data: { type: string; object: { metadata: { name: string; resourceVersion: string; labels: Record<string, string> } } };
}

/** Reads server-sent events from a fetch body until `until` says stop. */
async function openWatch(api: ApiFixture, query: string, headers: Record<string, string> = {}) {
  const controller = new AbortController();
  const res = await fetch(`${api.url}/api/v1/hosts?watch=true${query}`, {
    headers: { authorization: `Bearer ${api.adminToken}`, ...headers },
    signal: controller.signal,
  });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toContain('text/event-stream');
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  const events: SseEvent[] = [];
  async function next(): Promise<SseEvent | undefined> {
    for (;;) {
      const end = buffer.indexOf('\n\n');
      if (end >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const lines = block.split('\n');
        const data = lines.filter((l) => l.startsWith('data: ')).map((l) => l.slice(6));
        if (data.length === 0) continue; // comments, retry
        const id = lines.find((l) => l.startsWith('id: '))?.slice(4);
        const event: SseEvent = { ...(id ? { id } : {}), data: JSON.parse(data.join('\n')) };
        events.push(event);
        return event;
      }
      const chunk = await reader.read();
      if (chunk.done) return undefined;
      buffer += decoder.decode(chunk.value, { stream: true });
    }
  }
  async function take(n: number): Promise<SseEvent[]> {
    const out: SseEvent[] = [];
    while (out.length < n) {
      const e = await next();
      if (!e) break;
      out.push(e);
    }
    return out;
  }
  return { take, next, close: () => controller.abort(), events };
}

let api: ApiFixture;
beforeAll(async () => {
  api = await startApiFixture({ watchPollMs: 200 });
  expect((await api.call('POST', '/api/v1/secrets', { body: secretManifest('bmc-creds', { username: 'u', password: 'p' }) })).status).toBe(201);
});
afterAll(async () => {
  await api?.close();
});

describe('watch', () => {
  it('streams ADDED for existing hosts, then ADDED, MODIFIED and DELETED as they happen', async () => {
    // 1. one host before the watch starts
    await api.call('POST', '/api/v1/hosts', { body: hostManifest('w-before', {}, { labels: { w: 'yes' } }) });
    const watch = await openWatch(api, `&labelSelector=${encodeURIComponent('w=yes')}`);
    const [initial] = await watch.take(1);
    expect(initial!.data).toMatchObject({ type: 'ADDED', object: { metadata: { name: 'w-before' } } });

    // 2. changes after: add, modify, ask to delete (a MODIFIED), remove the row (the conductor's job)
    await api.call('POST', '/api/v1/hosts', { body: hostManifest('w-after', {}, { labels: { w: 'yes' } }) });
    await api.call('POST', '/api/v1/hosts', { body: hostManifest('w-other', {}, { labels: { w: 'no' } }) });
    await api.call('PATCH', '/api/v1/hosts/w-after', { body: { spec: { online: true } } });
    await api.call('DELETE', '/api/v1/hosts/w-after');
    await api.store.remove({ kind: 'Host', project: '', name: 'w-after' });

    const later = await watch.take(4);
    expect(later.map((e) => [e.data.type, e.data.object.metadata.name])).toEqual([
      ['ADDED', 'w-after'],
      ['MODIFIED', 'w-after'],
      ['MODIFIED', 'w-after'],
      ['DELETED', 'w-after'],
    ]);
    // ids are increasing change sequence numbers
    const ids = later.map((e) => Number(e.id));
    expect([...ids].sort((a, b) => a - b)).toEqual(ids);
    watch.close();

    // 3. resuming with Last-Event-ID replays only what came after that event
    const resumed = await openWatch(api, `&labelSelector=${encodeURIComponent('w=yes')}`, { 'last-event-id': later[1]!.id! });
    const replay = await resumed.take(2);
    expect(replay.map((e) => e.data.type)).toEqual(['MODIFIED', 'DELETED']);
    resumed.close();
  });

  it('server close ends open watch streams', async () => {
    const own = await startApiFixture();
    try {
      const watch = await openWatch(own, '');
      await own.app.close();
      // The stream ends instead of hanging the close (next() resolves undefined at end of stream).
      expect(await watch.next()).toBeUndefined();
    } finally {
      await own.close();
    }
  });
});
