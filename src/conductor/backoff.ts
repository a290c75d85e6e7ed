// Backoff from a persisted failure count (after baremetal-operator's calculateBackoff): the
// count lives in status.errorCount, so a restarted conductor keeps backing off where the dead
// one stopped instead of hammering a broken BMC from zero.
//
// With the defaults (base 1 min, cap 8 h) and jitter taking off up to 10%:
//
//   errorCount | delay before the next attempt
//   -----------|------------------------------
//        0, 1  | 54 s   - 60 s
//           2  | 1.8 m  - 2 m
//           3  | 3.6 m  - 4 m
//           4  | 7.2 m  - 8 m
//           5  | 14.4 m - 16 m
//           6  | 28.8 m - 32 m
//           7  | 57.6 m - 64 m
//           8  | 1.9 h  - 2.1 h
//           9  | 3.8 h  - 4.3 h
//     10 and up| 7.2 h  - 8 h   (capped)

export interface BackoffOptions {
  /** Delay after the first failure; tests and quickstart use a few milliseconds. */
  baseMs?: number;
  /** Upper bound before jitter. */
  capMs?: number;
}

export const DEFAULT_BACKOFF = { baseMs: 60_000, capMs: 8 * 60 * 60 * 1000 } as const;

/** Fraction of the delay that jitter may take off, so a rack that failed together does not retry together. */
const JITTER = 0.1;

/**
 * Delay before attempt number `errorCount + 1`. `random` returns [0, 1) like Math.random; it
 * is a parameter so tests can fix it.
 */
export function nextDelay(errorCount: number, random: () => number, options: BackoffOptions = {}): number {
  const baseMs = options.baseMs ?? DEFAULT_BACKOFF.baseMs;
  const capMs = options.capMs ?? DEFAULT_BACKOFF.capMs;
  const exponent = Math.max(0, Math.floor(errorCount) - 1);
  // 2^exponent overflows to Infinity long after the cap is reached; Math.min handles both.
  const raw = Math.min(capMs, baseMs * 2 ** Math.min(exponent, 60));
  return Math.round(raw - raw * JITTER * random());
}
