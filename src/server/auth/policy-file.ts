// The operator's policy override file (`ingot server --policy-file FILE`): YAML mapping each
// action to a rule in the rule language, e.g.
//   secret:reveal: "role:platform-admin"
//   host:update: "role:platform-admin or role:controller"
//   host:delete: "!"
// Actions not named keep their default rule. The file is validated whole before it is used:
// an unknown action or role or a syntax error refuses the file with a message naming the
// action, line and column, and (on reload) the running policy stays as it was.
import { readFile } from 'node:fs/promises';
import { isMap, isScalar, LineCounter, parseDocument } from 'yaml';
import { ACTIONS, createPolicy, ROLES, type Action, type Policy } from './policy.js';
import { parseRule, rolesIn, RuleSyntaxError } from './rule-expression.js';

/** A policy file is a few dozen lines; this bounds what a mistaken path can make us parse. */
export const MAX_POLICY_FILE_BYTES = 256 * 1024;

export class PolicyFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PolicyFileError';
  }
}

/** Parses and validates policy file text into rule overrides (action -> rule text). */
export function parsePolicyFile(text: string, source = 'policy file'): Partial<Record<Action, string>> {
  if (Buffer.byteLength(text, 'utf8') > MAX_POLICY_FILE_BYTES) throw new PolicyFileError(`${source} is larger than ${MAX_POLICY_FILE_BYTES} bytes`);
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const at = lines.linePos(e.pos[0]);
    throw new PolicyFileError(`${source}, line ${at.line} column ${at.col}: not valid YAML: ${e.message.split('\n')[0]}`);
  }
  if (doc.contents === null) return {};
  if (!isMap(doc.contents)) throw new PolicyFileError(`${source}: must be a mapping of action to rule, e.g. 'secret:reveal: "role:platform-admin"'`);
  const overrides: Partial<Record<Action, string>> = {};
  for (const pair of doc.contents.items) {
    const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
    const keyPos = isScalar(pair.key) && pair.key.range ? lines.linePos(pair.key.range[0]) : { line: 0, col: 0 };
    const where = `${source}, line ${keyPos.line}`;
    if (!Object.prototype.hasOwnProperty.call(ACTIONS, key)) {
      throw new PolicyFileError(`${where}: unknown action "${key.slice(0, 100)}"; known actions: ${Object.keys(ACTIONS).join(', ')}`);
    }
    if (!isScalar(pair.value) || typeof pair.value.value !== 'string') {
      throw new PolicyFileError(`${where}: the rule for action "${key}" must be a quoted string such as "role:platform-admin or role:controller"`);
    }
    const text = pair.value.value;
    const valuePos = pair.value.range ? lines.linePos(pair.value.range[0]) : keyPos;
    // Quoted scalars start one character before the rule text.
    const quoted = pair.value.type === 'QUOTE_DOUBLE' || pair.value.type === 'QUOTE_SINGLE' ? 1 : 0;
    let rule;
    try {
      rule = parseRule(text);
    } catch (err) {
      if (!(err instanceof RuleSyntaxError)) throw err;
      throw new PolicyFileError(`${source}, line ${valuePos.line} column ${valuePos.col + quoted + err.column - 1}: rule for action "${key}": ${err.message}`);
    }
    for (const role of rolesIn(rule)) {
      if (!(ROLES as readonly string[]).includes(role)) {
        throw new PolicyFileError(`${where}: rule for action "${key}" names unknown role "${role}"; known roles: ${ROLES.join(', ')}`);
      }
    }
    overrides[key as Action] = text;
  }
  return overrides;
}

/** Reads, validates and builds the policy from a file; throws PolicyFileError naming the problem. */
export async function loadPolicyFile(path: string, options: { allowMd5Checksums?: boolean } = {}): Promise<Policy> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new PolicyFileError(`cannot read policy file ${path}: ${(err as Error).message}`);
  }
  return createPolicy({ overrides: parsePolicyFile(text, `policy file ${path}`), ...(options.allowMd5Checksums !== undefined ? { allowMd5Checksums: options.allowMd5Checksums } : {}) });
}
