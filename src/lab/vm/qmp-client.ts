// A QEMU Machine Protocol client (docs/interop/qmp-spec in QEMU): JSON objects over a byte
// stream, one per line. The server speaks first (a greeting); the client must send
// qmp_capabilities before anything else; each command gets exactly one `return` or `error`,
// in order, and asynchronous `event` objects may arrive at any time in between.
//
// The lab runs QMP over the QEMU child's stdin/stdout (`-chardev stdio`), so there is no
// socket file another local user could connect to and nothing to clean up after a crash.
import { EventEmitter } from 'node:events';
import type { Readable, Writable } from 'node:stream';

/** Longest line the lab accepts from QEMU: replies are small; a runaway line is a broken stream. */
const MAX_LINE_BYTES = 1024 * 1024;

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

export class QmpError extends Error {
  constructor(
    readonly command: string,
    readonly qmpClass: string,
    readonly desc: string,
  ) {
    super(`QEMU refused ${command}: ${desc} (${qmpClass})`);
  }
}

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

/**
 * Emits 'event' (QmpEvent) for every asynchronous event and 'close' once the stream ends.
 * Commands sent after the stream ended reject at once.
 */
export class QmpClient extends EventEmitter {
  readonly #out: Writable;
  readonly #pending: Pending[] = [];
  #buffer = '';
  #closed = false;
  #closeReason = 'the QMP stream ended';
  readonly #greeting: Promise<void>;
  #greeted!: () => void;
  #greetFailed!: (err: Error) => void;

  constructor(input: Readable, output: Writable) {
    super();
    this.#out = output;
    this.#greeting = new Promise<void>((resolve, reject) => {
      this.#greeted = resolve;
      this.#greetFailed = reject;
    });
    // Unobserved until connect() is called; never an unhandled rejection.
    this.#greeting.catch(() => undefined);
    input.setEncoding('utf8');
    input.on('data', (chunk: string) => this.#onData(chunk));
    input.on('end', () => this.#end('QEMU closed its QMP stream (the process is exiting)'));
    input.on('error', (err: Error) => this.#end(`QMP stream error: ${err.message}`));
    output.on('error', (err: Error) => this.#end(`QMP stream error: ${err.message}`));
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Waits for the greeting and enters command mode (qmp_capabilities). */
  async connect(): Promise<void> {
    await this.#greeting;
    await this.execute('qmp_capabilities');
  }

  /** Sends one command and resolves with its `return` value; rejects with QmpError on `error`. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    if (this.#closed) return Promise.reject(new Error(`cannot send ${command}: ${this.#closeReason}`));
    return new Promise<T>((resolve, reject) => {
      this.#pending.push({ command, resolve: resolve as (v: unknown) => void, reject });
      this.#out.write(`${JSON.stringify(args ? { execute: command, arguments: args } : { execute: command })}\n`);
    });
  }

  #onData(chunk: string): void {
    this.#buffer += chunk;
    if (this.#buffer.length > MAX_LINE_BYTES && !this.#buffer.includes('\n')) {
      this.#end('QEMU sent a QMP line longer than 1 MiB');
      return;
    }
    let nl: number;
    while ((nl = this.#buffer.indexOf('\n')) >= 0) {
      const line = this.#buffer.slice(0, nl).trim();
      this.#buffer = this.#buffer.slice(nl + 1);
      if (line) this.#onMessage(line);
    }
  }

  #onMessage(line: string): void {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return; // not QMP (QEMU prints nothing else here, but a stray line must not wedge us)
    }
    if ('QMP' in msg) return this.#greeted();
    if (typeof msg.event === 'string') {
      this.emit('event', msg as unknown as QmpEvent);
      return;
    }
    const pending = this.#pending.shift();
    if (!pending) return;
    if ('error' in msg) {
      const e = (msg.error ?? {}) as { class?: string; desc?: string };
      pending.reject(new QmpError(pending.command, e.class ?? 'GenericError', e.desc ?? 'unknown error'));
    } else {
      pending.resolve(msg.return);
    }
  }

  #end(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeReason = reason;
    this.#greetFailed(new Error(reason));
    for (const p of this.#pending.splice(0)) p.reject(new Error(`${p.command}: ${reason}`));
    this.emit('close');
  }
}
