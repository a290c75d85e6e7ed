// The "changed fields" of an audit event: a deep diff of a resource before and after a write,
// with secret-bearing fields redacted. Key names and the fact that a secret changed are kept
// (an auditor needs "stringData.password changed"); values never are (DESIGN.md "Secrets:
// values are never returned, logged or audited").
import type { AuditChange } from '../../model/audit-event.js';

export const REDACTED = '[redacted]';

/**
 * Path patterns of secret-bearing fields. Segments are separated by '.', `*` matches one
 * segment (a key or an array index), `**` any number of segments (also none). A pattern
 * matching a path or any prefix of it redacts everything below.
 */
export const DEFAULT_SECRET_PATHS: readonly string[] = [
  'stringData',
  'data',
  'spec.userData',
  '**.password',
  '**.passwd',
  '**.token',
  '**.secret',
  '**.privateKey',
  '**.userData',
  '**.ca\\.key',
  '**.tls\\.key',
  '**.apiKey',
];

export interface RedactOptions {
  /** Patterns as in DEFAULT_SECRET_PATHS (which is used when this is absent). */
  secretPaths?: readonly string[];
  /** At most this many changes are listed; the rest are summarized in one final entry. Default 100. */
  maxChanges?: number;
  /** Values whose JSON is longer than this are summarized instead of copied. Default 1024. */
  maxValueBytes?: number;
  /** Below this depth objects are compared whole. Default 16. */
  maxDepth?: number;
}

type Segment = string | number;

/** Compiled pattern: segments, where '*' and '**' are wildcards. */
type Pattern = string[];

function compilePattern(pattern: string): Pattern {
  // `\.` escapes a dot inside a key (`ca\.key` is the key "ca.key").
  const parts: string[] = [];
  let current = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '\\' && pattern[i + 1] === '.') {
      current += '.';
      i++;
    } else if (c === '.') {
      parts.push(current);
      current = '';
    } else current += c;
  }
  parts.push(current);
  return parts;
}

/** Whether the pattern matches some prefix of path (so the path lies inside a secret subtree). */
function matchesPrefix(pattern: Pattern, path: readonly Segment[], pi = 0, si = 0): boolean {
  if (pi === pattern.length) return true;
  const part = pattern[pi];
  if (part === '**') {
    for (let skip = si; skip <= path.length; skip++) if (matchesPrefix(pattern, path, pi + 1, skip)) return true;
    return false;
  }
  if (si === path.length) return false;
  if (part !== '*' && part !== String(path[si])) return false;
  return matchesPrefix(pattern, path, pi + 1, si + 1);
}

/** `spec.bmc.address`, `metadata.labels["ingot.dev/rack"]`, `spec.networks[0]`. */
export function formatPath(path: readonly Segment[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(segment)) out += out === '' ? segment : `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((item, i) => sameJson(item, bb[i]));
  }
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  const keys = new Set([...Object.keys(ao), ...Object.keys(bo)].filter((k) => ao[k] !== undefined || bo[k] !== undefined));
  for (const k of keys) if (!sameJson(ao[k], bo[k])) return false;
  return true;
}

/**
 * Lists what changed from `before` to `after` (either may be undefined: a create or a
 * delete). Objects are compared key by key and arrays index by index; a leaf is reported with
 * its old and new values, or "[redacted]" under a secret path.
 */
export function redactChanges(before: unknown, after: unknown, options: RedactOptions = {}): AuditChange[] {
  const patterns = (options.secretPaths ?? DEFAULT_SECRET_PATHS).map(compilePattern);
  const maxChanges = options.maxChanges ?? 100;
  const maxValueBytes = options.maxValueBytes ?? 1024;
  const maxDepth = options.maxDepth ?? 16;
  const changes: AuditChange[] = [];
  let omitted = 0;

  const isSecret = (path: readonly Segment[]) => patterns.some((p) => matchesPrefix(p, path));
  /** Secrets anywhere inside a value shown whole are replaced too (defence in depth). */
  const scrub = (value: unknown, path: Segment[]): unknown => {
    if (isSecret(path)) return REDACTED;
    if (Array.isArray(value)) return value.map((item, i) => scrub(item, [...path, i]));
    if (isPlainObject(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, scrub(v, [...path, k])]));
    return value;
  };
  const show = (value: unknown, path: Segment[]): unknown => {
    const scrubbed = scrub(value, path);
    const json = JSON.stringify(scrubbed);
    if (json !== undefined && Buffer.byteLength(json, 'utf8') > maxValueBytes) {
      const shape = Array.isArray(value) ? `array of ${value.length}` : isPlainObject(value) ? `object with ${Object.keys(value).length} keys` : typeof value;
      return `[${shape}, ${Buffer.byteLength(json, 'utf8')} bytes: too large to list]`;
    }
    return scrubbed;
  };
  const emit = (path: Segment[], from: unknown, to: unknown) => {
    if (changes.length >= maxChanges) {
      omitted += 1;
      return;
    }
    const change: AuditChange = { path: formatPath(path) };
    if (from !== undefined) change.before = show(from, path);
    if (to !== undefined) change.after = show(to, path);
    changes.push(change);
  };
  const walk = (path: Segment[], from: unknown, to: unknown) => {
    if (sameJson(from, to)) return;
    // Objects (also one created or deleted whole) are listed key by key: an audit reader
    // sees which fields were set, and secret keys are named without their values.
    const fromObject = isPlainObject(from) ? from : from === undefined ? {} : undefined;
    const toObject = isPlainObject(to) ? to : to === undefined ? {} : undefined;
    if (path.length < maxDepth && fromObject !== undefined && toObject !== undefined) {
      const keys = [...new Set([...Object.keys(fromObject), ...Object.keys(toObject)])].sort();
      for (const key of keys) walk([...path, key], fromObject[key], toObject[key]);
      return;
    }
    if (path.length < maxDepth && Array.isArray(from) && Array.isArray(to)) {
      for (let i = 0; i < Math.max(from.length, to.length); i++) walk([...path, i], from[i], to[i]);
      return;
    }
    emit(path, from, to);
  };
  walk([], before, after);
  if (omitted > 0) changes.push({ path: '(more)', after: `[${omitted} more changed fields not listed]` });
  return changes;
}
