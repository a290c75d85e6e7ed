import { describe, expect, it } from 'vitest';
import type { Host } from '../model/host.js';
import { ProgressReporter } from './progress.js';

function h(name: string, state: string, progress?: { step: string; percent: number; message?: string }): Host {
  return {
    metadata: { name },
    status: { provisioning: { state }, progress },
  } as unknown as Host;
}

describe('ProgressReporter', () => {
  it('prints one line per state change when not on a terminal', () => {
    let text = '';
    let now = 1000;
    const p = new ProgressReporter({ write: (t) => void (text += t) }, { tty: false, now: () => now, started: 1000 });
    p.update(h('r1-n07', 'registering'));
    now = 4200;
    p.update(h('r1-n07', 'inspecting'));
    p.update(h('r1-n07', 'inspecting', { step: 'inspect', percent: 50 })); // same state: no line
    now = 5000;
    p.deleted('r1-n07');
    p.stop();
    expect(text).toBe('r1-n07: registering (0.0s)\nr1-n07: registering -> inspecting (3.2s)\nr1-n07: inspecting -> deleted (4.0s)\n');
  });

  it('prints each new step of a long operation on its own line (what cleaning is doing)', () => {
    let text = '';
    const p = new ProgressReporter({ write: (t) => void (text += t) }, { tty: false, now: () => 0, started: 0 });
    p.update(h('n1', 'deprovisioning'));
    p.update(h('n1', 'deprovisioning', { step: 'clean', percent: 0, message: 'erasing the metadata of 3 partitions and containers on sda' }));
    p.update(h('n1', 'deprovisioning', { step: 'clean', percent: 40, message: 'erasing the metadata of 3 partitions and containers on sda' }));
    p.update(h('n1', 'deprovisioning', { step: 'clean', percent: 50, message: 'verifying the erase of sda' }));
    p.stop();
    expect(text).toBe('n1: deprovisioning (0.0s)\nn1: erasing the metadata of 3 partitions and containers on sda (0.0s)\nn1: verifying the erase of sda (0.0s)\n');
  });

  it('rewrites a single line on a terminal, with step, percent and elapsed time', () => {
    const writes: string[] = [];
    let now = 0;
    const p = new ProgressReporter({ write: (t) => void writes.push(t), columns: 200 }, { tty: true, now: () => now, started: 0 });
    p.update(h('a', 'provisioning', { step: 'deploy', percent: 40 }));
    now = 1500;
    p.update(h('b', 'available'));
    p.stop();
    expect(writes.every((w, i) => (i === writes.length - 1 ? w === '\n' : w.startsWith('\r\x1b[2K')))).toBe(true);
    expect(writes.at(-2)).toBe('\r\x1b[2Ka provisioning deploy 40% | b available  [1.5s]');
    expect(writes.join('').split('\n').length).toBe(2); // one line, then the final newline
  });
});
