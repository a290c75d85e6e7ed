import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { AUDIT_GENESIS_HASH, type StoredAuditEvent } from '../../model/audit-event.js';
import { IngotError } from '../../model/errors.js';
import { alertMessage, evaluateAlertRules, parseAlertRules } from './alert-rules.js';

function event(extra: Partial<StoredAuditEvent> = {}): StoredAuditEvent {
  return {
    seq: 1, id: 'e1', time: '2026-01-01T00:00:00.000Z', actor: 'tok-alice', roles: ['platform-admin'], project: '', sourceAddress: '127.0.0.1',
    requestId: 'r1', action: 'host:update', target: { kind: 'Host', project: '', name: 'h1' }, outcome: 'succeeded', reason: '', changes: [],
    prevHash: AUDIT_GENESIS_HASH, hash: 'f'.repeat(64), ...extra,
  };
}

function parseError(text: string): IngotError {
  try {
    parseAlertRules(text, 'rules.yaml');
  } catch (error) {
    expect(error).toBeInstanceOf(IngotError);
    return error as IngotError;
  }
  throw new Error('expected the rules to be refused');
}

describe('alert rules', () => {
  const example = parseAlertRules(readFileSync(new URL('../../../docs/examples/alert-rules.yaml', import.meta.url), 'utf8'), 'example');

  it('the example file parses, and its issue-5 rule fires for a non-controller host change only', () => {
    const names = (e: StoredAuditEvent) => evaluateAlertRules(example, e).map((r) => r.name);
    expect(names(event())).toEqual(['host-changed-by-non-controller']);
    expect(names(event({ action: 'host:delete' }))).toEqual(['host-changed-by-non-controller']);
    expect(names(event({ roles: ['controller'] }))).toEqual([]);
    expect(names(event({ roles: ['platform-admin', 'controller'] }))).toEqual([]);
    expect(names(event({ action: 'host:create' }))).toEqual([]);
    expect(names(event({ outcome: 'denied' }))).toEqual(['repeated-denials']);
    expect(names(event({ action: 'secret:update', target: { kind: 'Secret', project: '', name: 's' } }))).toEqual(['secret-changed']);
  });

  it('matches globs, target kinds, actors and roles; all conditions must hold', () => {
    const rules = parseAlertRules(`
rules:
  - name: any-host
    match: { actions: ["host:*"], targetKinds: [Host] }
    severity: info
  - name: admin-by-bob
    match: { actors: ["tok-b*"], actorHasRole: [platform-admin, auditor] }
    severity: critical
`);
    expect(evaluateAlertRules(rules, event()).map((r) => r.name)).toEqual(['any-host']);
    expect(evaluateAlertRules(rules, event({ actor: 'tok-bob' })).map((r) => r.name)).toEqual(['any-host', 'admin-by-bob']);
    expect(evaluateAlertRules(rules, event({ actor: 'tok-bob', roles: [] })).map((r) => r.name)).toEqual(['any-host']);
    expect(evaluateAlertRules(rules, event({ action: 'hostile:x' })).map((r) => r.name)).toEqual([]);
    const rule = rules[1];
    if (rule === undefined) throw new Error('missing rule');
    expect(alertMessage(rule, event())).toEqual({ type: 'alert', rule: 'admin-by-bob', severity: 'critical', event: event() });
  });

  it('glob metacharacters other than * are literal', () => {
    const rules = parseAlertRules(`rules: [{name: dot, match: {actions: ["host.update"]}, severity: low}]`);
    expect(evaluateAlertRules(rules, event({ action: 'hostXupdate' }))).toEqual([]);
    expect(evaluateAlertRules(rules, event({ action: 'host.update' }))).toHaveLength(1);
  });

  it('refuses unknown fields, naming the rule index and the field', () => {
    const error = parseError(`
rules:
  - name: ok
    match: { outcomes: [denied] }
    severity: low
  - name: typo
    match: { actions: ["host:*"], actorLacksRoles: controller }
    severity: high
`);
    expect(error.code).toBe('INGOT_ERR_VALIDATION');
    expect(error.details.map((d) => d.field)).toEqual(['rules[1].match.actorLacksRoles']);
    expect(error.message).toContain('rules.yaml is not valid');
    expect(error.message).toContain('rule "typo"');
  });

  it('refuses bad severities, outcomes, missing fields, duplicate names and empty matches', () => {
    expect(parseError(`rules: [{name: a, match: {outcomes: [denied]}, severity: urgent}]`).details[0]).toMatchObject({ field: 'rules[0].severity' });
    expect(parseError(`rules: [{name: a, match: {outcomes: [maybe]}, severity: low}]`).details[0]?.field).toBe('rules[0].match.outcomes[0]');
    expect(parseError(`rules: [{name: a, severity: low}]`).details[0]).toMatchObject({ field: 'rules[0].match', message: expect.stringContaining('is required') });
    expect(parseError(`rules: [{name: a, match: {outcomes: [denied]}, severity: low}, {name: a, match: {outcomes: [failed]}, severity: low}]`).details[0]).toMatchObject({
      field: 'rules[1].name',
    });
    expect(parseError(`rules: [{name: a, match: {}, severity: low}]`).details[0]?.field).toBe('rules[0].match');
    expect(parseError(`rulez: []`).details.map((d) => d.field).sort()).toEqual(['rules', 'rulez']);
    expect(parseError(`rules: [ {name: a`).details[0]?.message).toContain('not valid YAML');
    expect(parseError('x'.repeat(300 * 1024)).details[0]?.message).toContain('larger than');
  });

  it('an empty file means no rules', () => {
    expect(parseAlertRules('')).toEqual([]);
    expect(parseAlertRules('rules: []')).toEqual([]);
  });
});
