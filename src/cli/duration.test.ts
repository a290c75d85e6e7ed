import { describe, expect, it } from 'vitest';
import { formatElapsed, parseDuration } from './duration.js';

describe('durations', () => {
  it('parses units and combinations', () => {
    expect(parseDuration('30m')).toBe(1_800_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('90')).toBe(90_000);
  });
  it('refuses junk, zero and absurd lengths naming the flag', () => {
    for (const bad of ['', 'soon', '5x', '0s', '10m junk', '200h']) expect(() => parseDuration(bad, '--timeout')).toThrow(/^--timeout ".*" is not a duration/);
  });
  it('takes days and a larger bound only when the caller allows it', () => {
    expect(parseDuration('30d', '--expires-in', { maxMs: 90 * 86_400_000 })).toBe(30 * 86_400_000);
    expect(parseDuration('1d12h', '--expires-in', { maxMs: 90 * 86_400_000 })).toBe(36 * 3_600_000);
    expect(() => parseDuration('30d', '--timeout')).toThrow(/at most 168h/);
    expect(() => parseDuration('400d', '--expires-in', { maxMs: 365 * 86_400_000 })).toThrow(/^--expires-in "400d" is not a duration.*at most 365d/);
  });
  it('formats elapsed time compactly', () => {
    expect(formatElapsed(3200)).toBe('3.2s');
    expect(formatElapsed(65_000)).toBe('1m05s');
    expect(formatElapsed(3_720_000)).toBe('1h02m');
  });
});
