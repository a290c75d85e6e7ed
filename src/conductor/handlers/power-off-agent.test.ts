// A host that powers off takes its agent session with it (DESIGN.md "The agent protocol":
// one-boot tokens are revoked when the operation ends or the host powers off). The handlers
// run against the fake fleet; the agent port's finish() goes to the real AgentQueue over an
// in-memory store, so what is checked is the stored token itself.
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DriverRegistry } from '../../drivers/registry.js';
import type { Host } from '../../model/host.js';
import { openStore } from '../../store/open-store.js';
import { SecretBox } from '../../store/secret-box.js';
import type { Store } from '../../store/store.js';
import type { AgentPort } from '../agent-port.js';
import { createAgentQueue, sha256Hex, type AgentQueue } from '../agent-queue.js';
import { harness, host, withoutAgent } from './test-kit.js';

let store: Store & { close?: () => Promise<void> };
let queue: AgentQueue;

beforeEach(async () => {
  store = await openStore({ database: ':memory:' });
  queue = createAgentQueue({ store, box: new SecretBox(randomBytes(32)), agentApiUrl: 'http://127.0.0.1:1' });
});
afterEach(async () => {
  await store.close?.();
});

/** The fake fleet's drivers, with an agent whose finish() also ends the real queue's session; `log` records the order. */
function withQueue(log: string[]) {
  return (base: DriverRegistry): DriverRegistry => ({
    driverFor: (address) => {
      const driver = base.driverFor(address);
      return {
        ...driver,
        power: {
          ...driver.power,
          set: (target, request) => {
            log.push(`power ${request.state}`);
            return driver.power.set(target, request);
          },
        },
      };
    },
    agentFor: (h) => {
      const fake = base.agentFor(h);
      const port: AgentPort = {
        start: (x, id, r) => fake.start(x, id, r),
        poll: (x, id) => fake.poll(x, id),
        finish: async (x) => {
          log.push('finish');
          await queue.finish(x);
          await fake.finish(x);
        },
      };
      return port;
    },
    hasAgent: () => true,
  });
}

async function tokenState(token: string) {
  return store.findTokenByHash(sha256Hex(token));
}

describe('powering a host off ends its agent session', () => {
  it('powering-off-before-delete: the live agent token is revoked before the power goes off', async () => {
    const log: string[] = [];
    const h = harness({ drivers: withQueue(log) });
    h.fleet.setPower('node-1', 'on');
    h.clock.advance(1_000);
    const built = host('powering-off-before-delete').deleted().build();
    const { token } = await queue.prepareBoot(built);
    expect((await tokenState(token))?.revokedAt).toBeUndefined();
    expect(await store.getActiveAgentSession(built.metadata.uid)).toBeDefined();

    const { outcome } = await h.drive(built);
    expect(outcome).toMatchObject({ kind: 'advance', event: 'powered-off' });
    expect(h.fleet.machine('node-1').power).toBe('off');
    expect((await tokenState(token))?.revokedAt).toBeDefined();
    expect(await store.getActiveAgentSession(built.metadata.uid)).toBeUndefined();
    // The session ended before the power-off was asked for.
    expect(log.indexOf('finish')).toBeGreaterThanOrEqual(0);
    expect(log.indexOf('finish')).toBeLessThan(log.indexOf('power off'));
  });

  it('provisioning that ends powered off (spec.online false): the agent token is revoked', async () => {
    const log: string[] = [];
    const h = harness({ drivers: withQueue(log) });
    const built: Host = host('provisioning').withImage().online(false).build();
    // A session opened out of band (e.g. a boot medium prepared earlier) is also ended.
    const { token } = await queue.prepareBoot(built);
    const { outcome } = await h.drive(built);
    expect(outcome).toMatchObject({ kind: 'advance', event: 'provisioned' });
    expect(h.fleet.machine('node-1').power).toBe('off');
    expect((await tokenState(token))?.revokedAt).toBeDefined();
  });

  it('a host already off with no session: powering off asks nothing of the agent port', async () => {
    const log: string[] = [];
    const h = harness({ drivers: withQueue(log) });
    const { outcome } = await h.drive(host('powering-off-before-delete').deleted());
    expect(outcome).toMatchObject({ kind: 'advance', event: 'powered-off' });
    expect(log).toEqual([]);
  });

  it('a host without an agent powers off without touching the agent port', async () => {
    const h = harness({ drivers: withoutAgent });
    h.fleet.setPower('node-1', 'on');
    h.clock.advance(1_000);
    const { outcome } = await h.drive(host('powering-off-before-delete').deleted());
    expect(outcome).toMatchObject({ kind: 'advance', event: 'powered-off' });
    expect(h.fleet.machine('node-1').power).toBe('off');
  });
});
