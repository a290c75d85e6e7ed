import { describe, expect, it } from 'vitest';
import { parseJsonBody, parseYamlBody } from './body-parsers.js';
import { DEFAULT_BODY_BOUNDS } from './body-scan-error.js';
import { scanJson } from './json-scan.js';

describe('scanJson', () => {
  it.each([
    ['{"a":}', 5],
    ['{"a":1,}', 7],
    ['[1 2]', 3],
    ['{"a":"b\u0001"}', 7],
    ['{"a":1} x', 8],
    ['{"a":tru}', 5],
  ])('finds the error in %j at offset %i', (text, offset) => {
    expect(() => JSON.parse(text)).toThrow();
    expect(() => scanJson(text, DEFAULT_BODY_BOUNDS)).toThrow(expect.objectContaining({ offset }));
  });
  it.each(['{}', '[]', '{"a":[1,-2.5e3,true,false,null,"x\\u00e9\\n"],"b":{}}', ' 7 '])('accepts %j as JSON.parse does', (text) => {
    expect(() => JSON.parse(text)).not.toThrow();
    expect(() => scanJson(text, DEFAULT_BODY_BOUNDS)).not.toThrow();
  });
  it('stops at the depth bound without recursing, however deep the text', () => {
    expect(() => scanJson('['.repeat(300_000), DEFAULT_BODY_BOUNDS)).toThrow(expect.objectContaining({ offset: 64, message: expect.stringMatching(/deeper than 64/) }));
    expect(() => scanJson('['.repeat(64) + ']'.repeat(64), DEFAULT_BODY_BOUNDS)).not.toThrow();
  });
  it('counts values', () => {
    expect(() => scanJson(`[${Array(11).fill(0).join(',')}]`, { ...DEFAULT_BODY_BOUNDS, maxNodes: 10 })).toThrow(/more than 10 values/);
  });
});

describe('parseJsonBody', () => {
  it('reports line and column', () => {
    expect(() => parseJsonBody('{\n  "a": 1,\n  "b": ]\n}')).toThrow(/line 3, column 8/);
  });
  it('answers a deeply nested invalid document with its position', () => {
    expect(() => parseJsonBody('['.repeat(300_000))).toThrow(/line 1, column 65: the body nests deeper than 64 levels/);
  });
  it('refuses lone surrogates and NUL in strings and keys, naming the field', () => {
    expect(() => parseJsonBody('{"stringData":{"password":"\\ud800"}}')).toThrow(/stringData.password holds invalid Unicode/);
    expect(() => parseJsonBody('{"a":["ok","\\udc00x"]}')).toThrow(/a\[1\] holds invalid Unicode/);
    expect(() => parseJsonBody('{"\\ud83d":1}')).toThrow(/invalid Unicode/);
    expect(() => parseJsonBody('{"a":"x\\u0000"}')).toThrow(/a holds a NUL/);
    expect(parseJsonBody('{"a":"\\ud83d\\ude00"}')).toEqual({ a: '😀' });
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
  it('refuses deep flow and block nesting before the library recurses', () => {
    expect(() => parseYamlBody('['.repeat(100_000))).toThrow(/line 1, column 65: the body nests deeper than 64 levels/);
    expect(() => parseYamlBody(`${Array(1000).fill('-').join(' ')} x\n`)).toThrow(/deeper than 64 levels/);
    const indented = Array.from({ length: 70 }, (_, i) => `${' '.repeat(i * 2)}k${i}:`).join('\n') + ' x\n';
    expect(() => parseYamlBody(indented)).toThrow(/deeper than 64 levels/);
  });
  it('does not take block scalar text, quoted text or comments for structure', () => {
    const text = `a: |\n  ${'- '.repeat(100)}[[[[\nb: "${'['.repeat(100)}" # ${'{'.repeat(100)}\nc: [${'x, '.repeat(50)}y]\n`;
    expect(parseYamlBody(text)).toMatchObject({ b: '['.repeat(100) });
  });
  it('takes a manifest nested as deep as the bound allows', () => {
    const nested = Array.from({ length: 30 }, (_, i) => `${' '.repeat(i * 2)}- k${i}:`).join('\n') + ' x\n';
    expect(() => parseYamlBody(nested)).not.toThrow();
  });
  it('counts aliases before expanding them', () => {
    const text = ['a: &a [1]', ...Array.from({ length: 21 }, (_, i) => `b${i}: *a`)].join('\n');
    expect(() => parseYamlBody(text)).toThrow(/more than 20 YAML aliases/);
  });
  it('refuses lone surrogates from escapes', () => {
    expect(() => parseYamlBody('a: "\\ud800"\n')).toThrow(/invalid Unicode/);
  });
  it('refuses duplicate keys with a position', () => {
    expect(() => parseYamlBody('a: 1\na: 2\n')).toThrow(/invalid YAML at line 2, column 1/);
  });
});
