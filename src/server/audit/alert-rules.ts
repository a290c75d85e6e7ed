// Alert rules: a YAML file of rules, each matching some audit events; a match is
// sent to the webhook as {type: 'alert', rule, severity, event}. Example:
// docs/examples/alert-rules.yaml. All conditions of a rule must hold; a list matches if any
// of its items does.
import { Type, type Static } from 'typebox';
import { Compile } from 'typebox/compile';
import { parse as parseYaml } from 'yaml';
import type { StoredAuditEvent } from '../../model/audit-event.js';
import { AUDIT_OUTCOMES } from '../../model/audit-event.js';
import { validationError, type FieldProblem } from '../../model/errors.js';

export const ALERT_SEVERITIES = ['info', 'low', 'medium', 'high', 'critical'] as const;
export type AlertSeverity = (typeof ALERT_SEVERITIES)[number];

const MAX_RULES_FILE_BYTES = 256 * 1024;
const MAX_RULES = 500;

const Glob = Type.String({ minLength: 1, maxLength: 256 });
const GlobList = Type.Array(Glob, { minItems: 1, maxItems: 100 });
const RoleOrRoles = Type.Union([Type.String({ minLength: 1, maxLength: 128 }), Type.Array(Type.String({ minLength: 1, maxLength: 128 }), { minItems: 1, maxItems: 50 })]);

const AlertMatch = Type.Object(
  {
    /** Globs on the action (`host:*`, `secret:update`); `*` matches any run of characters. */
    actions: Type.Optional(GlobList),
    outcomes: Type.Optional(Type.Array(Type.Enum([...AUDIT_OUTCOMES]), { minItems: 1, maxItems: 4 })),
    /** Target kinds (`Host`, `Secret`), exactly. */
    targetKinds: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { minItems: 1, maxItems: 50 })),
    /** Globs on the actor. */
    actors: Type.Optional(GlobList),
    /** The actor has none of these roles. */
    actorLacksRole: Type.Optional(RoleOrRoles),
    /** The actor has at least one of these roles. */
    actorHasRole: Type.Optional(RoleOrRoles),
  },
  { additionalProperties: false },
);

const AlertRuleSchema = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 128 }),
    description: Type.Optional(Type.String({ maxLength: 1024 })),
    match: AlertMatch,
    severity: Type.Enum([...ALERT_SEVERITIES]),
  },
  { additionalProperties: false },
);

const AlertRulesFile = Type.Object({ rules: Type.Array(AlertRuleSchema, { maxItems: MAX_RULES }) }, { additionalProperties: false });

export type AlertRule = Static<typeof AlertRuleSchema>;
export type AlertMatch = Static<typeof AlertMatch>;

/** What the webhook receives for a matched rule. */
export interface AlertMessage {
  type: 'alert';
  rule: string;
  severity: AlertSeverity;
  event: StoredAuditEvent;
}

const checkRulesFile = Compile(AlertRulesFile);

/** `/rules/2/match/foo` -> `rules[2].match.foo` */
function fieldOf(instancePath: string): string {
  let out = '';
  for (const part of instancePath.split('/').slice(1)) {
    out += /^\d+$/.test(part) ? `[${part}]` : out === '' ? part : `.${part}`;
  }
  return out || '(file)';
}

function ruleLabel(doc: unknown, field: string): string {
  const index = /^rules\[(\d+)\]/.exec(field)?.[1];
  if (index === undefined) return '';
  const name = (doc as { rules?: Array<{ name?: unknown }> }).rules?.[Number(index)]?.name;
  return typeof name === 'string' ? ` (rule "${name.slice(0, 128)}")` : '';
}

/** Validates a parsed rules document; throws a validation error naming each bad rule index and field. */
export function validateAlertRules(doc: unknown, source = 'alert rules'): AlertRule[] {
  if (!checkRulesFile.Check(doc)) {
    const problems: FieldProblem[] = [];
    const seen = new Set<string>();
    for (const error of checkRulesFile.Errors(doc)) {
      const e = error as { instancePath: string; keyword: string; params: Record<string, unknown>; message: string };
      if (e.keyword === 'boolean') continue; // reported again as additionalProperties, with the name
      let field = fieldOf(e.instancePath);
      let message = e.message;
      if (e.keyword === 'additionalProperties') {
        const extra = (e.params.additionalProperties as string[] | undefined) ?? [];
        field = extra.length === 1 ? `${field === '(file)' ? '' : `${field}.`}${extra[0]}` : field;
        message = `is not a known field${extra.length > 1 ? `s (${extra.join(', ')})` : ''}; remove it or check its spelling (known: name, description, match {actions, outcomes, targetKinds, actors, actorLacksRole, actorHasRole}, severity)`;
      } else if (e.keyword === 'enum') {
        message = `must be one of ${((e.params.allowedValues as unknown[]) ?? []).join(', ')}`;
      } else if (e.keyword === 'required') {
        const missing = (e.params.requiredProperties as string[] | undefined) ?? [];
        field = missing.length === 1 ? `${field === '(file)' ? '' : `${field}.`}${missing[0]}` : field;
        message = 'is required';
      }
      const key = `${field}\u0000${message}`;
      if (seen.has(key)) continue;
      seen.add(key);
      problems.push({ field, message: `${message}${ruleLabel(doc, field)}` });
      if (problems.length >= 10) break;
    }
    const error = validationError(problems);
    error.message = `${source} is not valid: ${error.message}`;
    throw error;
  }
  const rules = doc.rules;
  const names = new Map<string, number>();
  const problems: FieldProblem[] = [];
  rules.forEach((rule, index) => {
    const first = names.get(rule.name);
    if (first !== undefined) problems.push({ field: `rules[${index}].name`, message: `"${rule.name}" is also the name of rules[${first}]; rule names must be unique` });
    else names.set(rule.name, index);
    if (Object.keys(rule.match).length === 0) {
      problems.push({ field: `rules[${index}].match`, message: `is empty, so rule "${rule.name}" would alert on every event; give at least one condition` });
    }
  });
  if (problems.length > 0) {
    const error = validationError(problems);
    error.message = `${source} is not valid: ${error.message}`;
    throw error;
  }
  return rules;
}

/** Parses YAML (or JSON) rules text, bounded in size. */
export function parseAlertRules(text: string, source = 'alert rules'): AlertRule[] {
  if (Buffer.byteLength(text, 'utf8') > MAX_RULES_FILE_BYTES) {
    throw validationError([{ field: source, message: `is larger than ${MAX_RULES_FILE_BYTES} bytes; split it or remove rules` }]);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text, { maxAliasCount: 100, uniqueKeys: true });
  } catch (error) {
    throw validationError([{ field: source, message: `is not valid YAML: ${(error as Error).message}` }]);
  }
  if (doc === null || doc === undefined) return [];
  return validateAlertRules(doc, source);
}

const globCache = new Map<string, RegExp>();
function globToRegExp(glob: string): RegExp {
  let re = globCache.get(glob);
  if (re === undefined) {
    re = new RegExp(`^${glob.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`, 's');
    if (globCache.size < 10_000) globCache.set(glob, re);
  }
  return re;
}

const asList = (value: string | readonly string[]): readonly string[] => (typeof value === 'string' ? [value] : value);

export function ruleMatches(rule: AlertRule, event: StoredAuditEvent): boolean {
  const m = rule.match;
  if (m.actions !== undefined && !m.actions.some((g) => globToRegExp(g).test(event.action))) return false;
  if (m.outcomes !== undefined && !m.outcomes.includes(event.outcome)) return false;
  if (m.targetKinds !== undefined && !m.targetKinds.includes(event.target.kind)) return false;
  if (m.actors !== undefined && !m.actors.some((g) => globToRegExp(g).test(event.actor))) return false;
  if (m.actorLacksRole !== undefined && asList(m.actorLacksRole).some((r) => event.roles.includes(r))) return false;
  if (m.actorHasRole !== undefined && !asList(m.actorHasRole).some((r) => event.roles.includes(r))) return false;
  return true;
}

/** The rules an event matches, in file order. */
export function evaluateAlertRules(rules: readonly AlertRule[], event: StoredAuditEvent): AlertRule[] {
  return rules.filter((rule) => ruleMatches(rule, event));
}

export function alertMessage(rule: AlertRule, event: StoredAuditEvent): AlertMessage {
  return { type: 'alert', rule: rule.name, severity: rule.severity, event };
}
