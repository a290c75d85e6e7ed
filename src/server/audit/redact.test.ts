import { describe, expect, it } from 'vitest';
import { formatPath, REDACTED, redactChanges } from './redact.js';

const host = (extra: Record<string, unknown> = {}) => ({
  metadata: { labels: { rack: 'r1', 'ingot.dev/zone': 'a' } },
  spec: { online: true, bmc: { address: 'redfish://10.0.0.7', credentialsName: 'r1-bmc' }, image: { url: 'http://i/u.qcow2', checksum: 'aa' } },
  ...extra,
});

describe('redactChanges', () => {
  it('lists changed leaves with before and after, and nothing when nothing changed', () => {
    const before = host();
    const after = host();
    after.spec.online = false;
    after.metadata.labels['ingot.dev/zone'] = 'b';
    (after.spec as Record<string, unknown>).image = undefined;
    expect(redactChanges(before, before)).toEqual([]);
    expect(redactChanges(before, after)).toEqual([
      { path: 'metadata.labels["ingot.dev/zone"]', before: 'a', after: 'b' },
      { path: 'spec.image.checksum', before: 'aa' },
      { path: 'spec.image.url', before: 'http://i/u.qcow2' },
      { path: 'spec.online', before: true, after: false },
    ]);
  });

  it('redacts secret values on create, update and delete, but names the keys that changed', () => {
    const created = redactChanges(undefined, { stringData: { username: 'admin', password: 'hunter2', 'ca.key': 'PEM' } });
    expect(created).toEqual([
      { path: 'stringData["ca.key"]', after: REDACTED },
      { path: 'stringData.password', after: REDACTED },
      { path: 'stringData.username', after: REDACTED },
    ]);
    const updated = redactChanges({ stringData: { password: 'old', username: 'admin' } }, { stringData: { password: 'new', username: 'admin' } });
    expect(updated).toEqual([{ path: 'stringData.password', before: REDACTED, after: REDACTED }]);
    const deleted = redactChanges({ stringData: { password: 'old' } }, undefined);
    expect(deleted).toEqual([{ path: 'stringData.password', before: REDACTED }]);
    expect(JSON.stringify([created, updated, deleted])).not.toMatch(/hunter2|old|new|PEM/);
  });

  it('redacts secret-looking keys at any depth, and obeys custom secret paths', () => {
    const changes = redactChanges(
      { spec: { userData: 'a', nested: [{ token: 't1', keep: 1 }], other: 'x' } },
      { spec: { userData: 'b', nested: [{ token: 't2', keep: 2 }], other: 'y' } },
      { secretPaths: ['**.token', 'spec.userData', 'spec.other'] },
    );
    expect(changes).toEqual([
      { path: 'spec.nested[0].keep', before: 1, after: 2 },
      { path: 'spec.nested[0].token', before: REDACTED, after: REDACTED },
      { path: 'spec.other', before: REDACTED, after: REDACTED },
      { path: 'spec.userData', before: REDACTED, after: REDACTED },
    ]);
    const wildcard = redactChanges({ a: { b: { c: 1 } } }, { a: { b: { c: 2 } } }, { secretPaths: ['a.*.c'] });
    expect(wildcard).toEqual([{ path: 'a.b.c', before: REDACTED, after: REDACTED }]);
  });

  it('scrubs secrets nested inside a value shown whole (a type change, an array)', () => {
    const changes = redactChanges({ spec: { x: 'plain', l: 'none' } }, { spec: { x: { password: 'p4ss', user: 'u' }, l: [{ token: 'tok', n: 1 }] } });
    expect(changes).toEqual([
      { path: 'spec.l', before: 'none', after: [{ token: REDACTED, n: 1 }] },
      { path: 'spec.x', before: 'plain', after: { password: REDACTED, user: 'u' } },
    ]);
  });

  it('diffs arrays by index and reports added and removed items', () => {
    expect(redactChanges({ l: [1, 2, 3] }, { l: [1, 5] })).toEqual([
      { path: 'l[1]', before: 2, after: 5 },
      { path: 'l[2]', before: 3 },
    ]);
  });

  it('bounds the list, large values and depth', () => {
    const before: Record<string, number> = {};
    const after: Record<string, number> = {};
    for (let i = 0; i < 50; i++) {
      before[`k${String(i).padStart(2, '0')}`] = i;
      after[`k${String(i).padStart(2, '0')}`] = i + 1;
    }
    const bounded = redactChanges(before, after, { maxChanges: 10 });
    expect(bounded).toHaveLength(11);
    expect(bounded[10]).toEqual({ path: '(more)', after: '[40 more changed fields not listed]' });

    const big = redactChanges({ v: 'x' }, { v: 'y'.repeat(5000) }, { maxValueBytes: 100 });
    expect(big).toEqual([{ path: 'v', before: 'x', after: '[string, 5002 bytes: too large to list]' }]);

    let deepBefore: unknown = 1;
    let deepAfter: unknown = 2;
    for (let i = 0; i < 40; i++) {
      deepBefore = { n: deepBefore };
      deepAfter = { n: deepAfter };
    }
    const deep = redactChanges(deepBefore, deepAfter, { maxDepth: 3 });
    expect(deep).toHaveLength(1);
    expect(deep[0]?.path).toBe('n.n.n');
  });

  it('formats paths unambiguously', () => {
    expect(formatPath(['spec', 'bmc', 'address'])).toBe('spec.bmc.address');
    expect(formatPath(['metadata', 'labels', 'a.b/c'])).toBe('metadata.labels["a.b/c"]');
    expect(formatPath(['spec', 'networks', 0, 'ip'])).toBe('spec.networks[0].ip');
  });
});
