// The policy rule language, after oslo.policy's check strings:
//   role:NAME            the identity holds role NAME
//   @                    any authenticated identity
//   !                    nobody
//   approval:required    a second person must approve: false on its own request (fail closed),
//                        true when evaluated for a request another identity approved
//                        (src/server/approvals/)
//   A and B, A or B, ( … )   `and` binds tighter than `or`
// Parsed once into an AST when the policy loads; a syntax error names the 1-based column.
export type RuleExpression =
  | { type: 'role'; role: string }
  | { type: 'any' }
  | { type: 'none' }
  | { type: 'approval' }
  | { type: 'and'; items: RuleExpression[] }
  | { type: 'or'; items: RuleExpression[] };

export class RuleSyntaxError extends Error {
  /** 1-based column of the offending character in the rule text. */
  readonly column: number;
  constructor(message: string, column: number) {
    super(message);
    this.name = 'RuleSyntaxError';
    this.column = column;
  }
}

/** Longest rule text accepted: rules are short; this bounds parsing work on a hostile file. */
export const MAX_RULE_LENGTH = 4096;
const ROLE_NAME = /^[a-z][a-z0-9-]{0,62}$/;

interface Token {
  text: string;
  column: number;
}

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  const re = /\s*(\(|\)|[^\s()]+)/gy;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text)) !== null) {
    if (m[1] === undefined) break;
    tokens.push({ text: m[1], column: m.index + m[0].length - m[1].length + 1 });
  }
  return tokens;
}

export function parseRule(text: string): RuleExpression {
  if (typeof text !== 'string') throw new RuleSyntaxError('a rule must be a string such as "role:platform-admin or role:controller"', 1);
  if (text.length > MAX_RULE_LENGTH) throw new RuleSyntaxError(`the rule is ${text.length} characters long, more than ${MAX_RULE_LENGTH}`, MAX_RULE_LENGTH);
  const tokens = tokenize(text);
  let pos = 0;
  const end = text.length + 1;
  const peek = () => tokens[pos];
  const columnHere = () => peek()?.column ?? end;

  function parseOr(depth: number): RuleExpression {
    const items = [parseAnd(depth)];
    while (peek()?.text === 'or') {
      pos++;
      items.push(parseAnd(depth));
    }
    return items.length === 1 ? items[0]! : { type: 'or', items };
  }
  function parseAnd(depth: number): RuleExpression {
    const items = [parseAtom(depth)];
    while (peek()?.text === 'and') {
      pos++;
      items.push(parseAtom(depth));
    }
    return items.length === 1 ? items[0]! : { type: 'and', items };
  }
  function parseAtom(depth: number): RuleExpression {
    const token = peek();
    if (!token) throw new RuleSyntaxError('the rule ends where a check (role:NAME, @, !, approval:required or "(") was expected', end);
    pos++;
    if (token.text === '(') {
      if (depth >= 16) throw new RuleSyntaxError('parentheses nest deeper than 16 levels', token.column);
      const inner = parseOr(depth + 1);
      if (peek()?.text !== ')') throw new RuleSyntaxError('"(" is not closed by ")"', columnHere());
      pos++;
      return inner;
    }
    if (token.text === '@') return { type: 'any' };
    if (token.text === '!') return { type: 'none' };
    if (token.text === 'approval:required') return { type: 'approval' };
    if (token.text.startsWith('role:')) {
      const role = token.text.slice(5);
      if (!ROLE_NAME.test(role)) throw new RuleSyntaxError(`"${token.text.slice(0, 80)}" is not role:NAME with a lower-case role name`, token.column);
      return { type: 'role', role };
    }
    throw new RuleSyntaxError(`unexpected "${token.text.slice(0, 80)}"; expected role:NAME, @, !, approval:required or "("`, token.column);
  }

  const expression = parseOr(0);
  if (pos < tokens.length) {
    const token = tokens[pos]!;
    throw new RuleSyntaxError(`unexpected "${token.text.slice(0, 80)}" after a complete rule; join checks with "and" or "or"`, token.column);
  }
  return expression;
}

/**
 * Whether the roles satisfy the rule. approval:required is `approved`: false for a request on
 * its own (fail closed); true when asking "would it be allowed once another identity approves?".
 */
export function evaluateRule(rule: RuleExpression, roles: readonly string[], approved = false): boolean {
  switch (rule.type) {
    case 'role':
      return roles.includes(rule.role);
    case 'any':
      return true;
    case 'none':
      return false;
    case 'approval':
      return approved;
    case 'and':
      return rule.items.every((r) => evaluateRule(r, roles, approved));
    case 'or':
      return rule.items.some((r) => evaluateRule(r, roles, approved));
  }
}

/** Every role name the rule mentions (for validation and the "ask for a token with…" hint). */
export function rolesIn(rule: RuleExpression): string[] {
  switch (rule.type) {
    case 'role':
      return [rule.role];
    case 'and':
    case 'or':
      return [...new Set(rule.items.flatMap(rolesIn))];
    default:
      return [];
  }
}

export function requiresApproval(rule: RuleExpression): boolean {
  if (rule.type === 'approval') return true;
  if (rule.type === 'and' || rule.type === 'or') return rule.items.some(requiresApproval);
  return false;
}

/** The canonical text of a rule (what the authz matrix shows). */
export function formatRule(rule: RuleExpression): string {
  switch (rule.type) {
    case 'role':
      return `role:${rule.role}`;
    case 'any':
      return '@';
    case 'none':
      return '!';
    case 'approval':
      return 'approval:required';
    case 'and':
      return rule.items.map((r) => (r.type === 'or' ? `(${formatRule(r)})` : formatRule(r))).join(' and ');
    case 'or':
      return rule.items.map(formatRule).join(' or ');
  }
}
