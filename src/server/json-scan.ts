// A bounded, non-recursive pass over JSON text (RFC 8259 grammar) run before JSON.parse.
// It finds the first syntax error with its offset (Node 20's JSON.parse does not report one)
// and refuses documents nested deeper or holding more values than the bounds allow, using an
// explicit stack whose size the depth bound caps: a body of 300,000 '[' costs one linear scan
// that stops at the 65th, never a stack frame per level.
import { BodyScanError, type BodyBounds } from './body-scan-error.js';

const WHITESPACE = new Set([0x20, 0x09, 0x0a, 0x0d]);
const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
const HEX4 = /[0-9a-fA-F]{4}/y;

/** Throws BodyScanError at the first syntax error or exceeded bound; returns when the text is one valid JSON value. */
export function scanJson(text: string, bounds: BodyBounds): void {
  let i = 0;
  /** Open containers: true for an object, false for an array. */
  const open: boolean[] = [];
  let nodes = 0;
  const fail = (reason: string, at = i): never => {
    throw new BodyScanError(at >= text.length ? 'the JSON document ends too early' : reason, at);
  };
  const ws = (): void => {
    while (i < text.length && WHITESPACE.has(text.charCodeAt(i))) i++;
  };
  const countNode = (): void => {
    if (++nodes > bounds.maxNodes) fail(`the body holds more than ${bounds.maxNodes} values`);
  };
  const string = (): void => {
    if (text[i] !== '"') fail('expected a string in double quotes');
    i++;
    for (;;) {
      if (i >= text.length) fail('unterminated string');
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return;
      }
      if (c < 0x20) fail('control character in a string (escape it)');
      if (c === 0x5c) {
        const e = text[i + 1];
        if (e === 'u') {
          HEX4.lastIndex = i + 2;
          if (!HEX4.test(text)) fail('invalid \\u escape');
          i += 6;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) i += 2;
        else fail('invalid escape in a string');
      } else i++;
    }
  };
  const literal = (word: string): void => {
    if (text.startsWith(word, i)) i += word.length;
    else fail('expected a value');
  };

  for (;;) {
    // A value is expected at i.
    ws();
    const c = text[i];
    if (c === '{' || c === '[') {
      countNode();
      open.push(c === '{');
      if (open.length > bounds.maxDepth) fail(`the body nests deeper than ${bounds.maxDepth} levels`);
      i++;
      ws();
      if (text[i] === (c === '{' ? '}' : ']')) {
        i++;
        open.pop();
      } else {
        if (c === '{') {
          string();
          ws();
          if (text[i] !== ':') fail("expected ':' after an object key");
          i++;
        }
        continue;
      }
    } else {
      countNode();
      if (c === '"') string();
      else if (c === 't') literal('true');
      else if (c === 'f') literal('false');
      else if (c === 'n') literal('null');
      else {
        NUMBER.lastIndex = i;
        const m = NUMBER.exec(text);
        if (!m || m[0].length === 0 || m[0] === '-') fail('expected a value');
        i += m![0].length;
      }
    }
    // A value ended: close containers or move to the next member.
    for (;;) {
      ws();
      if (open.length === 0) {
        if (i < text.length) fail('unexpected text after the JSON document');
        return;
      }
      const inObject = open[open.length - 1]!;
      const d = text[i];
      if (d === ',') {
        i++;
        if (inObject) {
          ws();
          string();
          ws();
          if (text[i] !== ':') fail("expected ':' after an object key");
          i++;
        }
        break;
      }
      if (d === (inObject ? '}' : ']')) {
        i++;
        open.pop();
        continue;
      }
      fail(inObject ? "expected ',' or '}'" : "expected ',' or ']'");
    }
  }
}
