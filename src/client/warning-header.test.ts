import { describe, expect, it } from 'vitest';
import { parseWarningHeader } from './client.js';

describe('parseWarningHeader (RFC 7234 §5.5)', () => {
  it('returns the text of each 299 warning', () => {
    expect(parseWarningHeader(null)).toEqual([]);
    expect(parseWarningHeader('299 ingot "soft quota of 2 claims exceeded in project red (spec.quotas.claims.soft): 3 after this change"')).toEqual([
      'soft quota of 2 claims exceeded in project red (spec.quotas.claims.soft): 3 after this change',
    ]);
    expect(parseWarningHeader('299 ingot "one, with a comma", 299 ingot "two \\"quoted\\""')).toEqual(['one, with a comma', 'two "quoted"']);
  });

  it('keeps text it cannot parse rather than dropping a warning', () => {
    expect(parseWarningHeader('something odd')).toEqual(['something odd']);
  });
});
