// Turns Ajv's schema errors into messages a person can act on: the field as a dotted path
// (`spec.bmc.address`) and what to write instead, never the rejected value (it may be a secret).
import { DNS_LABEL_PATTERN, LABEL_KEY_PATTERN, LABEL_VALUE_PATTERN } from '../model/envelope.js';
import type { FieldProblem } from '../model/errors.js';

/** The parts of an Ajv ErrorObject we read (Ajv is run with `verbose: true`, so parentSchema is set). */
export interface SchemaError {
  instancePath: string;
  keyword: string;
  params: Record<string, unknown>;
  message?: string;
  parentSchema?: Record<string, unknown>;
}

/** Patterns whose regular expression means little to a reader, with a phrase that does. */
const PATTERN_PHRASES: Record<string, string> = {
  [DNS_LABEL_PATTERN]: "must be a DNS label: lower-case letters, digits and '-', at most 63 characters, starting and ending with a letter or digit",
  [LABEL_KEY_PATTERN]: "must be a label key: an optional DNS-subdomain prefix and '/', then 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
  [LABEL_VALUE_PATTERN]: "must be a label value: empty, or 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
};

/** `/spec/bmc/address` -> `spec.bmc.address`; keys that are not identifiers are quoted (`metadata.labels["a/b"]`). */
export function dottedPath(instancePath: string, prefix = ''): string {
  const parts = instancePath
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  let out = prefix;
  for (const part of parts) {
    if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(part)) out += out ? `.${part}` : part;
    else if (/^[0-9]+$/.test(part)) out += `[${part}]`;
    else out += `[${JSON.stringify(part)}]`;
  }
  return out;
}

function join(base: string, key: string): string {
  return dottedPath(`/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`, base);
}

function describeType(t: unknown): string {
  const name = Array.isArray(t) ? t.join(' or ') : String(t);
  const article = /^[aeiou]/.test(name) ? 'an' : 'a';
  return name === 'null' ? 'null' : `${article} ${name}`;
}

/**
 * One problem per field (Ajv with allErrors may report several keywords for one field; the
 * first is kept). `prefix` names the request part for non-body errors (e.g. `query`).
 */
export function humanizeSchemaErrors(errors: readonly SchemaError[], prefix = ''): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const seen = new Set<string>();
  for (const e of errors) {
    const base = dottedPath(e.instancePath, prefix);
    let field = base || '(body)';
    let message: string;
    const parent = e.parentSchema ?? {};
    switch (e.keyword) {
      case 'additionalProperties': {
        const key = String(e.params.additionalProperty);
        field = join(base, key);
        const allowed = Object.keys((parent.properties as Record<string, unknown> | undefined) ?? {});
        message = allowed.length > 0 ? `unknown field; remove it (allowed: ${allowed.join(', ')})` : 'unknown field; remove it';
        break;
      }
      case 'required':
        field = join(base, String(e.params.missingProperty));
        message = 'is required';
        break;
      case 'pattern': {
        const pattern = String(e.params.pattern);
        const description = typeof parent.description === 'string' ? parent.description : undefined;
        message = PATTERN_PHRASES[pattern] ?? (description ? `must be ${description}` : `must match the pattern ${pattern}`);
        break;
      }
      case 'type':
        message = `must be ${describeType(e.params.type)}`;
        break;
      case 'enum':
        message = `must be one of: ${(e.params.allowedValues as unknown[]).map((v) => String(v)).join(', ')}`;
        break;
      case 'const':
        message = `must be ${JSON.stringify(e.params.allowedValue)}`;
        break;
      case 'maxLength':
        message = `must be at most ${String(e.params.limit)} characters long`;
        break;
      case 'minLength':
        message = Number(e.params.limit) === 1 ? 'must not be empty' : `must be at least ${String(e.params.limit)} characters long`;
        break;
      case 'maxProperties':
        message = `must have at most ${String(e.params.limit)} entries`;
        break;
      case 'minProperties':
        message = `must have at least ${String(e.params.limit)} ${Number(e.params.limit) === 1 ? 'entry' : 'entries'}`;
        break;
      default:
        message = e.message ?? `fails the ${e.keyword} check`;
    }
    if (seen.has(field)) continue;
    seen.add(field);
    problems.push({ field, message });
  }
  return problems;
}
