// Checks of the contract suite itself: skips carry their reason into the test name, and a
// skip without a reason (or of a case that does not exist) is refused.
import { describe, expect, it } from 'vitest';
import { createFakeDriver } from '../../src/drivers/fake/fake-driver.js';
import { FakeFleet } from '../../src/drivers/fake/fake-fleet.js';
import { parseBmcAddress } from '../../src/model/bmc-address.js';
import { runDriverContract, waitFor } from './contract.js';

const newTarget = async () => {
  const fleet = new FakeFleet({ delays: { powerMs: [0, 5] } });
  const credentials = { username: 'a', password: 'b' };
  fleet.setCredentials('skips', credentials);
  return {
    driver: createFakeDriver(fleet),
    target: { hostName: 'h', address: parseBmcAddress('fake://skips'), credentials, tls: { verify: true } },
  };
};

// Two cases skipped: they show as skipped with the reason in their names; the rest run.
runDriverContract({
  name: 'fake with skips',
  newTarget,
  skip: { bios: 'demonstrating a skip with its reason', firmware: 'demonstrating a second skip' },
});

describe('runDriverContract', () => {
  it('refuses a skip without a reason', () => {
    expect(() => runDriverContract({ name: 'x', newTarget, skip: { bios: '  ' } })).toThrow(/skipping "bios" needs a reason/);
  });

  it('refuses a skip of a case that does not exist', () => {
    expect(() => runDriverContract({ name: 'x', newTarget, skip: { teleport: 'no' } as never })).toThrow(/unknown case "teleport"/);
  });

  it('waitFor gives up after its bound with the last value it read', async () => {
    let reads = 0;
    await expect(waitFor('never', async () => ++reads, () => false, { timeoutMs: 30, intervalMs: 5 })).rejects.toThrow(/timed out after 30 ms waiting for never; last value \d+/);
    expect(reads).toBeGreaterThan(1);
  });
});
