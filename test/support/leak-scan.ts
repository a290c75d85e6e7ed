// The suite-wide secret-leak check: no known secret value may appear in any response body or
// log line captured during the whole test run (docs/security.md, "Leak check in the tests").
//
// How it works (no test has to opt in):
// 1. global-setup.ts creates a per-run capture directory under os.tmpdir(), exports it as
//    INGOT_TEST_CAPTURE_DIR, and puts `--import leak-capture-hook.mjs` in NODE_OPTIONS, so
//    every Node process of the run (vitest workers, `ingot server` and CLI children, labs and
//    their agents) loads the capture hook; capture-setup.ts (a vitest setup file) loads it in
//    workers too and labels the output with the test file.
// 2. The hook appends to files there: known values (known-<pid>.tsv) learned on the server side
//    of every HTTP request (bearer tokens, Basic-auth/Redfish credentials, Secret stringData
//    and data, password/token fields, tokens minted by POST /api/v1/tokens), and output
//    (out-<test file>.<pid>.<channel>.txt): Ingot's response bodies, audit webhook deliveries,
//    child-process stderr (the server's logs) and the API test fixture's debug log lines.
//    Appending is all the capture does during the run; nothing is scanned until the end.
// 3. At teardown, scanCaptureDir() reads every known value once, and scans every output file
//    once, in a single pass per file (values indexed by their first 8 characters), for each
//    value in its raw, JSON-escaped and base64 forms. A finding names the output file and the
//    kind of value and shows a SHA-256 prefix of the value, never the value itself.
// Values shorter than 8 characters are ignored: the check matches substrings, and short test
// values ("admin", "root", "secret", "x") occur by chance in ids, JSON field names and log
// text, so they would report leaks that are not; every real credential Ingot mints or a lab
// generates is far longer. PEM certificates are ignored too: they are public by design.
// Intended disclosures (the token-create answer, secret reveal, the agent's commands, CLI stdout)
// are not captured (leak-capture-hook.mjs says why each one).
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

export const MIN_SECRET_LENGTH = 8;
const KEY_LENGTH = MIN_SECRET_LENGTH;

export interface LeakFinding {
  /** The output file (in the capture directory) the value appeared in. */
  file: string;
  /** What the value is (e.g. "Secret stringData value"); every kind it was recorded as. */
  kinds: string[];
  /** First 12 hex digits of SHA-256 of the value: enough to tell values apart, useless to an attacker. */
  hashPrefix: string;
  /** raw, json-escaped or base64. */
  form: string;
  occurrences: number;
}

export interface LeakScanResult {
  findings: LeakFinding[];
  knownValues: number;
  ignoredShortValues: number;
  outputFiles: number;
  scannedBytes: number;
  durationMs: number;
}

interface Pattern {
  text: string;
  form: string;
  hashPrefix: string;
  kinds: Set<string>;
}

export function hashPrefix(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('hex').slice(0, 12);
}

/** Reads known-*.tsv: one "kind<TAB>base64(value)" per line. */
function readKnownValues(dir: string, files: string[]): { values: Map<string, Set<string>>; ignoredShort: number } {
  const values = new Map<string, Set<string>>();
  let ignoredShort = 0;
  for (const file of files) {
    for (const line of readFileSync(join(dir, file), 'utf8').split('\n')) {
      const tab = line.lastIndexOf('\t');
      if (tab <= 0) continue;
      const value = Buffer.from(line.slice(tab + 1), 'base64').toString('utf8');
      if (value.length < MIN_SECRET_LENGTH) {
        ignoredShort += 1;
        continue;
      }
      if (value.includes('-----BEGIN CERTIFICATE-----')) continue;
      let kinds = values.get(value);
      if (kinds === undefined) values.set(value, (kinds = new Set()));
      kinds.add(line.slice(0, tab));
    }
  }
  return { values, ignoredShort };
}

function patternsOf(values: Map<string, Set<string>>): Map<string, Pattern[]> {
  const index = new Map<string, Pattern[]>();
  const add = (text: string, form: string, value: string, kinds: Set<string>) => {
    if (text.length < KEY_LENGTH) return;
    const key = text.slice(0, KEY_LENGTH);
    const list = index.get(key) ?? [];
    if (list.some((p) => p.text === text)) return;
    list.push({ text, form, hashPrefix: hashPrefix(value), kinds });
    index.set(key, list);
  };
  for (const [value, kinds] of values) {
    add(value, 'raw', value, kinds);
    const escaped = JSON.stringify(value).slice(1, -1);
    if (escaped !== value) add(escaped, 'json-escaped', value, kinds);
    add(Buffer.from(value, 'utf8').toString('base64'), 'base64', value, kinds);
  }
  return index;
}

/** Every (pattern, count) found in text: one pass, a map lookup per position. */
function scanText(text: string, index: Map<string, Pattern[]>): Map<Pattern, number> {
  const hits = new Map<Pattern, number>();
  for (let i = 0; i + KEY_LENGTH <= text.length; i++) {
    const candidates = index.get(text.slice(i, i + KEY_LENGTH));
    if (candidates === undefined) continue;
    for (const p of candidates) if (text.startsWith(p.text, i)) hits.set(p, (hits.get(p) ?? 0) + 1);
  }
  return hits;
}

export function scanCaptureDir(dir: string): LeakScanResult {
  const started = Date.now();
  const entries = readdirSync(dir);
  const { values, ignoredShort } = readKnownValues(dir, entries.filter((f) => f.startsWith('known-') && f.endsWith('.tsv')));
  const index = patternsOf(values);
  const outputs = entries.filter((f) => f.startsWith('out-') && f.endsWith('.txt')).sort();
  const findings: LeakFinding[] = [];
  let scannedBytes = 0;
  for (const file of outputs) {
    const path = join(dir, file);
    scannedBytes += statSync(path).size;
    if (index.size === 0) continue;
    for (const [p, occurrences] of scanText(readFileSync(path, 'utf8'), index)) {
      findings.push({ file, kinds: [...p.kinds].sort(), hashPrefix: p.hashPrefix, form: p.form, occurrences });
    }
  }
  return { findings, knownValues: values.size, ignoredShortValues: ignoredShort, outputFiles: outputs.length, scannedBytes, durationMs: Date.now() - started };
}

/** The failure message: file, kind and hash prefix of each leaked value, never the value. */
export function formatLeakReport(result: LeakScanResult, dir: string): string {
  const lines = result.findings.map(
    (f) => `  - ${f.file}: ${f.kinds.join(' / ')} (sha256 ${f.hashPrefix}…, ${f.form}, ${f.occurrences} time${f.occurrences === 1 ? '' : 's'})`,
  );
  return [
    `secret leak check: ${result.findings.length} known secret value(s) appeared in captured output (response bodies, logs, webhook deliveries):`,
    ...lines,
    `The capture directory is kept for inspection: ${dir} (out-<test file>.<pid>.<channel>.txt).`,
    'Find a value by its hash prefix with the known-*.tsv files there; fix the code that echoed it (docs/security.md, "Leak check in the tests").',
  ].join('\n');
}

export function formatLeakSummary(result: LeakScanResult): string {
  return (
    `secret leak check: ${result.knownValues} known values (${result.ignoredShortValues} shorter than ${MIN_SECRET_LENGTH} characters ignored), ` +
    `${result.outputFiles} output files, ${(result.scannedBytes / 1024 / 1024).toFixed(1)} MiB scanned in ${result.durationMs} ms: ` +
    (result.findings.length === 0 ? 'no leaks' : `${result.findings.length} LEAK(S)`)
  );
}
