// Request body parsers for JSON, JSON merge patch (RFC 7386) and YAML manifests. A body that
// does not parse is a 400 INGOT_ERR_MALFORMED_BODY saying where (line and column), because
// the usual source is a hand-edited manifest. Keys that could reach Object.prototype through
// a later merge (`__proto__`, `constructor`, `prototype`) are refused outright.
import type { FastifyInstance } from 'fastify';
import { parseAllDocuments } from 'yaml';
import { IngotError } from '../model/errors.js';
import { BodyScanError, DEFAULT_BODY_BOUNDS, type BodyBounds } from './body-scan-error.js';
import { scanJson } from './json-scan.js';
import { decodeBodyText } from './utf8-text.js';
import { scanYaml } from './yaml-scan.js';

export const JSON_TYPES = ['application/json', 'application/merge-patch+json'];
export const YAML_TYPES = ['application/yaml', 'application/x-yaml', 'text/yaml'];

/** A high surrogate not followed by a low one, or a low one not preceded by a high one. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

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

/** Where a value sits in a body, for messages: `spec.labels.x`, `items[2]`. */
function fieldPath(path: string, key: string | number): string {
  return typeof key === 'number' ? `${path}[${key}]` : path === '' ? key : `${path}.${key}`;
}

/** Strings that are not well-formed Unicode (a lone surrogate, from a `\ud800` escape) or hold NUL. */
function checkString(value: string, path: string): void {
  if (LONE_SURROGATE.test(value)) throw malformed(`${path || 'the body'} holds invalid Unicode (a lone surrogate); send well-formed UTF-8 text`);
  if (value.includes('\u0000')) throw malformed(`${path || 'the body'} holds a NUL character (U+0000), which no field accepts`);
}

/**
 * Rejects prototype-polluting keys, absurd nesting, too many values and strings that are not
 * well-formed Unicode anywhere in a parsed body (keys included). The scanners have already
 * bounded the text; this checks the value as built, after YAML aliases expanded.
 */
export function checkParsedBody(value: unknown, bounds: BodyBounds = DEFAULT_BODY_BOUNDS): void {
  let nodes = 0;
  const visit = (v: unknown, depth: number, path: string): void => {
    if (++nodes > bounds.maxNodes) throw malformed(`the body holds more than ${bounds.maxNodes} values`);
    if (depth > bounds.maxDepth) throw malformed(`the body nests deeper than ${bounds.maxDepth} levels`);
    if (typeof v === 'string') checkString(v, path);
    else if (Array.isArray(v)) v.forEach((item, i) => visit(item, depth + 1, fieldPath(path, i)));
    else if (v !== null && typeof v === 'object') {
      for (const key of Object.keys(v)) {
        if (FORBIDDEN_KEYS.has(key)) throw malformed(`the key "${key}" is not allowed anywhere in a request body`);
        checkString(key, fieldPath(path, key));
        visit((v as Record<string, unknown>)[key], depth + 1, fieldPath(path, key));
      }
    }
  };
  visit(value, 0, '');
}

function scanFailure(text: string, err: BodyScanError, language: string): IngotError {
  const { line, column } = lineColumn(text, err.offset);
  return malformed(`${language} at line ${line}, column ${column}: ${err.message}`);
}

export function parseJsonBody(text: string, bounds: BodyBounds = DEFAULT_BODY_BOUNDS): unknown {
  if (text.trim() === '') throw malformed('the body is empty; send a JSON document (or YAML with Content-Type: application/yaml)');
  try {
    scanJson(text, bounds);
  } catch (err) {
    if (!(err instanceof BodyScanError)) throw err;
    const failure = scanFailure(text, err, 'invalid JSON');
    throw malformed(`${failure.message}; check the document with a JSON linter (or send YAML with Content-Type: application/yaml)`);
  }
  const parsed: unknown = JSON.parse(text);
  checkParsedBody(parsed, bounds);
  return parsed;
}

/** Parses exactly one YAML document (multi-document manifests are split by the CLI). */
export function parseYamlBody(text: string, bounds: BodyBounds = DEFAULT_BODY_BOUNDS): unknown {
  try {
    scanYaml(text, bounds);
  } catch (err) {
    if (!(err instanceof BodyScanError)) throw err;
    throw scanFailure(text, err, 'YAML refused');
  }
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
    parsed = doc.toJS({ maxAliasCount: bounds.maxAliases });
  } catch (err) {
    throw malformed(`the YAML document could not be read: ${(err as Error).message.split('\n')[0]}`);
  }
  checkParsedBody(parsed, bounds);
  return parsed;
}

/** Decodes the bytes strictly, then parses; every failure is a 400 naming where. */
function parseBody(bytes: Buffer, parse: (text: string, bounds: BodyBounds) => unknown, bounds: BodyBounds): unknown {
  let text: string;
  try {
    text = decodeBodyText(bytes);
  } catch (err) {
    if (!(err instanceof BodyScanError)) throw err;
    if (err.inBytes) throw malformed(`${err.message} (first bad byte at offset ${err.offset}); send UTF-8 text`);
    throw scanFailure(bytes.toString('utf8'), err, 'the body is refused');
  }
  return parse(text, bounds);
}

/**
 * Replaces Fastify's JSON parser and adds YAML and merge-patch; the body limit applies to all,
 * and the bounds (depth, values, aliases) are checked before any library builds the value.
 */
export function registerBodyParsers(app: FastifyInstance, bodyLimit: number, bounds: BodyBounds = DEFAULT_BODY_BOUNDS): void {
  app.removeContentTypeParser('application/json');
  app.removeContentTypeParser('text/plain');
  app.addContentTypeParser(JSON_TYPES, { parseAs: 'buffer', bodyLimit }, (_req, body, done) => {
    try {
      done(null, parseBody(body as Buffer, parseJsonBody, bounds));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
  app.addContentTypeParser(YAML_TYPES, { parseAs: 'buffer', bodyLimit }, (_req, body, done) => {
    try {
      done(null, parseBody(body as Buffer, parseYamlBody, bounds));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
}
