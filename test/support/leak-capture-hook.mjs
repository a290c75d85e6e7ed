// Test-only capture for the suite-wide secret-leak check (scanner and design: leak-scan.ts).
// Loaded into every Node process of a test run that has INGOT_TEST_CAPTURE_DIR set: vitest
// workers import it from capture-setup.ts, and child processes (`ingot server`, the CLI,
// `ingot lab`, lab agents) get it through NODE_OPTIONS=--import, set by global-setup.ts. It is
// plain JavaScript so child processes can load it without a TypeScript loader. Nothing in
// production imports it.
//
// What it records, by appending to files in the capture directory:
// - known secret values (known-<pid>.tsv, "kind<TAB>base64(value)"), learned on the SERVER
//   side of every in-process HTTP server, so no test has to opt in: bearer tokens presented
//   (API, agent and OIDC tokens), Basic-auth and Redfish session credentials (BMC passwords of
//   the lab and fake BMCs), Secret stringData/data in request bodies, password/token fields in
//   request bodies, and token values minted by POST /api/v1/tokens;
// - output to check (out-<test file>.<pid>.<channel>.txt): every textual response body of an
//   Ingot listener (recognised by its x-request-id header), audit webhook deliveries, and the
//   stderr (where `ingot server` logs) of every non-vitest process.
// Intended disclosures are not output: the POST /api/v1/tokens answer (the one time a token is
// shown), GET /api/v1/secrets/NAME/reveal (the audited way to read a secret), the agent API's
// GET /agent/v1/commands (a host's deploy inputs, user data included, for its agent), and stdout,
// where the CLI prints what a person asked for (and `ingot server` its bootstrap token, once).
import { Buffer } from 'node:buffer';
import { openSync, writeSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const DIR_ENV = 'INGOT_TEST_CAPTURE_DIR';
const LABEL_ENV = 'INGOT_TEST_CAPTURE_LABEL';
const API = Symbol.for('ingot.test.capture');
/** Bodies are checked up to this size; larger ones are images, not API documents. */
const MAX_BODY = 1024 * 1024;
/** Shorter values are ignored (see leak-scan.ts); not recording them keeps the files small. */
export const MIN_SECRET_LENGTH = 8;
const TEXTUAL = /json|text|yaml|xml|event-stream|problem/i;

function install() {
  const known = new Set();
  const fds = new Map();

  const dir = () => process.env[DIR_ENV] || undefined;
  const label = () => (process.env[LABEL_ENV] || 'no-test-file').replace(/[^A-Za-z0-9._-]+/g, '_').slice(-120);

  function append(name, text) {
    const d = dir();
    if (d === undefined || text.length === 0) return;
    const path = join(d, name);
    let fd = fds.get(path);
    try {
      if (fd === undefined) {
        fd = openSync(path, 'a', 0o600);
        fds.set(path, fd);
      }
      writeSync(fd, text);
    } catch {
      // The check must never break the test it watches; a missing directory means no check.
    }
  }

  /** Records a value that must never appear in captured output. */
  function recordSecret(kind, value) {
    if (typeof value !== 'string' || value.length < MIN_SECRET_LENGTH || dir() === undefined) return;
    const key = `${kind}\u0000${value}`;
    if (known.has(key)) return;
    known.add(key);
    append(`known-${process.pid}.tsv`, `${kind.replace(/[\t\n]/g, ' ')}\t${Buffer.from(value, 'utf8').toString('base64')}\n`);
  }

  /** Appends text that must not contain a known value. */
  function recordOutput(channel, text) {
    if (typeof text !== 'string' || text.length === 0) return;
    append(`out-${label()}.${process.pid}.${channel}.txt`, text.endsWith('\n') ? text : `${text}\n`);
  }

  let yaml;
  function parseDocuments(text, contentType) {
    const trimmed = text.trimStart();
    if (/json/i.test(contentType) || trimmed.startsWith('{') || trimmed.startsWith('[')) {
      try {
        return [JSON.parse(text)];
      } catch {
        return [];
      }
    }
    if (/yaml/i.test(contentType)) {
      try {
        yaml ??= createRequire(import.meta.url)('yaml');
        return yaml.parseAllDocuments(text).map((d) => d.toJS());
      } catch {
        return [];
      }
    }
    return [];
  }

  const SECRET_FIELDS = /^(password|passphrase|token|secret|clientSecret|apiKey)$/i;
  function learnFromDocument(value, depth = 0) {
    if (depth > 20 || value === null || typeof value !== 'object') return;
    if (Array.isArray(value)) {
      for (const item of value) learnFromDocument(item, depth + 1);
      return;
    }
    if (value.stringData && typeof value.stringData === 'object') {
      for (const v of Object.values(value.stringData)) recordSecret('Secret stringData value', v);
    }
    if (value.kind === 'Secret' && value.data && typeof value.data === 'object') {
      for (const v of Object.values(value.data)) if (typeof v === 'string') recordSecret('Secret data value', Buffer.from(v, 'base64').toString('utf8'));
    }
    for (const [k, v] of Object.entries(value)) {
      if (typeof v === 'string' && SECRET_FIELDS.test(k)) recordSecret(`"${k}" field of a request body`, v);
      else if (v !== null && typeof v === 'object' && k !== 'stringData') learnFromDocument(v, depth + 1);
    }
  }

  function learnFromHeaders(headers) {
    const auth = headers.authorization;
    if (typeof auth === 'string') {
      const [scheme, credential = ''] = auth.split(/\s+/, 2);
      if (/^bearer$/i.test(scheme)) recordSecret('bearer token (API, agent or OIDC)', credential);
      else if (/^basic$/i.test(scheme)) {
        const decoded = Buffer.from(credential, 'base64').toString('utf8');
        recordSecret('Basic-auth password (BMC)', decoded.slice(decoded.indexOf(':') + 1));
      }
    }
    if (typeof headers['x-auth-token'] === 'string') recordSecret('Redfish session token', headers['x-auth-token']);
  }

  const STATE = Symbol('ingotCaptureState');

  function collect(chunks, state, field, chunk, encoding) {
    if (chunk === undefined || chunk === null || typeof chunk === 'function' || state[field] >= MAX_BODY) return;
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk, typeof encoding === 'string' ? encoding : 'utf8') : Buffer.from(chunk);
    chunks.push(buffer);
    state[field] += buffer.length;
  }

  function track(req, res) {
    const state = { reqChunks: [], reqBytes: 0, resChunks: [], resBytes: 0, head: {}, done: false };
    req[STATE] = state;
    learnFromHeaders(req.headers);
    const { write, end, writeHead } = res;
    res.writeHead = function (...args) {
      const headers = args.find((a, i) => i > 0 && a !== null && typeof a === 'object');
      if (headers && !Array.isArray(headers)) for (const [k, v] of Object.entries(headers)) state.head[k.toLowerCase()] = v;
      return writeHead.apply(this, args);
    };
    res.write = function (chunk, encoding, ...rest) {
      collect(state.resChunks, state, 'resBytes', chunk, encoding);
      return write.call(this, chunk, encoding, ...rest);
    };
    res.end = function (chunk, encoding, ...rest) {
      collect(state.resChunks, state, 'resBytes', chunk, encoding);
      const result = end.call(this, chunk, encoding, ...rest);
      finish(req, res, state);
      return result;
    };
    res.once('close', () => finish(req, res, state));
  }

  function finish(req, res, state) {
    if (state.done) return;
    state.done = true;
    try {
      const requestBody = Buffer.concat(state.reqChunks).toString('utf8');
      for (const doc of parseDocuments(requestBody, String(req.headers['content-type'] ?? ''))) learnFromDocument(doc);
      const headers = { ...res.getHeaders(), ...state.head };
      const path = (req.url ?? '').split('?')[0];
      if (headers['x-request-id'] !== undefined) {
        const body = Buffer.concat(state.resChunks).toString('utf8');
        if (req.method === 'POST' && path === '/api/v1/tokens') {
          // The one answer that shows a token: learn it, do not check it.
          for (const doc of parseDocuments(body, 'json')) if (doc && typeof doc.token === 'string') recordSecret('API token minted by POST /api/v1/tokens', doc.token);
          return;
        }
        if (req.method === 'GET' && /^\/api\/v1\/secrets\/[^/]+\/reveal$/.test(path)) return;
        // The agent listener hands a host's own deploy inputs (config-drive user data, which may
        // come from a Secret) to the agent holding that host's token: its one intended reader.
        if (req.method === 'GET' && path === '/agent/v1/commands') return;
        const contentType = String(headers['content-type'] ?? '');
        if (contentType === '' || TEXTUAL.test(contentType)) recordOutput('http', `${req.method} ${path} -> ${res.statusCode}\n${body}`);
      } else if (req.headers['user-agent'] === 'ingot-audit-webhook') {
        recordOutput('audit-webhook', requestBody);
      }
    } catch {
      // never break the server under test
    }
  }

  for (const Server of [http.Server, https.Server]) {
    const emit = Server.prototype.emit;
    Server.prototype.emit = function (event, ...args) {
      if (event === 'request' && dir() !== undefined) {
        try {
          track(args[0], args[1]);
        } catch {
          // never break the server under test
        }
      }
      return emit.call(this, event, ...args);
    };
  }
  // The HTTP parser hands each body chunk to req.push(); copying it there sees the body without
  // adding a 'data' listener (which would start the stream before the server reads it).
  const push = http.IncomingMessage.prototype.push;
  http.IncomingMessage.prototype.push = function (chunk, encoding) {
    const state = this[STATE];
    if (state !== undefined) collect(state.reqChunks, state, 'reqBytes', chunk, encoding);
    return push.call(this, chunk, encoding);
  };

  // Logs: `ingot server` writes JSON log lines to stderr. Vitest workers are skipped: their
  // stderr is the tests' own console output, not Ingot's.
  const isVitestWorker = /vitest|tinypool/.test(process.argv[1] ?? '');
  if (!isVitestWorker && dir() !== undefined) {
    const stderrWrite = process.stderr.write;
    process.stderr.write = function (chunk, encoding, ...rest) {
      try {
        recordOutput('stderr', typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
      } catch {
        // ignore
      }
      return stderrWrite.call(this, chunk, encoding, ...rest);
    };
  }

  globalThis[API] = { recordSecret, recordOutput };
}

if (globalThis[API] === undefined) install();

/** For test helpers: records a known secret value (no-op outside a capturing run). */
export function recordSecret(kind, value) {
  globalThis[API]?.recordSecret(kind, value);
}

/** For test helpers: records output to be checked (no-op outside a capturing run). */
export function recordOutput(channel, text) {
  globalThis[API]?.recordOutput(channel, text);
}
