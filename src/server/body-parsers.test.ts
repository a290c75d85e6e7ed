import { describe, expect, it } from 'vitest';
import { locateJsonError, parseJsonBody, parseYamlBody } from './body-parsers.js';

describe('locateJsonError', () => {
  it.each([
    ['{"a":}', 5],
    ['{"a":1,}', 7],
    ['[1 2]', 3],
    ['{"a":"b\u0001"}', 7],
    ['{"a":1} x', 8],
    ['{"a":tru}', 5],
  ])('finds the error in %j at offset %i', (text, offset) => {
    expect(() => JSON.parse(text)).toThrow();
    expect(locateJsonError(text)).toBe(offset);
  });
});

describe('parseJsonBody', () => {
  it('reports line and column', () => {
    expect(() => parseJsonBody('{\n  "a": 1,\n  "b": ]\n}')).toThrow(/line 3, column 8/);
  });
  it('refuses prototype keys at any depth', () => {
    expect(() => parseJsonBody('{"spec":{"x":{"constructor":{"prototype":1}}}}')).toThrow(/constructor/);
  });
});

describe('parseYamlBody', () => {
  it('parses one document', () => {
    expect(parseYamlBody('metadata:\n  name: a\n')).toEqual({ metadata: { name: 'a' } });
  });
  it('refuses alias bombs', () => {
    const bomb = ['a: &a [x, x, x, x, x, x, x, x, x, x]', ...Array.from({ length: 8 }, (_, i) => `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(10).fill(`*${String.fromCharCode(97 + i)}`).join(', ')}]`)].join('\n');
    expect(() => parseYamlBody(bomb)).toThrow(/could not be read|alias/i);
  });
  it('refuses duplicate keys with a position', () => {
    expect(() => parseYamlBody('a: 1\na: 2\n')).toThrow(/invalid YAML at line 2, column 1/);
  });
});
