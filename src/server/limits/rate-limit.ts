// Request limits for the public API (issue 5):
// - failed authentication is throttled per source address: after `maxFailures` failures in
//   `windowMs`, requests from that address get 429 with Retry-After until the window ends,
//   before any token lookup (slows guessing and keeps the audit trail from flooding);
// - each authenticated identity (token id) has a token bucket (capacity = burst, refilled at
//   `perSecond`); an empty bucket answers 429 with Retry-After (RFC 6585 section 4, RFC 9110
//   section 10.2.3). The bucket size comes from the identity's roles (the most generous one).
// Public routes (/healthz, /readyz) never reach these checks. State is per process and
// bounded (oldest entries evicted); time comes from an injectable clock for tests.
import { IngotError } from '../../model/errors.js';

export interface BucketConfig {
  /** Requests allowed at once after idling. */
  burst: number;
  /** Sustained requests per second. */
  perSecond: number;
}

export interface RateLimitConfig {
  authFailures?: { maxFailures?: number; windowMs?: number };
  /** Bucket per role; an identity gets the largest bucket among its roles, else `default`. */
  perRole?: Record<string, BucketConfig>;
  default?: BucketConfig;
  /** Tracked addresses / identities at most (oldest dropped). Default 10,000. */
  maxEntries?: number;
  /** Milliseconds since the epoch; Date.now by default. */
  now?: () => number;
}

export const DEFAULT_RATE_LIMITS = {
  authFailures: { maxFailures: 10, windowMs: 60_000 },
  perRole: {
    'platform-admin': { burst: 200, perSecond: 50 },
    controller: { burst: 200, perSecond: 50 },
    'platform-reader': { burst: 100, perSecond: 20 },
  } as Record<string, BucketConfig>,
  default: { burst: 60, perSecond: 10 },
};

export class RateLimitedError extends IngotError {
  readonly retryAfterSeconds: number;
  constructor(message: string, retryAfterSeconds: number) {
    super('INGOT_ERR_RATE_LIMITED', message);
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

export interface RateLimiter {
  /** Throws RateLimitedError when `address` has failed authentication too often recently. */
  checkAddress(address: string): void;
  /** Counts one failed authentication from `address`. */
  recordAuthFailure(address: string): void;
  /** Takes one request from the identity's bucket or throws RateLimitedError. */
  take(identityKey: string, roles: readonly string[]): void;
}

/** A Map used as an LRU-ish bounded table: re-set entries move to the end; the first is oldest. */
function bounded<V>(max: number) {
  const map = new Map<string, V>();
  return {
    get: (k: string) => map.get(k),
    set(k: string, v: V) {
      map.delete(k);
      map.set(k, v);
      if (map.size > max) map.delete(map.keys().next().value as string);
    },
    delete: (k: string) => map.delete(k),
  };
}

export function createRateLimiter(config: RateLimitConfig = {}): RateLimiter {
  const now = config.now ?? Date.now;
  const maxFailures = config.authFailures?.maxFailures ?? DEFAULT_RATE_LIMITS.authFailures.maxFailures;
  const windowMs = config.authFailures?.windowMs ?? DEFAULT_RATE_LIMITS.authFailures.windowMs;
  const perRole = config.perRole ?? DEFAULT_RATE_LIMITS.perRole;
  const fallback = config.default ?? DEFAULT_RATE_LIMITS.default;
  const maxEntries = config.maxEntries ?? 10_000;
  for (const [role, b] of Object.entries({ ...perRole, default: fallback })) {
    if (!(b.burst >= 1) || !(b.perSecond > 0)) throw new Error(`rate limit for ${role}: burst must be >= 1 and perSecond > 0`);
  }
  const failures = bounded<{ windowStart: number; count: number }>(maxEntries);
  const buckets = bounded<{ tokens: number; at: number }>(maxEntries);

  function bucketFor(roles: readonly string[]): BucketConfig {
    let best: BucketConfig | undefined;
    for (const role of roles) {
      const b = perRole[role];
      if (b && (!best || b.perSecond > best.perSecond)) best = b;
    }
    return best ?? fallback;
  }

  return {
    checkAddress(address) {
      const entry = failures.get(address);
      if (!entry) return;
      const t = now();
      if (t - entry.windowStart >= windowMs) {
        failures.delete(address);
        return;
      }
      if (entry.count >= maxFailures) {
        const retry = Math.max(1, Math.ceil((entry.windowStart + windowMs - t) / 1000));
        throw new RateLimitedError(`too many failed authentications from your address (${entry.count} in ${Math.round(windowMs / 1000)}s); retry after ${retry}s with a valid token`, retry);
      }
    },
    recordAuthFailure(address) {
      const t = now();
      const entry = failures.get(address);
      if (!entry || t - entry.windowStart >= windowMs) failures.set(address, { windowStart: t, count: 1 });
      else failures.set(address, { windowStart: entry.windowStart, count: entry.count + 1 });
    },
    take(identityKey, roles) {
      const b = bucketFor(roles);
      const t = now();
      const state = buckets.get(identityKey) ?? { tokens: b.burst, at: t };
      const tokens = Math.min(b.burst, state.tokens + (Math.max(0, t - state.at) / 1000) * b.perSecond);
      if (tokens < 1) {
        buckets.set(identityKey, { tokens, at: t });
        const retry = Math.max(1, Math.ceil((1 - tokens) / b.perSecond));
        throw new RateLimitedError(`rate limit reached for this token (${b.perSecond}/s, bursts of ${b.burst}); retry after ${retry}s`, retry);
      }
      buckets.set(identityKey, { tokens: tokens - 1, at: t });
    },
  };
}
