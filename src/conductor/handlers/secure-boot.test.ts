// Secure boot around a deploy, on the fake fleet: refused early when the host or driver cannot
// do it, enabled after the image is written, verified on the running OS, turned off for hosts
// that do not ask for it, and reset to the disabled baseline by cleaning (once, across a
// conductor restart).
import { describe, expect, it } from 'vitest';
import type { BmcDriver, SecureBootInterface } from '../../drivers/driver.js';
import type { DriverRegistry } from '../../drivers/registry.js';
import type { Outcome } from '../outcome.js';
import { SECURE_BOOT_STEP } from './secure-boot.js';
import { harness, host, IMAGE, type Harness } from './test-kit.js';

/** A registry whose driver's secure-boot part is replaced (or removed, with `undefined`). */
function withSecureBoot(make: (real: SecureBootInterface) => SecureBootInterface | undefined) {
  return (base: DriverRegistry): DriverRegistry => ({
    ...base,
    driverFor: (address) => {
      const { secureBoot, ...rest } = base.driverFor(address);
      const replaced = make(secureBoot!);
      const driver: BmcDriver = replaced ? { ...rest, secureBoot: replaced } : rest;
      return driver;
    },
  });
}

const secureHost = (name = 'node-1') => host('provisioning', name).withImage().withSpec({ bootMode: 'UEFISecureBoot' });
const eventsOf = (outcome: Outcome) => ('events' in outcome ? (outcome.events ?? []) : []);

describe('provisioning with spec.bootMode UEFISecureBoot', () => {
  it('enables secure boot after the image is written, reboots into the OS and records the verified fact', async () => {
    // Each secure-boot set notes whether the image was already on the disk at that moment.
    const sets: Array<{ enabled: boolean; imageWritten: boolean }> = [];
    let h!: Harness;
    h = harness({
      drivers: withSecureBoot((real) => ({
        get: (t) => real.get(t),
        set: async (t, r) => {
          sets.push({ enabled: r.enabled, imageWritten: h.fleet.machine('node-1').disk.written !== undefined });
          return real.set(t, r);
        },
      })),
    });
    const { outcome, host: after } = await h.drive(secureHost().online());
    expect(outcome).toMatchObject({ kind: 'advance', event: 'provisioned' });
    expect(sets).toEqual([{ enabled: true, imageWritten: true }]);
    const m = h.fleet.machine('node-1');
    expect(m.secureBoot.enabled).toBe(true);
    expect(m.lastBoot).toMatchObject({ from: 'hdd', secureBoot: true });
    expect(m.bootCount).toBe(2); // the agent (before secure boot was on), then the OS
    expect(after.status.provisioning.secureBoot).toBe(true);
    expect(after.status.provisioning.bootMode).toBe('UEFISecureBoot');
    expect(eventsOf(outcome)).toEqual([expect.objectContaining({ reason: 'SecureBootVerified' })]);
  });

  it('refuses a host inspection found not secure-boot capable, before anything touches it', async () => {
    const h = harness();
    const given = secureHost('no-secure-boot-1').online().withStatus({ hardware: { secureBootCapable: false } });
    const { outcome } = await h.run(given);
    expect(outcome).toMatchObject({ kind: 'failed', errorType: 'provisioning', message: expect.stringMatching(/does not support UEFI secure boot; set spec.bootMode to UEFI/) });
    const m = h.fleet.machine('no-secure-boot-1');
    expect(m.operations).toEqual({});
    expect(m.power).toBe('off');
    expect(m.bootCount).toBe(0);
  });

  it('refuses a driver without a secure-boot part, naming the fix', async () => {
    const h = harness({ drivers: withSecureBoot(() => undefined) });
    const { outcome } = await h.run(secureHost().online());
    expect(outcome).toMatchObject({ kind: 'failed', errorType: 'provisioning', message: expect.stringContaining('the fake driver cannot manage UEFI secure boot') });
    expect(h.fleet.machine('node-1').operations).toEqual({});
  });

  it('fails when the running OS still has secure boot off after the verification timeout', async () => {
    // A BMC that accepts the PATCH and ignores it.
    const h = harness({ config: { secureBootVerifyTimeoutMs: 3_000 }, drivers: withSecureBoot((real) => ({ get: (t) => real.get(t), set: async () => {} })) });
    const { outcome, host: after } = await h.drive(secureHost().online());
    expect(outcome).toMatchObject({ kind: 'failed', errorType: 'provisioning', message: expect.stringMatching(/^secure boot did not take effect: 3 s after booting the new OS the BMC reports the running boot without secure boot/) });
    expect(after.status.provisioning.secureBoot).toBeUndefined();
    // It did boot the OS: the failure is about secure boot, not the deploy.
    expect(h.fleet.machine('node-1').lastBoot).toMatchObject({ from: 'hdd', secureBoot: false });
  });

  it('fails at once when the BMC does not report the current boot at all', async () => {
    const h = harness({
      drivers: withSecureBoot((real) => ({
        get: async (t) => {
          const { currentBoot: _dropped, ...rest } = await real.get(t);
          return rest;
        },
        set: (t, r) => real.set(t, r),
      })),
    });
    const { outcome } = await h.drive(secureHost().online());
    expect(outcome).toMatchObject({ kind: 'failed', message: expect.stringContaining('does not report whether the running boot has secure boot on') });
  });

  it('spec offline: the setting is enabled, nothing is claimed verified', async () => {
    const h = harness();
    const { outcome, host: after } = await h.drive(secureHost());
    expect(outcome).toMatchObject({ kind: 'advance', event: 'provisioned' });
    expect(h.fleet.machine('node-1').secureBoot.enabled).toBe(true);
    expect(h.fleet.machine('node-1').power).toBe('off');
    expect(after.status.provisioning.secureBoot).toBeUndefined();
    expect(eventsOf(outcome)).toEqual([expect.objectContaining({ reason: 'SecureBootNotVerified' })]);
  });
});

describe('provisioning without secure boot', () => {
  it('turns off secure boot left on, before booting the agent and the OS', async () => {
    const h = harness();
    h.fleet.setSecureBoot('node-1', true);
    const first = await h.run(host('provisioning').withImage().online().withStep({ image: IMAGE }));
    expect(first.outcome).toMatchObject({ kind: 'save', events: [expect.objectContaining({ reason: 'SecureBootDisabled' })] });
    expect(h.fleet.machine('node-1').bootCount).toBe(0);
    const { outcome, host: after } = await h.drive(first.host);
    expect(outcome).toMatchObject({ kind: 'advance', event: 'provisioned' });
    const m = h.fleet.machine('node-1');
    expect(m.secureBoot.enabled).toBe(false);
    expect(m.lastBoot).toMatchObject({ from: 'hdd', secureBoot: false });
    expect(after.status.provisioning.secureBoot).toBeUndefined();
  });

  it('a host without secure boot provisions without touching it', async () => {
    let calls = 0;
    const h = harness({ drivers: withSecureBoot((real) => ({ get: (t) => (calls++, real.get(t)), set: (t, r) => (calls++, real.set(t, r)) })) });
    const { outcome } = await h.drive(host('provisioning', 'no-secure-boot-2').withImage().online().withStatus({ hardware: { secureBootCapable: false } }));
    expect(outcome).toMatchObject({ kind: 'advance', event: 'provisioned' });
    expect(calls).toBe(0);
  });

  it('tolerates a BMC that refuses the secure-boot read (404) with a warning', async () => {
    const h = harness();
    h.fleet.failNext('node-1', 'secureBoot', 'refused');
    const seen: string[] = [];
    let current = host('provisioning').withImage().online().build();
    for (let i = 0; i < 200; i++) {
      const { outcome, host: next } = await h.run(current);
      for (const e of eventsOf(outcome)) seen.push(e.reason);
      if (outcome.kind === 'advance') break;
      if (outcome.kind === 'wait') h.clock.advance(outcome.afterMs);
      else if (outcome.kind !== 'save') throw new Error(`unexpected ${JSON.stringify(outcome)}`);
      current = next;
    }
    expect(seen).toEqual(['SecureBootNotDisabled']);
    expect(h.fleet.machine('node-1').disk.written).toBeDefined();
  });
});

describe('deprovisioning resets secure boot to the disabled baseline', () => {
  const provisionedSecure = () =>
    host('deprovisioning')
      .withStatus({ provisioning: { state: 'deprovisioning', secureBoot: true } })
      .provisionedWith()
      .withSpec({ bootMode: 'UEFISecureBoot' });

  it('before the cleaning ramdisk boots, and forgets the verified fact', async () => {
    const h = harness();
    h.fleet.setSecureBoot('node-1', true);
    const { outcome, host: after } = await h.drive(provisionedSecure());
    expect(outcome).toMatchObject({ kind: 'advance', event: 'deprovisioned' });
    const m = h.fleet.machine('node-1');
    expect(m.secureBoot.enabled).toBe(false);
    expect(m.disk.cleans.map((c) => c.mode)).toEqual(['metadata']);
    // The agent that cleaned booted without secure boot: the reset came first.
    expect(m.lastBoot).toMatchObject({ from: 'pxe', secureBoot: false });
    expect(after.status.provisioning.secureBoot).toBeUndefined();
  });

  it('once: a conductor restarted after the reset was saved does not ask the BMC again', async () => {
    const h = harness();
    h.fleet.setSecureBoot('node-1', true);
    const first = await h.run(provisionedSecure());
    expect(first.outcome).toMatchObject({ kind: 'save', events: [expect.objectContaining({ reason: 'SecureBootReset' })] });
    expect(first.host.status.stepState?.[SECURE_BOOT_STEP.reset]).toBe(true);
    // Someone turns it on again behind Ingot's back; the restarted step keeps going from stepState.
    h.fleet.setSecureBoot('node-1', true);
    const { outcome } = await h.drive(first.host);
    expect(outcome).toMatchObject({ kind: 'advance', event: 'deprovisioned' });
    expect(h.fleet.machine('node-1').secureBoot.enabled).toBe(true);
  });

  it('idempotent: a conductor that died before saving repeats the reset harmlessly', async () => {
    const h = harness();
    h.fleet.setSecureBoot('node-1', true);
    const first = await h.run(provisionedSecure());
    const again = await h.run(provisionedSecure());
    expect(first.outcome.kind).toBe('save');
    // The second run finds it already off: still recorded, no second change event.
    expect(again.outcome).toEqual({ kind: 'save', events: [] });
    expect(again.host.status.stepState?.[SECURE_BOOT_STEP.reset]).toBe(true);
  });

  it('with cleaning disabled too', async () => {
    const h = harness();
    h.fleet.setSecureBoot('node-1', true);
    const { outcome } = await h.drive(provisionedSecure().withSpec({ automatedCleaningMode: 'disabled' }));
    expect(outcome).toMatchObject({ kind: 'advance', event: 'deprovisioned' });
    expect(h.fleet.machine('node-1').secureBoot.enabled).toBe(false);
  });

  it('a host without secure boot has nothing to reset', async () => {
    const h = harness();
    const { outcome, host: after } = await h.drive(host('deprovisioning', 'no-secure-boot-3').withStatus({ hardware: { secureBootCapable: false } }).provisionedWith());
    expect(outcome).toMatchObject({ kind: 'advance', event: 'deprovisioned' });
    expect(after.status.stepState?.[SECURE_BOOT_STEP.reset]).toBeUndefined();
  });

  it('an unreachable BMC is retried, not skipped', async () => {
    const h = harness();
    h.fleet.setSecureBoot('node-1', true);
    h.fleet.failNext('node-1', 'secureBoot', 'timeout');
    const { outcome } = await h.run(provisionedSecure());
    expect(outcome).toMatchObject({ kind: 'retry' });
    expect(h.fleet.machine('node-1').secureBoot.enabled).toBe(true);
  });
});

describe('the boot mode is fixed when the deploy starts', () => {
  it('an edit of spec.bootMode mid-deploy does not change the deploy in progress', async () => {
    const h = harness();
    const first = await h.run(secureHost().online());
    expect(first.outcome.kind).toBe('save');
    first.host.spec.bootMode = 'UEFI';
    const { outcome, host: after } = await h.drive(first.host);
    expect(outcome).toMatchObject({ kind: 'advance', event: 'provisioned' });
    expect(h.fleet.machine('node-1').lastBoot).toMatchObject({ from: 'hdd', secureBoot: true });
    expect(after.status.provisioning).toMatchObject({ bootMode: 'UEFISecureBoot', secureBoot: true });
  });
});
