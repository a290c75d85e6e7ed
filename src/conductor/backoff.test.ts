import { describe, expect, it } from 'vitest';
import { nextDelay } from './backoff.js';

const MIN = 60_000;
const HOUR = 60 * MIN;

describe('nextDelay', () => {
  // random() = 0 takes no jitter off (the top of each range); 0.999… takes almost 10%.
  it.each([
    [0, 0, MIN],
    [1, 0, MIN],
    [2, 0, 2 * MIN],
    [3, 0, 4 * MIN],
    [4, 0, 8 * MIN],
    [7, 0, 64 * MIN],
    [9, 0, 256 * MIN],
    [10, 0, 8 * HOUR],
    [50, 0, 8 * HOUR],
    [5000, 0, 8 * HOUR],
    [1, 0.5, 57_000],
    [2, 0.5, 114_000],
    [10, 0.5, 8 * HOUR * 0.95],
    [1, 0.9999999, 54_000],
  ])('errorCount %d, random %d -> %d ms', (count, random, expected) => {
    expect(nextDelay(count, () => random)).toBe(expected);
  });

  it('takes a configurable base and cap (tests and quickstart use small ones)', () => {
    expect(nextDelay(1, () => 0, { baseMs: 10 })).toBe(10);
    expect(nextDelay(4, () => 0, { baseMs: 10 })).toBe(80);
    expect(nextDelay(20, () => 0, { baseMs: 10, capMs: 1000 })).toBe(1000);
  });

  it('never grows past the cap and never goes below 90% of it once capped', () => {
    for (let count = 10; count < 100; count++) {
      for (const r of [0, 0.3, 0.99]) {
        const d = nextDelay(count, () => r);
        expect(d).toBeLessThanOrEqual(8 * HOUR);
        expect(d).toBeGreaterThanOrEqual(8 * HOUR * 0.9);
      }
    }
  });
});
