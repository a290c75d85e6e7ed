// Label selectors as in Kubernetes' equality-based syntax: `rack=r1,tier!=gold,gpu,!spare`.
// Parsed here (model depends on nothing) because the API, the CLI and the store all use it.
// Set-based forms (`in`, `notin`) are not supported yet; the error message says so.
import { LABEL_KEY_PATTERN, LABEL_VALUE_PATTERN } from './envelope.js';
import { validationError } from './errors.js';

/**
 * One requirement of a selector. Structurally identical to `LabelRequirement` in
 * src/store/store.ts (kept here so the model depends on nothing).
 */
export type LabelRequirement =
  | { key: string; op: '='; value: string }
  | { key: string; op: '!='; value: string }
  | { key: string; op: 'exists' }
  | { key: string; op: '!exists' };

/** Bounds on untrusted input: a selector arrives in a query string. */
export const MAX_LABEL_SELECTOR_LENGTH = 4096;
export const MAX_LABEL_REQUIREMENTS = 64;

const LABEL_KEY = new RegExp(LABEL_KEY_PATTERN);
const LABEL_VALUE = new RegExp(LABEL_VALUE_PATTERN);
const EXPECTED = 'expected comma-separated requirements of the form key=value, key==value, key!=value, key or !key';

function selectorError(message: string): Error {
  return validationError([{ field: 'labelSelector', message: `${message}; ${EXPECTED}` }]);
}

function checkKey(key: string, requirement: string): void {
  if (!LABEL_KEY.test(key) || key.length > 317) {
    throw selectorError(
      `"${requirement}" has an invalid label key "${key}" (a key is an optional DNS-subdomain prefix and "/", then 1-63 letters, digits, "-", "_" or ".", starting and ending with a letter or digit)`,
    );
  }
}

function checkValue(value: string, requirement: string): void {
  if (!LABEL_VALUE.test(value) || value.length > 63) {
    throw selectorError(
      `"${requirement}" has an invalid label value "${value}" (a value is empty or 1-63 letters, digits, "-", "_" or ".", starting and ending with a letter or digit)`,
    );
  }
}

/**
 * Parses `a=b`, `a==b`, `a!=b`, `a`, `!a`, separated by commas (whitespace around parts is
 * ignored). An empty or blank selector selects everything and yields `[]`.
 * Throws IngotError INGOT_ERR_VALIDATION naming the field `labelSelector`.
 */
export function parseLabelSelector(text: string): LabelRequirement[] {
  if (text.length > MAX_LABEL_SELECTOR_LENGTH) {
    throw selectorError(`the selector is ${text.length} characters long, more than the ${MAX_LABEL_SELECTOR_LENGTH} allowed`);
  }
  if (text.trim() === '') return [];
  const parts = text.split(',');
  if (parts.length > MAX_LABEL_REQUIREMENTS) {
    throw selectorError(`the selector has ${parts.length} requirements, more than the ${MAX_LABEL_REQUIREMENTS} allowed`);
  }
  const requirements: LabelRequirement[] = [];
  for (const rawPart of parts) {
    const part = rawPart.trim();
    if (part === '') throw selectorError('the selector has an empty requirement (two commas in a row, or a comma at either end)');
    const notEqual = part.indexOf('!=');
    const equal = part.indexOf('=');
    if (notEqual >= 0) {
      const key = part.slice(0, notEqual).trim();
      const value = part.slice(notEqual + 2).trim();
      if (value.includes('=')) throw selectorError(`"${part}" has more than one operator`);
      checkKey(key, part);
      checkValue(value, part);
      requirements.push({ key, op: '!=', value });
    } else if (equal >= 0) {
      const key = part.slice(0, equal).trim();
      let rest = part.slice(equal + 1);
      if (rest.startsWith('=')) rest = rest.slice(1);
      const value = rest.trim();
      if (value.includes('=')) throw selectorError(`"${part}" has more than one operator`);
      checkKey(key, part);
      checkValue(value, part);
      requirements.push({ key, op: '=', value });
    } else if (part.startsWith('!')) {
      const key = part.slice(1).trim();
      checkKey(key, part);
      requirements.push({ key, op: '!exists' });
    } else {
      if (/\s/.test(part)) {
        throw selectorError(`"${part}" contains spaces; set-based forms such as "key in (a,b)" are not supported`);
      }
      checkKey(part, part);
      requirements.push({ key: part, op: 'exists' });
    }
  }
  return requirements;
}

/** Formats requirements back into selector text (parseLabelSelector(format(r)) equals r). */
export function formatLabelSelector(requirements: readonly LabelRequirement[]): string {
  return requirements
    .map((r) => {
      switch (r.op) {
        case '=':
          return `${r.key}=${r.value}`;
        case '!=':
          return `${r.key}!=${r.value}`;
        case 'exists':
          return r.key;
        case '!exists':
          return `!${r.key}`;
      }
    })
    .join(',');
}

/**
 * Whether `labels` satisfy every requirement. As in Kubernetes, `key!=value` also matches
 * objects that do not have the label at all.
 */
export function matchesLabels(labels: Readonly<Record<string, string>>, requirements: readonly LabelRequirement[]): boolean {
  for (const r of requirements) {
    const has = Object.hasOwn(labels, r.key);
    switch (r.op) {
      case '=':
        if (!has || labels[r.key] !== r.value) return false;
        break;
      case '!=':
        if (has && labels[r.key] === r.value) return false;
        break;
      case 'exists':
        if (!has) return false;
        break;
      case '!exists':
        if (has) return false;
        break;
    }
  }
  return true;
}
