// One suite every Store implementation must pass (SQLite and PostgreSQL call it), in the
// manner of Hono's router/common.case.test.ts.
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IngotError } from '../model/errors.js';
import { matchesLabels, type LabelRequirement } from '../model/label-selector.js';
import { AUDIT_GENESIS_HASH, auditEventHash } from '../model/audit-event.js';
import type { NewAuditEvent, NewResource, Store, StoredAuditEvent, StoredResource, StoredToken, StoredApproval } from './store.js';

/** A fresh, empty database; open() may be called more than once for separate Store instances on it. */
export interface ContractDatabase {
  open(): Promise<Store>;
  /** Removes the database after the test (optional). */
  dispose?(): Promise<void>;
}

async function expectIngotError(promise: Promise<unknown>, code: IngotError['code'], field?: string): Promise<IngotError> {
  let caught: unknown;
  try {
    await promise;
  } catch (error) {
    caught = error;
  }
  expect(caught, `expected ${code}`).toBeInstanceOf(IngotError);
  const error = caught as IngotError;
  expect(error.code).toBe(code);
  if (field !== undefined) expect(error.details.map((d) => d.field)).toContain(field);
  return error;
}

function host(name: string, labels: Record<string, string> = {}, extra: Partial<NewResource> = {}): NewResource {
  return { kind: 'Host', name, labels, spec: { online: true }, status: { provisioning: { state: 'registering' } }, ...extra };
}

function token(id: string, hashDigit: string, extra: Partial<StoredToken> = {}): StoredToken {
  return {
    id,
    hash: hashDigit.repeat(64),
    description: `token ${id}`,
    roles: ['platform-admin'],
    project: '',
    type: 'api',
    hostUid: '',
    expiresAt: 1_900_000_000_000,
    createdAt: '2026-01-01T00:00:00.000Z',
    ...extra,
  };
}

async function listAll(store: Store, kind: string, limit: number, labelSelector?: LabelRequirement[], project?: string) {
  const pages: StoredResource[][] = [];
  let cursor: string | undefined;
  for (let guard = 0; guard < 10_000; guard++) {
    const page = await store.list({ kind, limit, ...(labelSelector ? { labelSelector } : {}), ...(cursor ? { continue: cursor } : {}), ...(project !== undefined ? { project } : {}) });
    pages.push(page.items);
    if (page.continue === undefined) return pages;
    cursor = page.continue;
  }
  throw new Error('pagination did not end');
}

const byteOrder = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

export function runStoreContract(name: string, freshDatabase: () => Promise<ContractDatabase>): void {
  describe(`Store contract: ${name}`, () => {
    let database: ContractDatabase;
    let opened: Store[];
    let store: Store;

    /** Another Store instance on the same database (as a second server process would have). */
    async function peer(): Promise<Store> {
      const other = await database.open();
      opened.push(other);
      return other;
    }

    beforeEach(async () => {
      database = await freshDatabase();
      opened = [];
      store = await peer();
    });

    afterEach(async () => {
      for (const s of opened) await s.close();
      await database.dispose?.();
    });

    describe('resources', () => {
      it('creates a resource with uid, version 1 and timestamps, and reads it back by key and uid', async () => {
        const created = await store.create(host('r1-n01', { rack: 'r1' }, { annotations: { note: 'hi' } }));
        expect(created.resourceVersion).toBe(1);
        expect(created.uid).toMatch(/^[0-9a-f-]{36}$/);
        expect(created.project).toBe('');
        expect(created.createdAt).toBe(created.updatedAt);
        expect(Number.isNaN(Date.parse(created.createdAt))).toBe(false);
        expect(created.deletionTimestamp).toBeUndefined();
        expect(await store.get({ kind: 'Host', name: 'r1-n01' })).toEqual(created);
        expect(await store.get({ kind: 'Host', project: '', name: 'r1-n01' })).toEqual(created);
        expect(await store.getByUid(created.uid)).toEqual(created);
        expect(await store.get({ kind: 'Host', name: 'r1-n02' })).toBeUndefined();
        expect(await store.get({ kind: 'Claim', name: 'r1-n01' })).toBeUndefined();
        expect(await store.getByUid('00000000-0000-0000-0000-000000000000')).toBeUndefined();
      });

      it('refuses a second resource with the same kind, project and name', async () => {
        await store.create(host('n1'));
        const error = await expectIngotError(store.create(host('n1')), 'INGOT_ERR_ALREADY_EXISTS');
        expect(error.message).toContain('n1');
        // Same name elsewhere is fine.
        await store.create({ kind: 'Claim', project: 'team-a', name: 'n1', spec: {}, status: {} });
        await store.create({ kind: 'Claim', project: 'team-b', name: 'n1', spec: {}, status: {} });
        await store.create({ kind: 'Secret', name: 'n1', spec: {}, status: {} });
        expect(await store.count('Host')).toBe(1);
        expect(await store.count('Claim')).toBe(2);
        expect(await store.count('Claim', 'team-a')).toBe(1);
        expect(await store.count('Claim', '')).toBe(0);
      });

      it('replaces with optimistic concurrency: bumps the version, refuses a stale one', async () => {
        const created = await store.create(host('n1', { rack: 'r1' }));
        const next = { ...created, labels: { rack: 'r2' }, status: { provisioning: { state: 'inspecting' } } };
        const replaced = await store.replace(next);
        expect(replaced.resourceVersion).toBe(2);
        expect(replaced.labels).toEqual({ rack: 'r2' });
        expect(replaced.status).toEqual({ provisioning: { state: 'inspecting' } });
        expect(replaced.uid).toBe(created.uid);
        expect(replaced.createdAt).toBe(created.createdAt);
        expect(replaced.updatedAt >= created.updatedAt).toBe(true);
        expect(await store.get({ kind: 'Host', name: 'n1' })).toEqual(replaced);

        // Writing from the old read (version 1) is a conflict and changes nothing.
        const error = await expectIngotError(store.replace({ ...created, labels: { rack: 'r9' } }), 'INGOT_ERR_CONFLICT');
        expect(error.message).toContain('resourceVersion 2, not 1');
        expect((await store.get({ kind: 'Host', name: 'n1' }))?.labels).toEqual({ rack: 'r2' });
      });

      it('round-trips deletionTimestamp through replace, and clears it again', async () => {
        const created = await store.create(host('n1'));
        const marked = await store.replace({ ...created, deletionTimestamp: '2026-02-03T04:05:06.000Z' });
        expect(marked.deletionTimestamp).toBe('2026-02-03T04:05:06.000Z');
        expect((await store.get({ kind: 'Host', name: 'n1' }))?.deletionTimestamp).toBe('2026-02-03T04:05:06.000Z');
        const { deletionTimestamp: _dropped, ...unmarked } = marked;
        const cleared = await store.replace(unmarked);
        expect(cleared.deletionTimestamp).toBeUndefined();
      });

      it('replace of a missing resource is not-found; of a re-created one is a conflict', async () => {
        const created = await store.create(host('n1'));
        await expectIngotError(store.replace({ ...created, name: 'missing' }), 'INGOT_ERR_NOT_FOUND');
        await store.remove({ kind: 'Host', name: 'n1' });
        const again = await store.create(host('n1'));
        expect(again.resourceVersion).toBe(1);
        const error = await expectIngotError(store.replace(created), 'INGOT_ERR_CONFLICT');
        expect(error.message).toContain('created again');
        expect((await store.get({ kind: 'Host', name: 'n1' }))?.uid).toBe(again.uid);
      });

      it('removes with and without a version check', async () => {
        const a = await store.create(host('a'));
        await store.create(host('b'));
        await expectIngotError(store.remove({ kind: 'Host', name: 'a' }, 7), 'INGOT_ERR_CONFLICT');
        expect(await store.get({ kind: 'Host', name: 'a' })).toBeDefined();
        await store.remove({ kind: 'Host', name: 'a' }, a.resourceVersion);
        expect(await store.get({ kind: 'Host', name: 'a' })).toBeUndefined();
        await store.remove({ kind: 'Host', name: 'b' });
        expect(await store.count('Host')).toBe(0);
        await expectIngotError(store.remove({ kind: 'Host', name: 'b' }), 'INGOT_ERR_NOT_FOUND');
        await expectIngotError(store.remove({ kind: 'Host', project: 'p', name: 'a' }, 1), 'INGOT_ERR_NOT_FOUND');
      });

      it('keeps JSON spec and status exactly, including nesting, unicode and numbers', async () => {
        const spec = { a: [1, 2.5, { b: null }], text: 'ünïcødé ✓ "quoted" \\ back', big: 9007199254740991, nested: { deep: { deeper: true } } };
        const created = await store.create({ kind: 'Thing', name: 'x', spec, status: { list: [] } });
        expect((await store.get({ kind: 'Thing', name: 'x' }))?.spec).toEqual(spec);
        expect(created.spec).toEqual(spec);
      });
    });

    describe('list', () => {
      it('orders by name then project, and filters by project', async () => {
        for (const [project, n] of [['team-b', 'b'], ['', 'b'], ['team-a', 'b'], ['team-a', 'a'], ['', 'c'], ['team-b', 'a-1']] as const) {
          await store.create({ kind: 'Claim', project, name: n, spec: {}, status: {} });
        }
        await store.create({ kind: 'Other', name: 'a', spec: {}, status: {} });
        const all = await store.list({ kind: 'Claim' });
        expect(all.items.map((r) => `${r.name}/${r.project}`)).toEqual(['a/team-a', 'a-1/team-b', 'b/', 'b/team-a', 'b/team-b', 'c/']);
        expect(all.continue).toBeUndefined();
        expect((await store.list({ kind: 'Claim', project: '' })).items.map((r) => r.name)).toEqual(['b', 'c']);
        expect((await store.list({ kind: 'Claim', project: 'team-a' })).items.map((r) => r.name)).toEqual(['a', 'b']);
        expect((await store.list({ kind: 'Claim', project: 'nobody' })).items).toEqual([]);
      });

      it('pages with an opaque cursor; every page but the last is full', async () => {
        const names = Array.from({ length: 23 }, (_, i) => `h${String(i).padStart(2, '0')}`);
        for (const n of [...names].reverse()) await store.create(host(n));
        const pages = await listAll(store, 'Host', 5);
        expect(pages.map((p) => p.length)).toEqual([5, 5, 5, 5, 3]);
        expect(pages.flat().map((r) => r.name)).toEqual(names);
        // An exact multiple ends without an empty trailing page.
        const exact = await listAll(store, 'Host', 23);
        expect(exact.map((p) => p.length)).toEqual([23]);
      });

      it('applies label selectors in the query, keeping pages full across pages', async () => {
        for (let i = 0; i < 40; i++) {
          const labels: Record<string, string> = { rack: `r${i % 3}` };
          if (i % 4 === 0) labels.gpu = 'true';
          if (i % 5 === 0) labels['ingot.dev/tier'] = i % 10 === 0 ? 'gold' : 'silver';
          await store.create(host(`h${String(i).padStart(2, '0')}`, labels));
        }
        const everything = (await store.list({ kind: 'Host', limit: 1000 })).items;
        const selectors: LabelRequirement[][] = [
          [{ key: 'rack', op: '=', value: 'r1' }],
          [{ key: 'rack', op: '!=', value: 'r1' }],
          [{ key: 'gpu', op: 'exists' }],
          [{ key: 'gpu', op: '!exists' }],
          [{ key: 'ingot.dev/tier', op: '!=', value: 'gold' }, { key: 'rack', op: '=', value: 'r0' }],
          [{ key: 'ingot.dev/tier', op: '=', value: 'gold' }, { key: 'gpu', op: 'exists' }],
          [{ key: 'missing', op: '=', value: '' }],
        ];
        for (const selector of selectors) {
          const expected = everything.filter((r) => matchesLabels(r.labels, selector)).map((r) => r.name);
          const pages = await listAll(store, 'Host', 3, selector);
          expect(pages.flat().map((r) => r.name), JSON.stringify(selector)).toEqual(expected);
          for (const page of pages.slice(0, -1)) expect(page.length).toBe(3);
        }
        expect(everything.filter((r) => matchesLabels(r.labels, [{ key: 'rack', op: '=', value: 'r1' }])).length).toBe(13);
      });

      it('property: paging with any page size and selector returns each matching row exactly once, in order', async () => {
        const racks = ['r0', 'r1', 'r2'];
        for (let i = 0; i < 30; i++) {
          const labels: Record<string, string> = { rack: racks[i % 3] as string };
          if (i % 2 === 0) labels.even = '';
          await store.create({ kind: 'Host', project: i % 4 === 0 ? 'p' : '', name: `n${(i * 7) % 30}`, labels, spec: {}, status: {} });
        }
        const everything = (await store.list({ kind: 'Host', limit: 1000 })).items;
        expect(everything).toHaveLength(30);
        const requirement = fc.oneof(
          fc.record({ key: fc.constantFrom('rack', 'even', 'none'), op: fc.constant('=' as const), value: fc.constantFrom('r0', 'r1', 'r2', '') }),
          fc.record({ key: fc.constantFrom('rack', 'even', 'none'), op: fc.constant('!=' as const), value: fc.constantFrom('r0', 'r1', '') }),
          fc.record({ key: fc.constantFrom('rack', 'even', 'none'), op: fc.constantFrom('exists' as const, '!exists' as const) }),
        );
        await fc.assert(
          fc.asyncProperty(fc.integer({ min: 1, max: 12 }), fc.array(requirement, { maxLength: 3 }), async (limit, selector) => {
            const pages = await listAll(store, 'Host', limit, selector as LabelRequirement[]);
            const got = pages.flat().map((r) => `${r.name}/${r.project}`);
            const expected = everything.filter((r) => matchesLabels(r.labels, selector as LabelRequirement[])).map((r) => `${r.name}/${r.project}`);
            expect(got).toEqual(expected);
            for (const page of pages.slice(0, -1)) expect(page.length).toBe(limit);
          }),
          { numRuns: 30 },
        );
        const ordered = everything.map((r) => r.name);
        expect([...ordered].sort(byteOrder)).toEqual(ordered);
      });

      it('rejects out-of-range limits and foreign cursors with a validation error naming the field', async () => {
        await store.create(host('a'));
        for (const limit of [0, -1, 1001, 1.5, Number.NaN]) {
          await expectIngotError(store.list({ kind: 'Host', limit }), 'INGOT_ERR_VALIDATION', 'limit');
        }
        expect((await store.list({ kind: 'Host', limit: 1000 })).items).toHaveLength(1);
        for (const cursor of ['not a cursor!', Buffer.from('{"x":1}').toString('base64url'), 'abc', 'x'.repeat(5000)]) {
          await expectIngotError(store.list({ kind: 'Host', continue: cursor }), 'INGOT_ERR_VALIDATION', 'continue');
        }
      });

      it('treats selector keys and values as data, not SQL', async () => {
        await store.create(host('a', { rack: 'r1' }));
        const hostile: LabelRequirement[] = [{ key: "rack') or 1=1 --", op: '!exists' }, { key: 'x"; drop table resources; --', op: '!=', value: "' or '1'='1" }];
        expect((await store.list({ kind: 'Host', labelSelector: hostile })).items.map((r) => r.name)).toEqual(['a']);
        expect((await store.list({ kind: 'Host', labelSelector: [{ key: "rack' or '1'='1", op: 'exists' }] })).items).toEqual([]);
        expect(await store.count('Host')).toBe(1);
      });
    });

    describe('change feed and transactions', () => {
      it('records ADDED, MODIFIED and DELETED in order, with the object as written', async () => {
        const start = await store.latestChangeSeq();
        const a = await store.create(host('a'));
        const a2 = await store.replace({ ...a, labels: { x: 'y' } });
        await store.create({ kind: 'Claim', project: 'p', name: 'c', spec: {}, status: {} });
        await store.remove({ kind: 'Host', name: 'a' });
        const changes = await store.changesSince(start, { kind: 'Host' });
        expect(changes.map((c) => c.type)).toEqual(['ADDED', 'MODIFIED', 'DELETED']);
        expect(changes[0]?.object).toEqual(a);
        expect(changes[1]?.object).toEqual(a2);
        expect(changes[2]?.object).toEqual(a2);
        const seqs = changes.map((c) => c.seq);
        expect([...seqs].sort((x, y) => x - y)).toEqual(seqs);
        expect(new Set(seqs).size).toBe(3);
        expect(await store.latestChangeSeq()).toBe(seqs[2]);

        const claims = await store.changesSince(start, { kind: 'Claim', project: 'p' });
        expect(claims.map((c) => [c.type, c.object.name])).toEqual([['ADDED', 'c']]);
        expect(await store.changesSince(start, { kind: 'Claim', project: 'q' })).toEqual([]);
        expect(await store.changesSince(seqs[0] as number, { kind: 'Host' })).toHaveLength(2);
        expect(await store.changesSince(start, { kind: 'Host', limit: 1 })).toHaveLength(1);
        // Failed writes add nothing.
        await expectIngotError(store.create(host('b')).then(() => store.create(host('b'))), 'INGOT_ERR_ALREADY_EXISTS');
        expect((await store.changesSince(start, { kind: 'Host' })).map((c) => c.type)).toEqual(['ADDED', 'MODIFIED', 'DELETED', 'ADDED']);
      });

      it('notifies listeners after a commit, never before it and never on rollback', async () => {
        let notified = 0;
        const unsubscribe = store.onCommittedChange(() => {
          notified += 1;
        });
        await store.create(host('solo'));
        expect(notified).toBe(1);

        await store.transaction(async (tx) => {
          await tx.create(host('t1'));
          await tx.create(host('t2'));
          expect(notified).toBe(1);
        });
        expect(notified).toBe(2);

        await expect(
          store.transaction(async (tx) => {
            await tx.create(host('rolled-back'));
            throw new Error('boom');
          }),
        ).rejects.toThrow('boom');
        expect(notified).toBe(2);

        // A transaction that writes no resources appends no change and notifies no one.
        await store.transaction(async (tx) => {
          await tx.setSetting('k', 'v');
        });
        expect(notified).toBe(2);

        unsubscribe();
        await store.create(host('after'));
        expect(notified).toBe(2);
      });

      it('rolls back everything a failed transaction did', async () => {
        const existing = await store.create(host('keep'));
        const before = await store.latestChangeSeq();
        await expect(
          store.transaction(async (tx) => {
            await tx.create(host('new'));
            await tx.replace({ ...existing, labels: { changed: 'yes' } });
            await tx.appendEvent({ kind: 'Host', name: 'keep', uid: existing.uid, type: 'Normal', reason: 'Test', message: 'm' });
            await tx.setSetting('setting', 'x');
            await tx.createToken(token('t1', 'a'));
            await tx.putSecretCiphertext({ uid: 'u1', version: 1, keyId: 'k', ciphertext: Buffer.from([1, 2, 3]) });
            await tx.acquireLease('host/keep', 'me', 'test', 1000, 1);
            throw new Error('abort');
          }),
        ).rejects.toThrow('abort');
        expect(await store.get({ kind: 'Host', name: 'new' })).toBeUndefined();
        expect(await store.get({ kind: 'Host', name: 'keep' })).toEqual(existing);
        expect(await store.listEvents({ kind: 'Host', name: 'keep' })).toEqual([]);
        expect(await store.getSetting('setting')).toBeUndefined();
        expect(await store.listTokens()).toEqual([]);
        expect(await store.getSecretCiphertext('u1')).toBeUndefined();
        expect(await store.getLease('host/keep')).toBeUndefined();
        expect(await store.latestChangeSeq()).toBe(before);
      });

      it('commits a transaction and sees its own writes inside it; nested calls join the outer one', async () => {
        const result = await store.transaction(async (tx) => {
          const a = await tx.create(host('a'));
          expect(await tx.get({ kind: 'Host', name: 'a' })).toEqual(a);
          const inner = await tx.transaction(async (tx2) => {
            await tx2.create(host('b'));
            return 'inner-result';
          });
          return inner;
        });
        expect(result).toBe('inner-result');
        expect(await store.count('Host')).toBe(2);

        await expect(
          store.transaction(async (tx) => {
            await tx.transaction(async (tx2) => {
              await tx2.create(host('c'));
            });
            throw new Error('outer fails');
          }),
        ).rejects.toThrow('outer fails');
        expect(await store.get({ kind: 'Host', name: 'c' })).toBeUndefined();
      });

      it('refuses a transaction store used after its transaction ended', async () => {
        let leaked: Store | undefined;
        await store.transaction(async (tx) => {
          leaked = tx;
        });
        await expect((leaked as Store).get({ kind: 'Host', name: 'a' })).rejects.toThrow(/after its transaction ended/);
      });

      it('lets a second store instance see committed changes (cross-process watchers poll)', async () => {
        const other = await peer();
        const start = await other.latestChangeSeq();
        await store.create(host('a'));
        expect((await other.changesSince(start, { kind: 'Host' })).map((c) => c.object.name)).toEqual(['a']);
        expect(await other.get({ kind: 'Host', name: 'a' })).toBeDefined();
      });
    });

    describe('events', () => {
      it('appends events and lists them oldest first, with afterId and limit', async () => {
        const h = await store.create(host('h'));
        const first = await store.appendEvent({ kind: 'Host', name: 'h', uid: h.uid, type: 'Normal', reason: 'StateChanged', message: 'registering -> inspecting', fromState: 'registering', toState: 'inspecting' });
        const second = await store.appendEvent({ kind: 'Host', name: 'h', uid: h.uid, type: 'Warning', reason: 'PowerFailed', message: 'BMC said no' });
        await store.appendEvent({ kind: 'Host', project: 'p', name: 'h', uid: 'other', type: 'Normal', reason: 'Elsewhere', message: '' });
        expect(second.id).toBeGreaterThan(first.id);
        expect(first).toMatchObject({ kind: 'Host', project: '', name: 'h', uid: h.uid, type: 'Normal', reason: 'StateChanged', fromState: 'registering', toState: 'inspecting' });
        expect(second.fromState).toBeUndefined();
        const listed = await store.listEvents({ kind: 'Host', name: 'h' });
        expect(listed).toEqual([first, second]);
        expect(await store.listEvents({ kind: 'Host', name: 'h' }, { afterId: first.id })).toEqual([second]);
        expect(await store.listEvents({ kind: 'Host', name: 'h' }, { limit: 1 })).toEqual([first]);
        expect((await store.listEvents({ kind: 'Host', project: 'p', name: 'h' })).map((e) => e.reason)).toEqual(['Elsewhere']);
        await expectIngotError(store.listEvents({ kind: 'Host', name: 'h' }, { limit: 5000 }), 'INGOT_ERR_VALIDATION', 'limit');
      });

      it('bounds the size of an event message', async () => {
        const event = await store.appendEvent({ kind: 'Host', name: 'h', uid: 'u', type: 'Warning', reason: 'Big', message: 'x'.repeat(100_000) });
        expect(event.message.length).toBeLessThanOrEqual(4096);
        expect((await store.listEvents({ kind: 'Host', name: 'h' }))[0]?.message).toBe(event.message);
      });
    });

    describe('leases', () => {
      it('grants a free lease, refuses others until it expires, renews for the holder', async () => {
        expect(await store.acquireLease('host/1', 'conductor-a', 'provision', 1000, 10_000)).toBe(true);
        expect(await store.getLease('host/1')).toEqual({ name: 'host/1', holder: 'conductor-a', purpose: 'provision', expiresAt: 11_000 });
        expect(await store.acquireLease('host/1', 'conductor-b', 'inspect', 1000, 10_500)).toBe(false);
        expect((await store.getLease('host/1'))?.holder).toBe('conductor-a');
        // Renewal by the holder extends the expiry.
        expect(await store.acquireLease('host/1', 'conductor-a', 'provision', 1000, 10_900)).toBe(true);
        expect((await store.getLease('host/1'))?.expiresAt).toBe(11_900);
        expect(await store.acquireLease('host/1', 'conductor-b', 'inspect', 1000, 11_899)).toBe(false);
        // At expiry another holder takes over.
        expect(await store.acquireLease('host/1', 'conductor-b', 'inspect', 1000, 11_900)).toBe(true);
        expect(await store.getLease('host/1')).toEqual({ name: 'host/1', holder: 'conductor-b', purpose: 'inspect', expiresAt: 12_900 });
        expect(await store.acquireLease('host/1', 'conductor-a', 'provision', 1000, 12_000)).toBe(false);
      });

      it('releases only for the holder', async () => {
        expect(await store.acquireLease('host/2', 'a', 'p', 60_000, 1)).toBe(true);
        await store.releaseLease('host/2', 'b');
        expect((await store.getLease('host/2'))?.holder).toBe('a');
        await store.releaseLease('host/2', 'a');
        expect(await store.getLease('host/2')).toBeUndefined();
        expect(await store.acquireLease('host/2', 'b', 'p', 60_000, 2)).toBe(true);
        expect(await store.getLease('nothing')).toBeUndefined();
      });

      it('keeps large millisecond timestamps exactly', async () => {
        const now = 1_780_000_000_123;
        expect(await store.acquireLease('host/3', 'a', 'p', 30_000, now)).toBe(true);
        expect((await store.getLease('host/3'))?.expiresAt).toBe(now + 30_000);
      });

      it('two store instances racing for the same leases: exactly one wins each', async () => {
        const other = await peer();
        for (let round = 0; round < 25; round++) {
          const name = `host/race-${round}`;
          const [a, b] = await Promise.all([
            store.acquireLease(name, 'conductor-a', 'provision', 5000, 1000),
            other.acquireLease(name, 'conductor-b', 'provision', 5000, 1000),
          ]);
          expect([a, b].filter(Boolean), `round ${round}`).toHaveLength(1);
          expect((await store.getLease(name))?.holder).toBe(a ? 'conductor-a' : 'conductor-b');
        }
        // Racing for an expired lease: again exactly one takes it over.
        for (let round = 0; round < 10; round++) {
          const name = `host/race-${round}`;
          const [a, b] = await Promise.all([
            store.acquireLease(name, 'conductor-c', 'inspect', 5000, 100_000),
            other.acquireLease(name, 'conductor-d', 'inspect', 5000, 100_000),
          ]);
          expect([a, b].filter(Boolean), `takeover round ${round}`).toHaveLength(1);
        }
      });
    });

    describe('tokens, settings, secret ciphertext', () => {
      it('stores tokens by hash, touches and revokes them', async () => {
        await store.createToken(token('t1', 'a'));
        await store.createToken(token('t2', 'b', { type: 'agent', hostUid: 'host-uid', roles: [], project: 'p', createdAt: '2026-01-02T00:00:00.000Z' }));
        await expectIngotError(store.createToken(token('t1', 'c')), 'INGOT_ERR_ALREADY_EXISTS');
        await expectIngotError(store.createToken(token('t3', 'a')), 'INGOT_ERR_ALREADY_EXISTS');
        expect(await store.findTokenByHash('a'.repeat(64))).toEqual(token('t1', 'a'));
        expect(await store.findTokenByHash('f'.repeat(64))).toBeUndefined();
        expect((await store.listTokens()).map((t) => t.id)).toEqual(['t1', 't2']);
        expect((await store.findTokenByHash('b'.repeat(64)))?.hostUid).toBe('host-uid');

        await store.touchToken('t1', '2026-03-01T00:00:00.000Z');
        expect((await store.findTokenByHash('a'.repeat(64)))?.lastUsedAt).toBe('2026-03-01T00:00:00.000Z');
        await store.revokeToken('t1', '2026-03-02T00:00:00.000Z');
        await store.revokeToken('t1', '2026-03-09T00:00:00.000Z');
        expect((await store.findTokenByHash('a'.repeat(64)))?.revokedAt).toBe('2026-03-02T00:00:00.000Z');
        await expectIngotError(store.revokeToken('nope', '2026-03-02T00:00:00.000Z'), 'INGOT_ERR_NOT_FOUND');
      });

      it('keeps settings', async () => {
        expect(await store.getSetting('bootstrap')).toBeUndefined();
        await store.setSetting('bootstrap', 'done');
        await store.setSetting('bootstrap', 'done-again');
        await store.setSetting('other', '');
        expect(await store.getSetting('bootstrap')).toBe('done-again');
        expect(await store.getSetting('other')).toBe('');
      });

      it('keeps secret ciphertext byte for byte, upserts by uid, deletes', async () => {
        const bytes = Buffer.from([0, 1, 2, 255, 0, 128, 39, 92, 0]);
        await store.putSecretCiphertext({ uid: 'u1', version: 1, keyId: 'k1', ciphertext: bytes });
        await store.putSecretCiphertext({ uid: 'u0', version: 3, keyId: 'k1', ciphertext: Buffer.alloc(0) });
        const got = await store.getSecretCiphertext('u1');
        expect(got?.ciphertext.equals(bytes)).toBe(true);
        expect(got).toMatchObject({ uid: 'u1', version: 1, keyId: 'k1' });
        await store.putSecretCiphertext({ uid: 'u1', version: 2, keyId: 'k2', ciphertext: Buffer.from('new') });
        expect(await store.getSecretCiphertext('u1')).toMatchObject({ version: 2, keyId: 'k2', ciphertext: Buffer.from('new') });
        expect((await store.listSecretCiphertexts()).map((r) => r.uid)).toEqual(['u0', 'u1']);
        await store.deleteSecretCiphertext('u1');
        expect(await store.getSecretCiphertext('u1')).toBeUndefined();
        await store.deleteSecretCiphertext('never-existed');
      });

      it('replaces secret ciphertext only while version and key id are as expected (rekey)', async () => {
        await store.putSecretCiphertext({ uid: 'r1', version: 4, keyId: 'old', ciphertext: Buffer.from('a') });
        expect(await store.replaceSecretCiphertextIf({ uid: 'r1', version: 4, keyId: 'new', ciphertext: Buffer.from('b') }, { version: 3, keyId: 'old' })).toBe(false);
        expect(await store.replaceSecretCiphertextIf({ uid: 'r1', version: 4, keyId: 'new', ciphertext: Buffer.from('b') }, { version: 4, keyId: 'other' })).toBe(false);
        expect(await store.getSecretCiphertext('r1')).toMatchObject({ version: 4, keyId: 'old', ciphertext: Buffer.from('a') });
        expect(await store.replaceSecretCiphertextIf({ uid: 'r1', version: 4, keyId: 'new', ciphertext: Buffer.from('b') }, { version: 4, keyId: 'old' })).toBe(true);
        expect(await store.getSecretCiphertext('r1')).toMatchObject({ version: 4, keyId: 'new', ciphertext: Buffer.from('b') });
        expect(await store.replaceSecretCiphertextIf({ uid: 'missing', version: 1, keyId: 'new', ciphertext: Buffer.from('c') }, { version: 1, keyId: 'old' })).toBe(false);
        expect(await store.getSecretCiphertext('missing')).toBeUndefined();
      });
    });

    describe('audit trail', () => {
      function audit(n: number, extra: Partial<NewAuditEvent> = {}): NewAuditEvent {
        return {
          actor: `token-${n % 2}`,
          roles: n % 2 === 0 ? ['platform-admin'] : ['controller'],
          sourceAddress: '127.0.0.1',
          requestId: `req-${n}`,
          action: n % 3 === 0 ? 'host:delete' : 'host:update',
          target: { kind: 'Host', name: `h${n}` },
          outcome: 'succeeded',
          changes: [{ path: 'spec.online', before: false, after: true }],
          ...extra,
        };
      }

      /** Checks the links a verifier checks (server/audit/audit-hash.ts holds the full verifier). */
      function expectChained(events: StoredAuditEvent[]): void {
        let prev = AUDIT_GENESIS_HASH;
        events.forEach((e, i) => {
          expect(e.seq).toBe(i + 1);
          expect(e.prevHash).toBe(prev);
          const { hash, ...rest } = e;
          expect(auditEventHash(rest)).toBe(hash);
          prev = hash;
        });
      }

      it('appends events with seq 1, 2, 3, each hashed with its predecessor, and reads them back exactly', async () => {
        expect(await store.getAuditHead()).toEqual({ seq: 0, hash: AUDIT_GENESIS_HASH });
        const appended = [];
        for (let i = 1; i <= 3; i++) appended.push(await store.appendAuditEvent(audit(i, i === 2 ? { outcome: 'denied', reason: 'INGOT_ERR_FORBIDDEN' } : {})));
        expect(appended.map((e) => e.seq)).toEqual([1, 2, 3]);
        expect(appended[0]?.prevHash).toBe(AUDIT_GENESIS_HASH);
        expect(appended[0]?.id).toMatch(/^[0-9a-f-]{36}$/);
        expect(appended[1]).toMatchObject({ outcome: 'denied', reason: 'INGOT_ERR_FORBIDDEN', target: { kind: 'Host', project: '', name: 'h2' }, project: '' });
        const listed = await store.listAuditEvents();
        expect(listed).toEqual(appended);
        expectChained(listed);
        expect(await store.getAuditHead()).toEqual({ seq: 3, hash: appended[2]?.hash });
        // Every content field is covered by the hash.
        const first = listed[0] as StoredAuditEvent;
        const { hash, ...rest } = first;
        for (const tampered of [{ ...rest, actor: 'x' }, { ...rest, roles: [] }, { ...rest, changes: [] }, { ...rest, seq: 9 }, { ...rest, target: { ...rest.target, name: 'h9' } }]) {
          expect(auditEventHash(tampered)).not.toBe(hash);
        }
      });

      it('keeps caller-given id, time and nested changes exactly (hash computed over what is stored)', async () => {
        const changes = [{ path: 'metadata.labels["10"]', before: 'a', after: { z: 1, '2': [1, 'é', null], a: -0 } }, { path: 'spec.image', before: { url: 'u' } }];
        const e = await store.appendAuditEvent(audit(1, { id: 'fixed-id-1', time: '2026-02-03T04:05:06.007Z', changes, project: 'team-a' }));
        expect(e).toMatchObject({ id: 'fixed-id-1', time: '2026-02-03T04:05:06.007Z', project: 'team-a' });
        const [back] = await store.listAuditEvents();
        expect(back).toEqual(e);
        expect(back?.changes).toEqual([{ path: 'metadata.labels["10"]', before: 'a', after: { z: 1, '2': [1, 'é', null], a: 0 } }, { path: 'spec.image', before: { url: 'u' } }]);
        expectChained([back as StoredAuditEvent]);
      });

      it('filters and pages: afterSeq, beforeSeq, limit, newest first, actor/action/outcome/target/time', async () => {
        for (let i = 1; i <= 7; i++) {
          await store.appendAuditEvent(audit(i, { time: `2026-01-0${i}T00:00:00.000Z`, outcome: i === 5 ? 'failed' : 'succeeded', target: { kind: i === 7 ? 'Secret' : 'Host', name: `h${i}` } }));
        }
        const seqs = (events: StoredAuditEvent[]) => events.map((e) => e.seq);
        expect(seqs(await store.listAuditEvents({ afterSeq: 2, limit: 3 }))).toEqual([3, 4, 5]);
        expect(seqs(await store.listAuditEvents({ order: 'desc', limit: 2 }))).toEqual([7, 6]);
        expect(seqs(await store.listAuditEvents({ order: 'desc', beforeSeq: 6, limit: 2 }))).toEqual([5, 4]);
        expect(seqs(await store.listAuditEvents({ actor: 'token-0' }))).toEqual([2, 4, 6]);
        expect(seqs(await store.listAuditEvents({ action: 'host:delete' }))).toEqual([3, 6]);
        expect(seqs(await store.listAuditEvents({ outcome: 'failed' }))).toEqual([5]);
        expect(seqs(await store.listAuditEvents({ targetKind: 'Secret' }))).toEqual([7]);
        expect(seqs(await store.listAuditEvents({ targetKind: 'Host', targetName: 'h2', targetProject: '' }))).toEqual([2]);
        expect(seqs(await store.listAuditEvents({ since: '2026-01-03T00:00:00Z', until: '2026-01-05T00:00:00Z' }))).toEqual([3, 4]);
        await expectIngotError(store.listAuditEvents({ limit: 0 }), 'INGOT_ERR_VALIDATION', 'limit');
        await expectIngotError(store.listAuditEvents({ since: 'yesterday' }), 'INGOT_ERR_VALIDATION', 'since');
        await expectIngotError(store.listAuditEvents({ afterSeq: -1 }), 'INGOT_ERR_VALIDATION', 'afterSeq');
      });

      it('refuses events without actor, action or a known outcome, and bounds the size of the rest', async () => {
        await expectIngotError(store.appendAuditEvent(audit(1, { actor: '' })), 'INGOT_ERR_VALIDATION', 'actor');
        await expectIngotError(store.appendAuditEvent(audit(1, { outcome: 'maybe' as never })), 'INGOT_ERR_VALIDATION', 'outcome');
        await expectIngotError(store.appendAuditEvent(audit(1, { action: '' })), 'INGOT_ERR_VALIDATION', 'action');
        const huge = await store.appendAuditEvent(
          audit(1, { reason: 'r'.repeat(10_000), changes: Array.from({ length: 2000 }, (_, i) => ({ path: `spec.x${i}`, after: 'v'.repeat(100) })) }),
        );
        expect(huge.seq).toBe(1);
        expect(huge.reason.length).toBeLessThanOrEqual(1024);
        expect(huge.changes).toHaveLength(1);
        expect(String(huge.changes[0]?.after)).toContain('2000 changes');
        expectChained(await store.listAuditEvents());
      });

      it('commits or rolls back with the surrounding transaction, leaving no gap in seq', async () => {
        await store.appendAuditEvent(audit(1));
        await expect(
          store.transaction(async (tx) => {
            await tx.create(host('n1'));
            await tx.appendAuditEvent(audit(2));
            throw new Error('boom');
          }),
        ).rejects.toThrow('boom');
        expect(await store.get({ kind: 'Host', name: 'n1' })).toBeUndefined();
        expect((await store.getAuditHead()).seq).toBe(1);
        await store.transaction(async (tx) => {
          await tx.appendAuditEvent(audit(3));
          await tx.create(host('n2'));
        });
        const events = await store.listAuditEvents();
        expect(events.map((e) => e.requestId)).toEqual(['req-1', 'req-3']);
        expectChained(events);
      });

      it('concurrent appenders (two store instances on PostgreSQL) build one chain without forks or gaps', async () => {
        // SQLite serves one server process (DESIGN.md), whose one connection serializes
        // transactions. Two better-sqlite3 connections in one process cannot take turns: the
        // driver is synchronous, so one waiting for the write lock blocks the event loop the
        // holder needs to commit. Concurrency on SQLite is therefore tested on one instance.
        const other = store.dialect === 'sqlite' ? store : await peer();
        await Promise.all(
          [store, other].map(async (s, w) => {
            for (let i = 0; i < 15; i++) await s.appendAuditEvent(audit(i, { requestId: `w${w}-${i}` }));
          }),
        );
        const events = await store.listAuditEvents();
        expect(events).toHaveLength(30);
        expect(new Set(events.map((e) => e.requestId)).size).toBe(30);
        expectChained(events);
        expect(await other.getAuditHead()).toEqual({ seq: 30, hash: events[29]?.hash });
      });
    });


    describe('IP allocations and host bindings', () => {
      const v4Pool = { poolUid: 'pool-v4', poolName: 'rack1-v4', ranges: [{ start: '192.0.2.10', end: '192.0.2.12' }, { start: '192.0.2.20', end: '192.0.2.21' }], reserved: ['192.0.2.11'] };

      it('hands out the lowest free address across non-contiguous ranges, skipping reserved ones, and reuses freed ones', async () => {
        const got: string[] = [];
        for (const claim of ['c1', 'c2', 'c3', 'c4']) got.push((await store.allocateAddress({ ...v4Pool, claimUid: claim })).address);
        expect(got).toEqual(['192.0.2.10', '192.0.2.12', '192.0.2.20', '192.0.2.21']);
        await expectIngotError(store.allocateAddress({ ...v4Pool, claimUid: 'c5' }), 'INGOT_ERR_UNPROCESSABLE');
        expect(await store.releaseAddresses('c2')).toMatchObject([{ address: '192.0.2.12', claimUid: 'c2', poolUid: 'pool-v4', family: 4 }]);
        expect((await store.allocateAddress({ ...v4Pool, claimUid: 'c5' })).address).toBe('192.0.2.12');
        expect((await store.listAllocations('pool-v4')).map((a) => `${a.address}=${a.claimUid}`)).toEqual([
          '192.0.2.10=c1',
          '192.0.2.12=c5',
          '192.0.2.20=c3',
          '192.0.2.21=c4',
        ]);
      });

      it('gives a claim one address per pool: asking again returns it; other pools and releases are per claim', async () => {
        const first = await store.allocateAddress({ ...v4Pool, claimUid: 'c1' });
        expect(await store.allocateAddress({ ...v4Pool, claimUid: 'c1' })).toEqual(first);
        const v6 = await store.allocateAddress({ poolUid: 'pool-v6', poolName: 'rack1-v6', claimUid: 'c1', ranges: [{ start: '2001:DB8:0:0::ff', end: '2001:db8::1:0' }] });
        expect(v6).toMatchObject({ address: '2001:db8::ff', family: 6 });
        expect((await store.allocateAddress({ poolUid: 'pool-v6', poolName: 'rack1-v6', claimUid: 'c2', ranges: [{ start: '2001:db8::ff', end: '2001:db8::1:0' }] })).address).toBe('2001:db8::100');
        expect((await store.listClaimAllocations('c1')).map((a) => a.address)).toEqual(['192.0.2.10', '2001:db8::ff']);
        expect((await store.releaseAddresses('c1')).map((a) => a.address)).toEqual(['192.0.2.10', '2001:db8::ff']);
        expect(await store.listClaimAllocations('c1')).toEqual([]);
        expect(await store.releaseAddresses('c1')).toEqual([]);
        expect((await store.listAllocations('pool-v6')).map((a) => a.claimUid)).toEqual(['c2']);
      });

      it('gives a requested address, and refuses one that is taken, outside the ranges or reserved, with a clear error', async () => {
        expect((await store.allocateAddress({ ...v4Pool, claimUid: 'c1', requested: '192.0.2.20' })).address).toBe('192.0.2.20');
        const taken = await expectIngotError(store.allocateAddress({ ...v4Pool, claimUid: 'c2', requested: '192.0.2.20' }), 'INGOT_ERR_ALREADY_EXISTS', 'requested');
        expect(taken.message).toContain('192.0.2.20 of IP pool "rack1-v4" is already allocated');
        expect(taken.message).not.toContain('c1');
        await expectIngotError(store.allocateAddress({ ...v4Pool, claimUid: 'c2', requested: '192.0.2.13' }), 'INGOT_ERR_VALIDATION', 'requested');
        await expectIngotError(store.allocateAddress({ ...v4Pool, claimUid: 'c2', requested: '192.0.2.11' }), 'INGOT_ERR_VALIDATION', 'requested');
        await expectIngotError(store.allocateAddress({ ...v4Pool, claimUid: 'c2', requested: '2001:db8::1' }), 'INGOT_ERR_VALIDATION', 'requested');
        // The same claim asking for another address while holding one: refused, not silently moved.
        await expectIngotError(store.allocateAddress({ ...v4Pool, claimUid: 'c1', requested: '192.0.2.21' }), 'INGOT_ERR_ALREADY_EXISTS', 'requested');
        // Nothing above allocated anything.
        expect((await store.listAllocations('pool-v4')).map((a) => a.address)).toEqual(['192.0.2.20']);
        // The lowest free one skips the requested address held by c1.
        expect((await store.allocateAddress({ ...v4Pool, claimUid: 'c2' })).address).toBe('192.0.2.10');
      });

      it('walks a huge IPv6 range without enumerating it, and compares numerically, not as text', async () => {
        const pool = { poolUid: 'big', poolName: 'big', ranges: [{ start: '2001:db8::9', end: '2001:db8::ffff:ffff:ffff:ffff' }] };
        const got: string[] = [];
        for (let i = 0; i < 9; i++) got.push((await store.allocateAddress({ ...pool, claimUid: `c${i}` })).address);
        expect(got).toEqual(['2001:db8::9', '2001:db8::a', '2001:db8::b', '2001:db8::c', '2001:db8::d', '2001:db8::e', '2001:db8::f', '2001:db8::10', '2001:db8::11']);
        expect((await store.listAllocations('big')).map((a) => a.address)).toEqual(got);
      });

      it('50 parallel allocations from two store instances in a pool of 20: 20 distinct addresses, 30 "exhausted"', async () => {
        const other = await peer();
        const pool = { poolUid: 'race', poolName: 'race-pool', ranges: [{ start: '10.1.0.1', end: '10.1.0.10' }, { start: '10.1.0.101', end: '10.1.0.110' }] };
        const results = await Promise.allSettled(
          Array.from({ length: 50 }, (_, i) => (i % 2 === 0 ? store : other).allocateAddress({ ...pool, claimUid: `claim-${i}` })),
        );
        const won = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value.address] : []));
        const lost = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
        expect(won).toHaveLength(20);
        expect(new Set(won).size).toBe(20);
        expect(lost).toHaveLength(30);
        for (const error of lost) {
          expect(error).toBeInstanceOf(IngotError);
          expect((error as IngotError).message).toContain('IP pool "race-pool" is exhausted');
        }
        const stored = await other.listAllocations('race');
        expect(stored).toHaveLength(20);
        expect(new Set(stored.map((a) => a.claimUid)).size).toBe(20);
      });

      it('binds a host to one claim and a claim to one host; retries are safe; unbinding frees both', async () => {
        expect(await store.bindHost('h1', 'c1', 'team-a')).toBe(true);
        expect(await store.bindHost('h1', 'c1', 'team-a')).toBe(true);
        expect(await store.bindHost('h1', 'c2', 'team-a')).toBe(false);
        expect(await store.bindHost('h2', 'c1', 'team-a')).toBe(false);
        expect(await store.bindHost('h2', 'c2', 'team-b')).toBe(true);
        expect(await store.getClaimBinding('c1')).toMatchObject({ hostUid: 'h1', claimUid: 'c1', project: 'team-a' });
        expect((await store.listHostBindings()).map((b) => b.hostUid).sort()).toEqual(['h1', 'h2']);
        expect((await store.listHostBindings('team-b')).map((b) => b.claimUid)).toEqual(['c2']);
        expect(await store.unbindHost('c1')).toMatchObject({ hostUid: 'h1', claimUid: 'c1' });
        expect(await store.unbindHost('c1')).toBeUndefined();
        expect(await store.getClaimBinding('c1')).toBeUndefined();
        expect(await store.bindHost('h1', 'c3', 'team-a')).toBe(true);
      });

      it('two store instances binding 30 claims to 10 hosts at once: no host twice, no claim twice', async () => {
        const other = await peer();
        const outcomes = await Promise.all(
          Array.from({ length: 30 }, (_, c) => (c % 2 === 0 ? store : other).bindHost(`host-${c % 10}`, `claim-${c}`, 'p')),
        );
        expect(outcomes.filter(Boolean)).toHaveLength(10);
        const bindings = await store.listHostBindings();
        expect(bindings).toHaveLength(10);
        expect(new Set(bindings.map((b) => b.hostUid)).size).toBe(10);
        expect(new Set(bindings.map((b) => b.claimUid)).size).toBe(10);
      });
    });

    describe('agent commands and sessions', () => {
      const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();
      const command = (id: string, hostUid: string, operationId: string, second = 0) => ({
        id,
        hostUid,
        operationId,
        kind: 'deploy',
        request: { image: { url: 'http://x/i.raw' } },
        createdAt: at(second),
      });

      it('creates a command once per (host, operation): a second start returns the first', async () => {
        const first = await store.createAgentCommand(command('c1', 'host-a', 'op-1'));
        expect(first.created).toBe(true);
        expect(first.command).toMatchObject({ id: 'c1', state: 'queued', percent: 0, message: '', request: { image: { url: 'http://x/i.raw' } } });
        const again = await store.createAgentCommand(command('c2', 'host-a', 'op-1'));
        expect(again.created).toBe(false);
        expect(again.command.id).toBe('c1');
        expect(await store.getAgentCommand('c2')).toBeUndefined();
        // The same operation id on another host is another command.
        expect((await store.createAgentCommand(command('c3', 'host-b', 'op-1'))).created).toBe(true);
        expect((await store.findAgentCommand('host-b', 'op-1'))?.id).toBe('c3');
      });

      it('claims the oldest open command of that host only, and re-delivers a sent one until it runs', async () => {
        await store.createAgentCommand(command('b1', 'host-b', 'op-1', 1));
        await store.createAgentCommand(command('a2', 'host-a', 'op-2', 2));
        await store.createAgentCommand(command('a1', 'host-a', 'op-1', 1));
        expect(await store.claimNextAgentCommand('host-c', at(3))).toBeUndefined();
        const claimed = await store.claimNextAgentCommand('host-a', at(3));
        expect(claimed).toMatchObject({ id: 'a1', state: 'sent' });
        expect((await store.claimNextAgentCommand('host-a', at(4)))?.id).toBe('a1');
        await store.updateAgentCommand('a1', { state: 'running', percent: 10 }, at(5));
        expect((await store.claimNextAgentCommand('host-a', at(6)))?.id).toBe('a2');
        expect((await store.getAgentCommand('b1'))?.state).toBe('queued');
      });

      it('applies reports until the command ends, then keeps the outcome', async () => {
        await store.createAgentCommand(command('c1', 'host-a', 'op-1'));
        expect(await store.updateAgentCommand('missing', { state: 'running' }, at(1))).toBeUndefined();
        expect(await store.updateAgentCommand('c1', { state: 'running', percent: 250, message: 'writing' }, at(1))).toMatchObject({ state: 'running', percent: 100, message: 'writing' });
        const done = await store.updateAgentCommand('c1', { state: 'done', result: { rootDevice: '/dev/sda' } }, at(2));
        expect(done).toMatchObject({ state: 'done', percent: 100, result: { rootDevice: '/dev/sda' }, updatedAt: at(2) });
        const late = await store.updateAgentCommand('c1', { state: 'failed', message: 'late' }, at(3));
        expect(late).toMatchObject({ state: 'done', result: { rootDevice: '/dev/sda' }, updatedAt: at(2) });
      });

      it('keeps sessions: lookup by media hash and token, newest open one per host, ending them all', async () => {
        const session = (id: string, hostUid: string, second: number) => ({
          id,
          hostUid,
          bootId: `boot-${id}`,
          tokenId: `token-${id}`,
          mediaHash: id.padEnd(64, '0'),
          bootConfig: { apiUrl: 'https://agent.example:7386', hostUid },
          sealedToken: Buffer.from([1, 2, 3, 0, 255]),
          createdAt: at(second),
          expiresAt: 1_900_000_000_000,
        });
        await store.createAgentSession(session('a1', 'host-a', 1));
        await store.createAgentSession(session('a2', 'host-a', 2));
        await store.createAgentSession(session('b1', 'host-b', 1));
        const byMedia = await store.getAgentSessionByMediaHash('a1'.padEnd(64, '0'));
        expect(byMedia).toMatchObject({ id: 'a1', hostUid: 'host-a', bootConfig: { hostUid: 'host-a' }, expiresAt: 1_900_000_000_000 });
        expect(byMedia?.sealedToken.equals(Buffer.from([1, 2, 3, 0, 255]))).toBe(true);
        expect((await store.getAgentSessionByTokenId('token-b1'))?.id).toBe('b1');
        expect((await store.getActiveAgentSession('host-a'))?.id).toBe('a2');

        await store.touchAgentSession('a2', { lookedUpAt: at(3), lastSeenAt: at(3) });
        await store.touchAgentSession('a2', { lookedUpAt: at(9), lastSeenAt: at(4) });
        expect(await store.getActiveAgentSession('host-a')).toMatchObject({ lookedUpAt: at(3), lastSeenAt: at(4) });

        const ended = await store.endAgentSessions('host-a', at(5));
        expect(ended.map((s) => s.tokenId).sort()).toEqual(['token-a1', 'token-a2']);
        expect(await store.getActiveAgentSession('host-a')).toBeUndefined();
        expect((await store.getAgentSessionByTokenId('token-a1'))?.endedAt).toBe(at(5));
        expect(await store.endAgentSessions('host-a', at(6))).toEqual([]);
        expect((await store.getActiveAgentSession('host-b'))?.id).toBe('b1');
      });
    });
    describe('approvals', () => {
      const approval = (id: string, second: number, extra: Partial<StoredApproval> = {}): StoredApproval => ({
        id,
        action: 'host:delete',
        targetKind: 'Host',
        targetName: 'r1-n01',
        request: { method: 'DELETE', path: '/api/v1/hosts/r1-n01' },
        cause: 'threshold',
        requestedBy: 'tok-a',
        requestedAt: new Date(Date.UTC(2026, 0, 1, 0, 0, second)).toISOString(),
        expiresAt: new Date(Date.UTC(2026, 0, 1, 1, 0, second)).toISOString(),
        state: 'pending',
        ...extra,
      });

      it('stores an approval with its request, lists newest first and by state, and refuses a duplicate id', async () => {
        await store.createApproval(approval('a1', 1, { request: { method: 'PATCH', path: '/api/v1/hosts/r1-n01', body: { spec: { online: false } } } }));
        await store.createApproval(approval('a2', 2));
        expect(await store.getApproval('a1')).toMatchObject({ id: 'a1', state: 'pending', request: { method: 'PATCH', body: { spec: { online: false } } } });
        expect((await store.getApproval('a1'))?.decidedBy).toBeUndefined();
        expect((await store.listApprovals()).map((a) => a.id)).toEqual(['a2', 'a1']);
        await expectIngotError(store.createApproval(approval('a1', 3)), 'INGOT_ERR_ALREADY_EXISTS');
        expect(await store.getApproval('nope')).toBeUndefined();
      });

      it('moves an approval between states only from the expected state (one of two racing approvers wins)', async () => {
        await store.createApproval(approval('a1', 1));
        const other = await peer();
        const results = await Promise.all([
          store.transitionApproval('a1', 'pending', { state: 'approved', decidedBy: 'tok-b', decidedAt: 'x' }),
          other.transitionApproval('a1', 'pending', { state: 'rejected', decidedBy: 'tok-c', decidedAt: 'y', reason: 'no' }),
        ]);
        expect(results.filter((r) => r !== undefined)).toHaveLength(1);
        const executed = await store.transitionApproval('a1', (await store.getApproval('a1'))!.state, { state: 'executed' });
        expect(executed?.state).toBe('executed');
        expect(executed?.decidedBy).toMatch(/^tok-[bc]$/);
        expect(await store.transitionApproval('a1', 'pending', { state: 'approved' })).toBeUndefined();
        expect(await store.transitionApproval('missing', 'pending', { state: 'approved' })).toBeUndefined();
        expect((await store.listApprovals({ state: 'executed' })).map((a) => a.id)).toEqual(['a1']);
        expect(await store.listApprovals({ state: 'pending' })).toEqual([]);
      });
    });

    describe('windowed admissions', () => {
      const t0 = 1_780_000_000_000;

      it('admits up to the limit within the window, per kind; limit 0 admits nothing', async () => {
        const admitted = [];
        for (let i = 0; i < 5; i++) admitted.push(await store.admitWindowedAction('destructive', t0 + i, 60_000, 3));
        expect(admitted).toEqual([true, true, true, false, false]);
        // Another kind has its own window; another store instance sees the same one.
        expect(await store.admitWindowedAction('other', t0 + 10, 60_000, 3)).toBe(true);
        const other = await peer();
        expect(await other.admitWindowedAction('destructive', t0 + 20, 60_000, 3)).toBe(false);
        expect(await other.admitWindowedAction('destructive', t0 + 20, 60_000, 4)).toBe(true);
        expect(await store.admitWindowedAction('none', t0, 60_000, 0)).toBe(false);
        expect(await store.admitWindowedAction('none', t0, 60_000, 1)).toBe(true);
      });

      it('slides: an admission stops counting once it is windowMs old', async () => {
        expect(await store.admitWindowedAction('d', t0, 1000, 2)).toBe(true);
        expect(await store.admitWindowedAction('d', t0 + 500, 1000, 2)).toBe(true);
        expect(await store.admitWindowedAction('d', t0 + 999, 1000, 2)).toBe(false);
        // At t0 + 1000 the first one is exactly windowMs old: out of the window (t > now - windowMs).
        expect(await store.admitWindowedAction('d', t0 + 1000, 1000, 2)).toBe(true);
        expect(await store.admitWindowedAction('d', t0 + 1001, 1000, 2)).toBe(false);
        // Long after, the whole window is free again.
        expect(await store.admitWindowedAction('d', t0 + 10_000, 1000, 2)).toBe(true);
        expect(await store.admitWindowedAction('d', t0 + 10_001, 1000, 2)).toBe(true);
        expect(await store.admitWindowedAction('d', t0 + 10_002, 1000, 2)).toBe(false);
      });

      it('refuses a malformed kind, time, window or limit', async () => {
        await expect(store.admitWindowedAction('', t0, 1000, 1)).rejects.toThrow(/kind/);
        await expect(store.admitWindowedAction('k'.repeat(129), t0, 1000, 1)).rejects.toThrow(/kind/);
        await expect(store.admitWindowedAction('k', 1.5, 1000, 1)).rejects.toThrow(/now/);
        await expect(store.admitWindowedAction('k', t0, 0, 1)).rejects.toThrow(/windowMs/);
        await expect(store.admitWindowedAction('k', t0, 1000, -1)).rejects.toThrow(/limit/);
      });

      it('50 concurrent admissions from two store instances with limit 10: exactly 10 admitted', async () => {
        // Count and insert are one statement on SQLite (no transaction held across awaits),
        // so two instances in one process take turns as in the lease race above.
        const other = await peer();
        for (let round = 0; round < 3; round++) {
          const kind = `race-${round}`;
          const results = await Promise.all(
            Array.from({ length: 50 }, (_, i) => (i % 2 === 0 ? store : other).admitWindowedAction(kind, t0 + i, 60_000, 10)),
          );
          expect(results.filter(Boolean), `round ${round}`).toHaveLength(10);
          // Nothing more fits afterwards, from either instance.
          expect(await other.admitWindowedAction(kind, t0 + 100, 60_000, 10)).toBe(false);
          expect(await store.admitWindowedAction(kind, t0 + 100, 60_000, 10)).toBe(false);
        }
      });
    });
  });
}
