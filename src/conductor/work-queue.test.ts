import { describe, expect, it } from 'vitest';
import { createManualClock } from './clock.js';
import { WorkQueue, type ProcessResult } from './work-queue.js';

/** A process function whose runs the test finishes by hand. */
function controlled() {
  const started: string[] = [];
  const pending = new Map<string, Array<(r: ProcessResult) => void>>();
  let concurrent = 0;
  let maxConcurrent = 0;
  const perKey = new Map<string, number>();
  let maxPerKey = 0;
  return {
    started,
    get maxConcurrent() {
      return maxConcurrent;
    },
    get maxPerKey() {
      return maxPerKey;
    },
    process(key: string): Promise<ProcessResult> {
      started.push(key);
      concurrent++;
      maxConcurrent = Math.max(maxConcurrent, concurrent);
      perKey.set(key, (perKey.get(key) ?? 0) + 1);
      maxPerKey = Math.max(maxPerKey, perKey.get(key)!);
      return new Promise((resolve) => {
        const list = pending.get(key) ?? [];
        list.push((r) => {
          concurrent--;
          perKey.set(key, perKey.get(key)! - 1);
          resolve(r);
        });
        pending.set(key, list);
      });
    },
    async finish(key: string, result: ProcessResult = {}) {
      const list = pending.get(key);
      if (!list?.length) throw new Error(`${key} is not running`);
      list.shift()!(result);
      // Let the queue's continuation run.
      await new Promise((r) => setImmediate(r));
    },
  };
}

const flush = () => new Promise((r) => setImmediate(r));

describe('WorkQueue', () => {
  it('dedupes a key added several times while it waits', async () => {
    const clock = createManualClock();
    const work = controlled();
    const q = new WorkQueue({ workers: 1, clock, process: (k) => work.process(k) });
    // 1. `a` starts at once and occupies the only worker.
    q.add('a');
    // 2. `b` is added three times while waiting: it must run once.
    q.add('b');
    q.add('b');
    q.add('b');
    expect(q.length).toBe(1);
    await work.finish('a');
    await work.finish('b');
    await q.idle();
    expect(work.started).toEqual(['a', 'b']);
  });

  it('never runs one key in two workers; an add during a run runs it again afterwards', async () => {
    const clock = createManualClock();
    const work = controlled();
    const q = new WorkQueue({ workers: 4, clock, process: (k) => work.process(k) });
    q.add('a');
    q.add('a'); // while running: marked dirty, not started twice
    q.add('b');
    await flush();
    expect(work.started).toEqual(['a', 'b']);
    expect(work.maxPerKey).toBe(1);
    await work.finish('a');
    expect(work.started).toEqual(['a', 'b', 'a']);
    await work.finish('a');
    await work.finish('b');
    await q.idle();
    expect(work.maxPerKey).toBe(1);
    expect(work.maxConcurrent).toBe(2);
  });

  it('runs at most `workers` keys at once', async () => {
    const clock = createManualClock();
    const work = controlled();
    const q = new WorkQueue({ workers: 2, clock, process: (k) => work.process(k) });
    for (const k of ['a', 'b', 'c', 'd']) q.add(k);
    await flush();
    expect(work.started).toEqual(['a', 'b']);
    await work.finish('b');
    expect(work.started).toEqual(['a', 'b', 'c']);
    for (const k of ['a', 'c']) await work.finish(k);
    await work.finish('d');
    await q.idle();
    expect(work.maxConcurrent).toBe(2);
  });

  it('a delayed add keeps only the earliest due time', async () => {
    const clock = createManualClock();
    const work = controlled();
    const q = new WorkQueue({ workers: 1, clock, process: (k) => work.process(k) });
    const t0 = clock.now();
    q.addAfter('a', 5_000);
    q.addAfter('a', 1_000); // earlier: wins
    q.addAfter('a', 3_000); // later: ignored
    expect(q.dueAt('a')).toBe(t0 + 1_000);
    clock.advance(999);
    expect(work.started).toEqual([]);
    clock.advance(1);
    await flush();
    expect(work.started).toEqual(['a']);
    await work.finish('a');
    clock.advance(10_000);
    await flush();
    expect(work.started).toEqual(['a']); // the 3 s and 5 s adds left nothing behind
  });

  it('requeues after the delay the process returns, and an immediate add overrides it', async () => {
    const clock = createManualClock();
    const work = controlled();
    const q = new WorkQueue({ workers: 1, clock, process: (k) => work.process(k) });
    q.add('a');
    await work.finish('a', { requeueAfterMs: 60_000 });
    expect(q.dueAt('a')).toBe(clock.now() + 60_000);
    q.add('a');
    expect(q.dueAt('a')).toBeUndefined();
    await flush();
    expect(work.started).toEqual(['a', 'a']);
    await work.finish('a');
  });

  it('forget drops a waiting or delayed key', async () => {
    const clock = createManualClock();
    const work = controlled();
    const q = new WorkQueue({ workers: 1, clock, process: (k) => work.process(k) });
    q.add('a');
    q.add('b');
    q.addAfter('c', 10);
    q.forget('b');
    q.forget('c');
    await work.finish('a');
    clock.advance(100);
    await q.idle();
    expect(work.started).toEqual(['a']);
  });

  it('stop waits for running keys and drops the rest', async () => {
    const clock = createManualClock();
    const work = controlled();
    const q = new WorkQueue({ workers: 1, clock, process: (k) => work.process(k) });
    q.add('a');
    q.add('b');
    q.addAfter('c', 10);
    let stopped = false;
    const stopping = q.stop().then(() => (stopped = true));
    await flush();
    expect(stopped).toBe(false);
    await work.finish('a');
    await stopping;
    clock.advance(100);
    q.add('d');
    await flush();
    expect(work.started).toEqual(['a']);
    expect(clock.pendingTimers()).toBe(0);
  });

  it('a throwing process is reported and does not wedge its key', async () => {
    const clock = createManualClock();
    const errors: string[] = [];
    let calls = 0;
    const q = new WorkQueue({
      workers: 1,
      clock,
      process: async () => {
        calls++;
        throw new Error('boom');
      },
      onError: (key, e) => errors.push(`${key}: ${(e as Error).message}`),
    });
    q.add('a');
    await q.idle();
    q.add('a');
    await q.idle();
    expect(calls).toBe(2);
    expect(errors).toEqual(['a: boom', 'a: boom']);
  });
});
