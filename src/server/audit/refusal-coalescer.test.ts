import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStore } from '../../store/open-store.js';
import type { NewAuditEvent, Store } from '../../store/store.js';
import { verifyStoredAuditChain } from './audit-hash.js';
import { createAuditWriter } from './audit-writer.js';
import { createRefusalCoalescer } from './refusal-coalescer.js';

let dir: string;
let store: Store;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ingot-coalesce-'));
  store = await openStore({ database: join(dir, 'ingot.db') });
});

afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const refusal = (name: string, requestId: string): NewAuditEvent => ({
  actor: 'tok-viewer',
  roles: ['project-viewer'],
  sourceAddress: '10.0.0.9',
  requestId,
  action: 'host:delete',
  target: { kind: 'Host', name },
  outcome: 'denied',
  reason: 'INGOT_ERR_FORBIDDEN: not allowed',
});

describe('refusal coalescer', () => {
  it('records the first refusal at once and 599 identical ones as one event with their count; the chain still verifies', async () => {
    let now = 1_000;
    const coalescer = createRefusalCoalescer({ audit: createAuditWriter({ store }), windowMs: 60_000, now: () => now });
    for (let i = 0; i < 600; i++) await coalescer.record(refusal('h1', `r${i}`));
    await coalescer.record(refusal('h2', 'other'));
    let events = await store.listAuditEvents({ action: 'host:delete' });
    expect(events.map((e) => [e.target.name, e.repeatCount])).toEqual([
      ['h1', undefined],
      ['h2', undefined],
    ]);
    now += 59_999;
    await coalescer.flush();
    expect(await store.listAuditEvents({ action: 'host:delete' })).toHaveLength(2);
    now += 1;
    await coalescer.flush();
    events = await store.listAuditEvents({ action: 'host:delete' });
    expect(events).toHaveLength(3);
    expect(events[2]).toMatchObject({ target: { name: 'h1' }, repeatCount: 599, requestId: 'r599', outcome: 'denied' });
    // a refusal after the window starts a new one
    await coalescer.record(refusal('h1', 'later'));
    expect(await store.listAuditEvents({ action: 'host:delete' })).toHaveLength(4);
    await coalescer.close();
    expect((await verifyStoredAuditChain(store)).ok).toBe(true);
  });

  it('writes pending counts on close and when too many kinds are tracked', async () => {
    const coalescer = createRefusalCoalescer({ audit: createAuditWriter({ store }), maxKinds: 2, now: () => 0 });
    for (const name of ['a', 'a', 'b', 'b', 'c']) await coalescer.record(refusal(name, name));
    // 'c' pushed 'a' out early: its repeat is written
    expect((await store.listAuditEvents({ action: 'host:delete' })).map((e) => [e.target.name, e.repeatCount ?? 1])).toEqual([
      ['a', 1],
      ['b', 1],
      ['c', 1],
      ['a', 1],
    ]);
    await coalescer.close();
    const events = await store.listAuditEvents({ action: 'host:delete' });
    expect(events.at(-1)!.target.name).toBe('b');
    expect(events.at(-1)!.repeatCount).toBeUndefined();
    expect(events).toHaveLength(5);
  });
});
