import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IngotError } from './errors.js';
import { formatLabelSelector, matchesLabels, parseLabelSelector, type LabelRequirement } from './label-selector.js';

function validationMessage(text: string): string {
  try {
    parseLabelSelector(text);
  } catch (error) {
    expect(error).toBeInstanceOf(IngotError);
    expect((error as IngotError).code).toBe('INGOT_ERR_VALIDATION');
    expect((error as IngotError).details[0]?.field).toBe('labelSelector');
    return (error as IngotError).message;
  }
  throw new Error(`"${text}" parsed, but should not`);
}

describe('parseLabelSelector', () => {
  it.each<[string, LabelRequirement[]]>([
    ['', []],
    ['   ', []],
    ['rack=r1', [{ key: 'rack', op: '=', value: 'r1' }]],
    ['rack==r1', [{ key: 'rack', op: '=', value: 'r1' }]],
    ['rack!=r1', [{ key: 'rack', op: '!=', value: 'r1' }]],
    ['gpu', [{ key: 'gpu', op: 'exists' }]],
    ['!spare', [{ key: 'spare', op: '!exists' }]],
    ['tier=', [{ key: 'tier', op: '=', value: '' }]],
    [
      ' rack = r1 , ingot.dev/tier!=gold,gpu, ! spare ',
      [
        { key: 'rack', op: '=', value: 'r1' },
        { key: 'ingot.dev/tier', op: '!=', value: 'gold' },
        { key: 'gpu', op: 'exists' },
        { key: 'spare', op: '!exists' },
      ],
    ],
  ])('parses %j', (text, expected) => {
    expect(parseLabelSelector(text)).toEqual(expected);
  });

  it.each(['a,,b', ',a', 'a,', '=b', 'a=b=c', 'a===b', 'a!=b=c', 'a=b c', 'tier in (gold,silver)', 'Bad Key', '-a', 'a=-b', `a=${'x'.repeat(64)}`, '!'])(
    'rejects %j, naming labelSelector and the accepted forms',
    (text) => {
      expect(validationMessage(text)).toContain('expected comma-separated requirements of the form key=value');
    },
  );

  it('bounds the input', () => {
    expect(validationMessage('a'.repeat(5000))).toContain('4096');
    expect(validationMessage(Array.from({ length: 65 }, (_, i) => `k${i}`).join(','))).toContain('65 requirements');
  });

  it('property: formatting then parsing gives the same requirements', () => {
    const key = fc.stringMatching(/^([a-z0-9]{1,5}\.[a-z]{1,3}\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,8}[A-Za-z0-9])?$/);
    const value = fc.stringMatching(/^([A-Za-z0-9]([-A-Za-z0-9_.]{0,8}[A-Za-z0-9])?)?$/);
    const requirement: fc.Arbitrary<LabelRequirement> = fc.oneof(
      fc.record({ key, op: fc.constant('=' as const), value }),
      fc.record({ key, op: fc.constant('!=' as const), value }),
      fc.record({ key, op: fc.constantFrom('exists' as const, '!exists' as const) }),
    );
    fc.assert(
      fc.property(fc.array(requirement, { maxLength: 6 }), (requirements) => {
        expect(parseLabelSelector(formatLabelSelector(requirements))).toEqual(requirements);
      }),
    );
  });
});

describe('matchesLabels', () => {
  const labels = { rack: 'r1', gpu: 'true', empty: '' };
  it.each<[string, boolean]>([
    ['', true],
    ['rack=r1', true],
    ['rack=r2', false],
    ['rack!=r2', true],
    ['rack!=r1', false],
    ['missing!=x', true],
    ['missing=', false],
    ['empty=', true],
    ['empty', true],
    ['gpu,rack=r1', true],
    ['!gpu', false],
    ['!missing', true],
    ['gpu,rack=r2', false],
  ])('%j on {rack: r1, gpu: true, empty: ""} is %s', (selector, expected) => {
    expect(matchesLabels(labels, parseLabelSelector(selector))).toBe(expected);
  });

  it('does not treat inherited properties as labels', () => {
    expect(matchesLabels({}, [{ key: 'constructor', op: 'exists' }])).toBe(false);
    expect(matchesLabels({}, [{ key: 'toString', op: '!exists' }])).toBe(true);
  });
});
