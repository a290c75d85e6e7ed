// Progress while waiting for hosts. On a terminal: one line rewritten in place with each
// host's state, step, percent and the elapsed time. Elsewhere (CI logs, pipes): one line per
// state change, `r1-n07: registering -> inspecting (3.2s)`, so logs stay readable.
import type { Host } from '../model/host.js';
import { formatElapsed } from './duration.js';

export interface ProgressSink {
  write(text: string): void;
  isTTY?: boolean;
  columns?: number;
}

export class ProgressReporter {
  readonly #out: ProgressSink;
  readonly #tty: boolean;
  readonly #started: number;
  readonly #now: () => number;
  readonly #hosts = new Map<string, { state: string; step?: string; percent?: number; message?: string; waitingFor?: string }>();
  #timer: NodeJS.Timeout | undefined;
  #lineShown = false;

  constructor(out: ProgressSink, options: { tty?: boolean; now?: () => number; started?: number } = {}) {
    this.#out = out;
    this.#tty = options.tty ?? Boolean(out.isTTY);
    this.#now = options.now ?? Date.now;
    this.#started = options.started ?? this.#now();
    // Keep the elapsed time moving on a terminal even when nothing changes.
    if (this.#tty) this.#timer = setInterval(() => this.#redraw(), 500).unref();
  }

  /** Feeds an observation of a host (from waitForHostState's onProgress). */
  update(host: Host): void {
    const name = host.metadata.name;
    const state = host.status?.provisioning?.state ?? 'unknown';
    const prev = this.#hosts.get(name);
    const next = { state, step: host.status?.progress?.step, percent: host.status?.progress?.percent, message: host.status?.progress?.message, waitingFor: host.status?.waitingFor };
    this.#hosts.set(name, next);
    if (this.#tty) return this.#redraw();
    if (!prev) this.#line(`${name}: ${state}${next.waitingFor ? ` (waiting for ${next.waitingFor})` : ''} (${this.#elapsed()})`);
    else if (prev.state !== state) this.#line(`${name}: ${prev.state} -> ${state} (${this.#elapsed()})`);
    // Each new step of a long operation (erasing partitions of /dev/sda, verifying…) on its own line.
    if (next.message && next.message !== prev?.message) this.#line(`${name}: ${next.message} (${this.#elapsed()})`);
  }

  /** Marks a host as gone (deleted). */
  deleted(name: string): void {
    const prev = this.#hosts.get(name);
    this.#hosts.set(name, { state: 'deleted' });
    if (!this.#tty) this.#line(`${name}: ${prev?.state ?? '?'} -> deleted (${this.#elapsed()})`);
    else this.#redraw();
  }

  /** Prints a message on its own line (clearing the progress line first on a terminal). */
  note(text: string): void {
    this.#clear();
    this.#out.write(text.endsWith('\n') ? text : text + '\n');
    if (this.#tty) this.#redraw();
  }

  /** Leaves the final progress line on screen and stops redrawing. */
  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    if (this.#tty && this.#lineShown) {
      this.#redraw();
      this.#out.write('\n');
      this.#lineShown = false;
    }
  }

  /** The one-line summary shown on a terminal. */
  summary(): string {
    const parts = [...this.#hosts.entries()].map(([name, h]) => {
      let s = `${name} ${h.state}`;
      if (h.step) s += ` ${h.step}`;
      if (h.percent !== undefined) s += ` ${h.percent}%`;
      if (h.waitingFor) s += ` (waiting for ${h.waitingFor})`;
      return s;
    });
    return `${parts.join(' | ')}  [${this.#elapsed()}]`;
  }

  #elapsed(): string {
    return formatElapsed(this.#now() - this.#started);
  }

  #line(text: string): void {
    this.#out.write(text + '\n');
  }

  #clear(): void {
    if (this.#tty && this.#lineShown) this.#out.write('\r\x1b[2K');
  }

  #redraw(): void {
    if (!this.#tty || this.#hosts.size === 0) return;
    let text = this.summary();
    const cols = this.#out.columns || 120;
    if (text.length > cols - 1) text = text.slice(0, Math.max(10, cols - 2)) + '…';
    this.#out.write('\r\x1b[2K' + text);
    this.#lineShown = true;
  }
}
