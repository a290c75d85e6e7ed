import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { HostSelector } from '../model/node-type.js';
import { compareHosts, explainNoMatch, matchHosts, measureHost } from './host-matcher.js';
import { testHost } from './testing/host-builder.js';

const names = (hosts: Array<{ metadata: { name: string } }>) => hosts.map((h) => h.metadata.name);

describe('matchHosts', () => {
  const fleet = [
    testHost('big', { ramMebibytes: 524288, cpus: 128, secureBoot: true, gpus: ['NVIDIA A100 80GB', 'NVIDIA A100 80GB'], nicGbps: [100] }),
    testHost('mid-b', { ramMebibytes: 131072, cpus: 32, secureBoot: true, labels: { rack: 'r2' } }),
    testHost('mid-a', { ramMebibytes: 131072, cpus: 32, secureBoot: true, labels: { rack: 'r1' } }),
    testHost('small', { ramMebibytes: 32768, cpus: 8, labels: { rack: 'r1' }, nicGbps: [10] }),
    testHost('busy', { ramMebibytes: 32768, state: 'provisioned' }),
    testHost('claimed', { ramMebibytes: 32768, labels: { 'ingot.dev/claim': 'c-9' } }),
    testHost('mid-c', { ramMebibytes: 131072, cpus: 32, disksGigabytes: [240], secureBoot: true }),
  ];

  it.each<[string, HostSelector, string[]]>([
    ['everything available, smallest first (RAM, CPUs, total disk, name)', {}, ['small', 'mid-c', 'mid-a', 'mid-b', 'big']],
    ['labels', { matchLabels: { rack: 'r1' } }, ['small', 'mid-a']],
    ['minimum CPUs', { minCpus: 32 }, ['mid-c', 'mid-a', 'mid-b', 'big']],
    ['minimum memory', { minMemoryMebibytes: 200000 }, ['big']],
    ['minimum disk (largest single disk)', { minDiskGigabytes: 300 }, ['small', 'mid-a', 'mid-b', 'big']],
    ['secure boot', { capabilities: { secureBoot: true } }, ['mid-c', 'mid-a', 'mid-b', 'big']],
    ['secureBoot false is no requirement', { capabilities: { secureBoot: false } }, ['small', 'mid-c', 'mid-a', 'mid-b', 'big']],
    ['GPU model (substring, any case) and count', { capabilities: { gpu: { model: 'a100', count: 2 } } }, ['big']],
    ['too many GPUs', { capabilities: { gpu: { count: 3 } } }, []],
    ['NIC speed', { capabilities: { minNicSpeedGbps: 25 } }, ['mid-c', 'mid-a', 'mid-b', 'big']],
    ['all together', { matchLabels: { rack: 'r1' }, minCpus: 16, capabilities: { secureBoot: true, minNicSpeedGbps: 25 } }, ['mid-a']],
  ])('%s', (_, selector, expected) => {
    expect(names(matchHosts({ selector }, fleet))).toEqual(expected);
  });

  it('never offers a host bound in the store, even before its label is set', () => {
    expect(names(matchHosts({ selector: {} }, fleet, { bound: new Set(['uid-small', 'uid-big']) }))).toEqual(['mid-c', 'mid-a', 'mid-b']);
  });

  it('property: every host chosen satisfies the selector, and the order does not depend on input order', () => {
    const arbHost = fc.record({
      ram: fc.constantFrom(16384, 32768, 65536),
      cpus: fc.constantFrom(4, 8, 16),
      disk: fc.constantFrom(100, 480, 960),
      secureBoot: fc.boolean(),
      rack: fc.constantFrom('r1', 'r2'),
      state: fc.constantFrom('available', 'available', 'provisioned'),
    });
    const arbSelector = fc.record(
      {
        matchLabels: fc.constantFrom({ rack: 'r1' }, { rack: 'r2' }),
        minCpus: fc.constantFrom(4, 8, 16),
        minMemoryMebibytes: fc.constantFrom(16384, 32768, 65536),
        minDiskGigabytes: fc.constantFrom(100, 480, 960),
        capabilities: fc.constantFrom({ secureBoot: true }, {}),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(fc.array(arbHost, { maxLength: 12 }), arbSelector, fc.infiniteStream(fc.nat()), (specs, selector, randoms) => {
        const hosts = specs.map((s, i) =>
          testHost(`h${i % 5}`, { ramMebibytes: s.ram, cpus: s.cpus, disksGigabytes: [s.disk], secureBoot: s.secureBoot, labels: { rack: s.rack }, state: s.state as 'available' }),
        );
        hosts.forEach((h, i) => (h.metadata.uid = `u${i}`));
        const chosen = matchHosts({ selector }, hosts);
        for (const host of chosen) {
          const m = measureHost(host.status.hardware);
          expect(host.status.provisioning.state).toBe('available');
          if (selector.matchLabels) expect(host.metadata.labels.rack).toBe(selector.matchLabels.rack);
          if (selector.minCpus) expect(m.cpus).toBeGreaterThanOrEqual(selector.minCpus);
          if (selector.minMemoryMebibytes) expect(m.ramMebibytes).toBeGreaterThanOrEqual(selector.minMemoryMebibytes);
          if (selector.minDiskGigabytes) expect(m.largestDiskGigabytes).toBeGreaterThanOrEqual(selector.minDiskGigabytes);
          if (selector.capabilities?.secureBoot) expect(host.status.hardware?.secureBootCapable).toBe(true);
        }
        // Nothing left out that qualifies: the explanation is empty exactly when something matched.
        expect(explainNoMatch({ selector }, hosts) === undefined).toBe(chosen.length > 0);
        const shuffled = [...hosts].sort(() => ((randoms.next().value as number) % 3) - 1);
        expect(matchHosts({ selector }, shuffled).map((h) => h.metadata.uid)).toEqual(chosen.map((h) => h.metadata.uid));
        for (let i = 1; i < chosen.length; i++) expect(compareHosts(chosen[i - 1]!, chosen[i]!)).toBeLessThan(0);
      }),
    );
  });
});

describe('explainNoMatch', () => {
  it('names the scarcest requirement and each host\'s first shortfall', () => {
    const hosts = [
      testHost('a', { ramMebibytes: 131072 }),
      testHost('b', { ramMebibytes: 131072 }),
      testHost('c', { ramMebibytes: 32768 }),
      testHost('d', { state: 'provisioned' }),
      testHost('e', { labels: { 'ingot.dev/claim': 'x' } }),
    ];
    expect(explainNoMatch({ selector: { minMemoryMebibytes: 65536, capabilities: { secureBoot: true } } }, hosts)).toBe(
      'no available host matches: 0 hosts with secureBoot (3 available hosts checked: 2 lack secure boot, 1 has 32768 MiB < 65536 MiB memory; not available: 1 bound to a claim, 1 provisioned)',
    );
  });

  it('says when requirements are each met somewhere but never together', () => {
    const hosts = [testHost('a', { ramMebibytes: 131072 }), testHost('b', { ramMebibytes: 1024, secureBoot: true })];
    expect(explainNoMatch({ selector: { minMemoryMebibytes: 65536, capabilities: { secureBoot: true } } }, hosts)).toBe(
      'no available host matches: no single host meets every requirement (fewest: 1 host with >= 65536 MiB memory) (2 available hosts checked: 1 has 1024 MiB < 65536 MiB memory, 1 lacks secure boot)',
    );
  });

  it('says when nothing is available at all, and returns undefined when a host matches', () => {
    expect(explainNoMatch({ selector: {} }, [])).toBe('no available host matches: 0 available hosts (no hosts enrolled)');
    expect(explainNoMatch({ selector: {} }, [testHost('a', { state: 'inspecting' })], {})).toBe(
      'no available host matches: 0 available hosts (1 host checked; not available: 1 inspecting)',
    );
    expect(explainNoMatch({ selector: { minCpus: 4 } }, [testHost('a')])).toBeUndefined();
  });
});
