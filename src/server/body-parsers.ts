// Request body parsers for JSON, JSON merge patch (RFC 7386) and YAML manifests. A body that
// does not parse is a 400 INGOT_ERR_MALFORMED_BODY saying where (line and column), because
// the usual source is a hand-edited manifest. Keys that could reach Object.prototype through
// a later merge (`__proto__`, `constructor`, `prototype`) are refused outright.
import type { FastifyInstance } from 'fastify';
import { parseAllDocuments } from 'yaml';
import { IngotError } from '../model/errors.js';

export const JSON_TYPES = ['application/json', 'application/merge-patch+json'];
export const YAML_TYPES = ['application/yaml', 'application/x-yaml', 'text/yaml'];

/** YAML aliases can expand exponentially ("billion laughs"); a manifest never needs many. */
const MAX_YAML_ALIASES = 20;
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
const MAX_DEPTH = 64;

function malformed(message: string): IngotError {
  return new IngotError('INGOT_ERR_MALFORMED_BODY', message);
}

function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: offset - lineStart + 1 };
}

/**
 * Finds the offset of the first JSON syntax error (RFC 8259 grammar), because Node 20's
 * JSON.parse does not report one. Only called after JSON.parse has already failed.
 */
export function locateJsonError(text: string): number {
  let i = 0;
  const ws = (): void => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const fail = (): never => {
    throw i;
  };
  const literal = (word: string): void => {
    if (text.startsWith(word, i)) i += word.length;
    else fail();
  };
  const string = (): void => {
    if (text[i] !== '"') fail();
    i++;
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c === 34) {
        i++;
        return;
      }
      if (c < 0x20) fail();
      if (c === 92) {
        i++;
        const e = text[i];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) fail();
          i += 5;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) i++;
        else fail();
      } else i++;
    }
    fail();
  };
  const number = (): void => {
    const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(text.slice(i, i + 400));
    if (!m) fail();
    i += m![0].length;
  };
  const value = (depth: number): void => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      ws();
      if (text[i] === '}') {
        i++;
        return;
      }
      for (;;) {
        ws();
        string();
        ws();
        if (text[i] !== ':') fail();
        i++;
        value(depth + 1);
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === '}') {
          i++;
          return;
        } else fail();
      }
    } else if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') {
        i++;
        return;
      }
      for (;;) {
        value(depth + 1);
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === ']') {
          i++;
          return;
        } else fail();
      }
    } else if (c === '"') string();
    else if (c === 't') literal('true');
    else if (c === 'f') literal('false');
    else if (c === 'n') literal('null');
    else number();
  };
  try {
    value(0);
    ws();
    if (i < text.length) fail();
    return text.length;
  } catch (at) {
    if (typeof at === 'number') return at;
    throw at;
  }
}

/** Rejects prototype-polluting keys and absurd nesting anywhere in a parsed body. */
export function checkParsedBody(value: unknown, depth = 0): void {
  if (depth > MAX_DEPTH) throw malformed(`the body nests deeper than ${MAX_DEPTH} levels`);
  if (Array.isArray(value)) {
    for (const v of value) checkParsedBody(v, depth + 1);
  } else if (value !== null && typeof value === 'object') {
    for (const key of Object.keys(value)) {
      if (FORBIDDEN_KEYS.has(key)) throw malformed(`the key "${key}" is not allowed anywhere in a request body`);
      checkParsedBody((value as Record<string, unknown>)[key], depth + 1);
    }
  }
}

export function parseJsonBody(text: string): unknown {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    const { line, column } = lineColumn(text, locateJsonError(text));
    const what = text.trim() === '' ? 'the body is empty' : `invalid JSON at line ${line}, column ${column}`;
    throw malformed(`${what}; check the document with a JSON linter (or send YAML with Content-Type: application/yaml)`);
  }
  checkParsedBody(parsed);
  return parsed;
}

/** Parses exactly one YAML document (multi-document manifests are split by the CLI). */
export function parseYamlBody(text: string): unknown {
  const docs = parseAllDocuments(text, { prettyErrors: false, uniqueKeys: true, schema: 'core' });
  if (!Array.isArray(docs)) throw malformed('the body is empty; send one YAML document');
  if (docs.length === 0) throw malformed('the body is empty; send one YAML document');
  if (docs.length > 1) {
    throw malformed(`the body holds ${docs.length} YAML documents; send one per request (\`ingot apply -f\` splits them for you)`);
  }
  const doc = docs[0]!;
  const problem = doc.errors[0];
  if (problem) {
    const offset = problem.pos?.[0];
    const where = typeof offset === 'number' ? (({ line, column }) => `line ${line}, column ${column}`)(lineColumn(text, offset)) : 'an unknown position';
    // The yaml library's messages quote source context; keep only the first line of them.
    const reason = problem.message.split('\n')[0]!.replace(/ at line \d+, column \d+.*$/, '');
    throw malformed(`invalid YAML at ${where}: ${reason}`);
  }
  let parsed: unknown;
  try {
    parsed = doc.toJS({ maxAliasCount: MAX_YAML_ALIASES });
  } catch (err) {
    throw malformed(`the YAML document could not be read: ${(err as Error).message.split('\n')[0]}`);
  }
  checkParsedBody(parsed);
  return parsed;
}

/** Replaces Fastify's JSON parser and adds YAML and merge-patch; the body limit applies to all. */
export function registerBodyParsers(app: FastifyInstance, bodyLimit: number): void {
  app.removeContentTypeParser('application/json');
  app.removeContentTypeParser('text/plain');
  app.addContentTypeParser(JSON_TYPES, { parseAs: 'string', bodyLimit }, (_req, body, done) => {
    try {
      done(null, parseJsonBody(body as string));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
  app.addContentTypeParser(YAML_TYPES, { parseAs: 'string', bodyLimit }, (_req, body, done) => {
    try {
      done(null, parseYamlBody(body as string));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
}
