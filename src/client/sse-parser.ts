// An incremental parser for text/event-stream, following the WHATWG HTML standard,
// "9.2.6 Interpreting an event stream": lines end in CRLF, LF or CR; a blank line
// dispatches; `data` lines are joined with "\n"; `id` persists across events (the
// Last-Event-ID to resume from); `retry` sets the reconnection delay; ':' starts a comment.

export interface SseEvent {
  /** The `event:` field, or 'message' when absent. */
  event: string;
  data: string;
  /** The last event id seen so far (it persists across events, per the standard). */
  id: string;
}

export interface SseParserOptions {
  /** Bound on one event's size (all its lines together); a larger event throws. */
  maxEventBytes?: number;
}

export class SseParser {
  #buffer = '';
  #data: string[] = [];
  #dataSize = 0;
  #eventType = '';
  #lastEventId = '';
  #retryMs: number | undefined;
  #sawFirstChunk = false;
  /** A CR ended the previous chunk: a LF opening the next one belongs to it. */
  #pendingCr = false;
  readonly #maxEventBytes: number;

  constructor(options: SseParserOptions = {}) {
    this.#maxEventBytes = options.maxEventBytes ?? 8 * 1024 * 1024;
  }

  get lastEventId(): string {
    return this.#lastEventId;
  }

  /** The reconnection time the server asked for with `retry:`, if any. */
  get retryMs(): number | undefined {
    return this.#retryMs;
  }

  /** Feeds decoded text; returns the events completed by it. */
  push(chunk: string): SseEvent[] {
    if (!this.#sawFirstChunk && chunk.length > 0) {
      this.#sawFirstChunk = true;
      if (chunk.charCodeAt(0) === 0xfeff) chunk = chunk.slice(1);
    }
    if (this.#pendingCr && chunk.startsWith('\n')) chunk = chunk.slice(1);
    this.#pendingCr = false;
    this.#buffer += chunk;
    const events: SseEvent[] = [];
    let start = 0;
    for (let i = 0; i < this.#buffer.length; i++) {
      const c = this.#buffer.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      const line = this.#buffer.slice(start, i);
      if (c === 13) {
        if (i + 1 < this.#buffer.length) {
          if (this.#buffer.charCodeAt(i + 1) === 10) i++;
        } else {
          this.#pendingCr = true;
        }
      }
      start = i + 1;
      const event = this.#line(line);
      if (event) events.push(event);
    }
    this.#buffer = this.#buffer.slice(start);
    if (this.#buffer.length + this.#dataSize > this.#maxEventBytes) {
      throw new Error(`an event in the stream is larger than ${this.#maxEventBytes} bytes`);
    }
    return events;
  }

  /** Forgets a half-received event (the connection dropped); the last id survives. */
  reset(): void {
    this.#buffer = '';
    this.#data = [];
    this.#dataSize = 0;
    this.#eventType = '';
    this.#pendingCr = false;
  }

  #line(line: string): SseEvent | undefined {
    if (line === '') return this.#dispatch();
    if (line.startsWith(':')) return undefined;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'event':
        this.#eventType = value;
        break;
      case 'data':
        this.#data.push(value);
        this.#dataSize += value.length + 1;
        if (this.#dataSize > this.#maxEventBytes) throw new Error(`an event in the stream is larger than ${this.#maxEventBytes} bytes`);
        break;
      case 'id':
        if (!value.includes('\0')) this.#lastEventId = value;
        break;
      case 'retry':
        if (/^[0-9]+$/.test(value)) this.#retryMs = Number(value);
        break;
      default:
        break; // unknown fields are ignored, per the standard
    }
    return undefined;
  }

  #dispatch(): SseEvent | undefined {
    const data = this.#data;
    const type = this.#eventType;
    this.#data = [];
    this.#dataSize = 0;
    this.#eventType = '';
    if (data.length === 0) return undefined;
    return { event: type || 'message', data: data.join('\n'), id: this.#lastEventId };
  }
}
