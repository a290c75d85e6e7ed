// A digest of a host's spec, remembered at a failure so the conductor can tell "the admin
// changed something" (retry now) from "nothing changed" (wait for the backoff).
import { createHash } from 'node:crypto';

function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, canonical((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}

export function specHash(spec: unknown): string {
  return createHash('sha256').update(JSON.stringify(canonical(spec))).digest('hex').slice(0, 32);
}
