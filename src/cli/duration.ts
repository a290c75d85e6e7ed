// Durations on the command line: 90s, 5m, 1h30m, 250ms, 30d, or a bare number of seconds.
import { CliError } from './cli-error.js';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DEFAULT_MAX_MS = 7 * 24 * 3_600_000;

export interface DurationOptions {
  /** Longest accepted duration; default 168h (waits). Token lifetimes allow longer. */
  maxMs?: number;
}

export function parseDuration(text: string, flag = '--timeout', options: DurationOptions = {}): number {
  const maxMs = options.maxMs ?? DEFAULT_MAX_MS;
  const t = text.trim();
  if (/^[0-9]+(\.[0-9]+)?$/.test(t)) return checked(Math.round(Number(t) * 1000), text, flag, maxMs);
  const re = /([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)/gy;
  let total = 0;
  let matched = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(t)) !== null) {
    total += Number(m[1]) * UNITS[m[2]!]!;
    matched = re.lastIndex;
  }
  if (t.length === 0 || matched !== t.length) return checked(0, text, flag, maxMs);
  return checked(Math.round(total), text, flag, maxMs);
}

function checked(ms: number, text: string, flag: string, maxMs: number): number {
  if (ms <= 0 || ms > maxMs) {
    const most = maxMs % 86_400_000 === 0 && maxMs > DEFAULT_MAX_MS ? `${maxMs / 86_400_000}d` : `${Math.round(maxMs / 3_600_000)}h`;
    throw new CliError(`${flag} "${text}" is not a duration; use a form such as 90s, 5m, 1h30m, 30d (at most ${most})`);
  }
  return ms;
}

/** 3.2s, 1m05s, 1h02m: short, for progress lines. */
export function formatElapsed(ms: number): string {
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.floor(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
