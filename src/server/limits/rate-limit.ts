// Request limits for both listeners:
// - failed authentication is throttled by who the failure is about. A credential the server
//   knows (a revoked or expired token, or a token of the other listener's kind) is throttled
//   by its own id: after `maxFailures` failures in `windowMs` it gets 429 with Retry-After
//   until the window ends. A credential the server does not know (malformed, never issued,
//   an OIDC token that does not verify) is throttled by source address, and all unknown
//   credentials together by `maxUnknownTotal`, so guessing from many addresses is slowed too.
//   A valid credential is never throttled for failures, whoever failed beside it: the check
//   runs only after a lookup has found the presented credential invalid (docs/security.md,
//   "Failed logins", has the trade-off);
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

export interface AuthFailureConfig {
  /** Failures allowed per credential (known) or per address (unknown credentials) in a window. */
  maxFailures?: number;
  windowMs?: number;
  /** Failures with unknown credentials allowed from all addresses together in a window. */
  maxUnknownTotal?: number;
}

export interface RateLimitConfig {
  authFailures?: AuthFailureConfig;
  /** Bucket per role (merged over the defaults); an identity gets the largest bucket among its roles, else `default`. */
  perRole?: Record<string, BucketConfig>;
  default?: BucketConfig;
  /** Tracked addresses / identities at most (oldest dropped). Default 10,000. */
  maxEntries?: number;
  /** Milliseconds since the epoch; Date.now by default. */
  now?: () => number;
}

export const DEFAULT_RATE_LIMITS = {
  authFailures: { maxFailures: 10, windowMs: 60_000, maxUnknownTotal: 300 },
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

/** Agent listener: one-boot tokens heartbeat, long-poll and report; a loop gone wrong must not flood. */
export const DEFAULT_AGENT_RATE_LIMITS: RateLimitConfig = {
  authFailures: DEFAULT_RATE_LIMITS.authFailures,
  perRole: { agent: { burst: 100, perSecond: 20 } },
  default: { burst: 100, perSecond: 20 },
};

/** Whom a failed authentication is counted against. */
export type FailureSubject = { credentialId: string } | { address: string };

export interface RateLimiter {
  /** Counts one failed authentication, then throws RateLimitedError when the subject failed too often recently. */
  recordAuthFailure(subject: FailureSubject): void;
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
  const maxUnknownTotal = config.authFailures?.maxUnknownTotal ?? DEFAULT_RATE_LIMITS.authFailures.maxUnknownTotal;
  // Roles not named keep their default bucket.
  const perRole = { ...DEFAULT_RATE_LIMITS.perRole, ...config.perRole };
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
    recordAuthFailure(subject) {
      const t = now();
      const count = (key: string): number => {
        const entry = failures.get(key);
        const next = !entry || t - entry.windowStart >= windowMs ? { windowStart: t, count: 1 } : { windowStart: entry.windowStart, count: entry.count + 1 };
        failures.set(key, next);
        return next.count;
      };
      const retryAfter = (key: string): number => Math.max(1, Math.ceil((failures.get(key)!.windowStart + windowMs - t) / 1000));
      const window = `${Math.round(windowMs / 1000)}s`;
      if ('credentialId' in subject) {
        const key = `credential:${subject.credentialId}`;
        const n = count(key);
        if (n > maxFailures) {
          const retry = retryAfter(key);
          throw new RateLimitedError(`this token failed authentication ${n} times in ${window} (it is revoked, expired or meant for the other listener); retry after ${retry}s with a valid token`, retry);
        }
        return;
      }
      const key = `address:${subject.address}`;
      const n = count(key);
      const total = count('unknown');
      if (n > maxFailures) {
        const retry = retryAfter(key);
        throw new RateLimitedError(`too many failed authentications with unknown tokens from your address (${n} in ${window}); retry after ${retry}s with a valid token`, retry);
      }
      if (total > maxUnknownTotal) {
        const retry = retryAfter('unknown');
        throw new RateLimitedError(`too many failed authentications with unknown tokens from all addresses (${total} in ${window}); retry after ${retry}s with a valid token`, retry);
      }
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
