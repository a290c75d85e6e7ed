// `?watch=true`: a server-sent events stream (WHATWG HTML "Server-sent events") of changes
// to one kind. Each event is `id: <change seq>` + `data: {"type":"ADDED|MODIFIED|DELETED","object":…}`;
// a client that reconnects sends Last-Event-ID (the EventSource standard) or `since=<seq>` and
// misses nothing still in the change feed. New changes are found three ways: the store's
// in-process commit notification (instant), a 1 s poll (writes by other server processes
// sharing PostgreSQL), and a catch-up read at start.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { matchesLabels, type LabelRequirement } from '../model/label-selector.js';
import type { Store, StoredResource } from '../store/store.js';
import { toEnvelope } from './envelope.js';

export interface WatchOptions {
  store: Store;
  kind: string;
  project: string;
  selector: LabelRequirement[];
  /** Resume after this change seq; undefined = send the current objects as ADDED first. */
  since?: number;
  heartbeatMs: number;
  pollMs: number;
  toObject?: (r: StoredResource) => unknown;
}

const PAGE = 500;

/** Open streams, so closing the server ends them instead of waiting for clients to hang up. */
export class WatchRegistry {
  readonly #open = new Set<() => void>();
  add(close: () => void): () => void {
    this.#open.add(close);
    return () => this.#open.delete(close);
  }
  closeAll(): void {
    for (const close of [...this.#open]) close();
  }
  get size(): number {
    return this.#open.size;
  }
}

export async function streamWatch(request: FastifyRequest, reply: FastifyReply, registry: WatchRegistry, options: WatchOptions): Promise<void> {
  const { store, kind, project, selector } = options;
  const toObject = options.toObject ?? toEnvelope;
  // Read the position before the initial list, so nothing committed in between is missed
  // (it may be sent twice: watchers are level-based and take the latest object).
  let seq = options.since ?? (await store.latestChangeSeq());
  const initial: StoredResource[] = [];
  if (options.since === undefined) {
    let cursor: string | undefined;
    do {
      const page = await store.list({ kind, project, labelSelector: selector, limit: PAGE, ...(cursor ? { continue: cursor } : {}) });
      initial.push(...page.items);
      cursor = page.continue;
    } while (cursor);
  }

  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    // A watch holds its connection to the end; closing it afterwards (rather than returning it
    // to keep-alive) lets server shutdown finish without waiting for clients to hang up.
    connection: 'close',
    'x-request-id': request.id,
    // Proxies such as nginx buffer responses unless told not to.
    'x-accel-buffering': 'no',
  });
  let closed = false;
  const write = (text: string): void => {
    if (!closed) res.write(text);
  };
  write(`retry: 2000\n\n`);
  for (const object of initial) write(`id: ${seq}\ndata: ${JSON.stringify({ type: 'ADDED', object: toObject(object) })}\n\n`);

  let pumping = false;
  let again = false;
  const pump = async (): Promise<void> => {
    if (closed) return;
    if (pumping) {
      again = true;
      return;
    }
    pumping = true;
    try {
      do {
        again = false;
        for (;;) {
          const changes = await store.changesSince(seq, { kind, project, limit: PAGE });
          for (const change of changes) {
            seq = change.seq;
            if (selector.length > 0 && !matchesLabels(change.object.labels, selector)) continue;
            write(`id: ${change.seq}\ndata: ${JSON.stringify({ type: change.type, object: toObject(change.object) })}\n\n`);
          }
          if (changes.length < PAGE || closed) break;
        }
      } while (again && !closed);
    } catch (err) {
      request.log.warn({ err }, 'watch: reading the change feed failed; closing the stream');
      close();
    } finally {
      pumping = false;
    }
  };

  const wake = (): void => void pump();
  const unsubscribe = store.onCommittedChange(wake);
  const poll = setInterval(wake, options.pollMs);
  const heartbeat = setInterval(() => write(': heartbeat\n\n'), options.heartbeatMs);
  const unregister = registry.add(() => close());
  function close(): void {
    if (closed) return;
    closed = true;
    unsubscribe();
    clearInterval(poll);
    clearInterval(heartbeat);
    unregister();
    res.end();
  }
  res.on('close', close);
  await pump();
}
