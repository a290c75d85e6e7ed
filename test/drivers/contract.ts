// The shared contract every BmcDriver must pass (after Hono's router common.case.test.ts): the
// fake, Redfish against the lab, and IPMI against ipmi_sim all call runDriverContract, so the
// conductor can rely on the same behaviour whatever drives the host. Drivers are polled (see
// src/drivers/driver.ts), so every check of a change waits for it with a bounded poll, never
// a fixed sleep. A case may be skipped only with a reason, which is printed in the test name.
import { afterEach, describe, expect, it, type TestContext } from 'vitest';
import { BmcAuthenticationError, BmcRefused, type BmcDriver, type BmcTarget, type BootDevice, type PowerState } from '../../src/drivers/driver.js';

export const CONTRACT_CASES = [
  'identify',
  'power-converges',
  'power-idempotent',
  'reboot',
  'boot-device',
  'boot-device-unsupported',
  'virtual-media',
  'inventory',
  'secure-boot',
  'bios',
  'firmware',
  'wrong-password',
] as const;
export type ContractCase = (typeof CONTRACT_CASES)[number];

export interface DriverContractOptions {
  name: string;
  /** A driver and a target for one case; called once per case. */
  newTarget: () => Promise<{ driver: BmcDriver; target: BmcTarget; cleanup?: () => Promise<void> }>;
  /** Cases this driver cannot run, each with the reason (shown in the test name). */
  skip?: Partial<Record<ContractCase, string>>;
  /** Longest wait for a change to land (power, BIOS after reboot). Default 30 s. */
  convergeTimeoutMs?: number;
  /** Interval between polls while waiting. Default 25 ms. */
  pollIntervalMs?: number;
  /** URL to insert as virtual media. Default an http URL on loopback (BMCs fetch lazily). */
  mediaUrl?: string;
}

/** Polls `read` until `done` accepts its value; fails with the last value after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  read: () => Promise<T>,
  done: (value: T) => boolean,
  opts: { timeoutMs: number; intervalMs: number },
): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  let last: T;
  for (;;) {
    last = await read();
    if (done(last)) return last;
    if (Date.now() >= deadline) throw new Error(`timed out after ${opts.timeoutMs} ms waiting for ${what}; last value ${JSON.stringify(last)}`);
    await new Promise((resolve) => setTimeout(resolve, opts.intervalMs));
  }
}

const MAC = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/;

export function runDriverContract(opts: DriverContractOptions): void {
  // Checked before any test is declared, so a reasonless skip fails loudly at collection.
  for (const [id, reason] of Object.entries(opts.skip ?? {})) {
    if (!(CONTRACT_CASES as readonly string[]).includes(id)) throw new Error(`runDriverContract(${opts.name}): unknown case "${id}" in skip`);
    if (typeof reason !== 'string' || reason.trim() === '') throw new Error(`runDriverContract(${opts.name}): skipping "${id}" needs a reason`);
  }
  const wait = { timeoutMs: opts.convergeTimeoutMs ?? 30_000, intervalMs: opts.pollIntervalMs ?? 25 };
  const cleanups: Array<() => Promise<void>> = [];

  async function setup(): Promise<{ driver: BmcDriver; target: BmcTarget }> {
    const made = await opts.newTarget();
    if (made.cleanup) cleanups.push(made.cleanup);
    return made;
  }

  async function powerTo(driver: BmcDriver, target: BmcTarget, state: PowerState): Promise<void> {
    await driver.power.set(target, { state, mode: 'hard' });
    await waitFor(`power ${state}`, () => driver.power.get(target), (s) => s === state, wait);
  }

  async function rebootAndWait(driver: BmcDriver, target: BmcTarget): Promise<void> {
    await driver.power.reboot(target, { mode: 'hard' });
    await waitFor('power on after reboot', () => driver.power.get(target), (s) => s === 'on', wait);
  }

  function contractCase(id: ContractCase, title: string, body: (ctx: TestContext) => Promise<void>): void {
    const reason = opts.skip?.[id];
    if (reason !== undefined) {
      it.skip(`${id}: ${title} (skipped: ${reason})`, () => {});
    } else {
      it(`${id}: ${title}`, body);
    }
  }

  describe(`BmcDriver contract: ${opts.name}`, () => {
    afterEach(async () => {
      while (cleanups.length > 0) await cleanups.pop()!();
    });

    contractCase('identify', 'identify returns the system id and its MAC addresses', async () => {
      const { driver, target } = await setup();
      expect(() => driver.validate(target)).not.toThrow();
      const identity = await driver.identify(target);
      expect(typeof identity.systemId).toBe('string');
      expect(identity.systemId.length).toBeGreaterThan(0);
      expect(identity.macAddresses?.length ?? 0).toBeGreaterThan(0);
      for (const mac of identity.macAddresses ?? []) expect(mac).toMatch(MAC);
      // Asking again names the same system: the conductor compares it across registrations.
      expect((await driver.identify(target)).systemId).toBe(identity.systemId);
    });

    contractCase('power-converges', 'power on and off converge when polled', async () => {
      const { driver, target } = await setup();
      await powerTo(driver, target, 'on');
      await powerTo(driver, target, 'off');
      await powerTo(driver, target, 'on');
      await powerTo(driver, target, 'off');
    });

    contractCase('power-idempotent', 'setting the same power state twice is harmless', async () => {
      const { driver, target } = await setup();
      await driver.power.set(target, { state: 'on', mode: 'hard' });
      await driver.power.set(target, { state: 'on', mode: 'hard' });
      await waitFor('power on', () => driver.power.get(target), (s) => s === 'on', wait);
      await driver.power.set(target, { state: 'on', mode: 'hard' });
      expect(await driver.power.get(target)).toBe('on');
      await driver.power.set(target, { state: 'off', mode: 'hard' });
      await driver.power.set(target, { state: 'off', mode: 'hard' });
      await waitFor('power off', () => driver.power.get(target), (s) => s === 'off', wait);
    });

    contractCase('reboot', 'reboot of a powered-off system ends powered on', async () => {
      const { driver, target } = await setup();
      await powerTo(driver, target, 'off');
      await rebootAndWait(driver, target);
      await rebootAndWait(driver, target);
      await powerTo(driver, target, 'off');
    });

    contractCase('boot-device', 'boot device round-trips, once and persistent', async () => {
      const { driver, target } = await setup();
      await driver.boot.setBootDevice(target, { device: 'pxe', persistent: false });
      expect(await driver.boot.getBootDevice(target)).toEqual({ device: 'pxe', persistent: false });
      await driver.boot.setBootDevice(target, { device: 'hdd', persistent: true });
      expect(await driver.boot.getBootDevice(target)).toEqual({ device: 'hdd', persistent: true });
      // Repeating is harmless.
      await driver.boot.setBootDevice(target, { device: 'hdd', persistent: true });
      expect(await driver.boot.getBootDevice(target)).toEqual({ device: 'hdd', persistent: true });
    });

    contractCase('boot-device-unsupported', 'an unsupported boot device is refused with BmcRefused', async () => {
      const { driver, target } = await setup();
      const bad = 'floppy' as unknown as BootDevice;
      const err = await driver.boot.setBootDevice(target, { device: bad, persistent: true }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BmcRefused);
      expect((err as BmcRefused).retryable).toBe(false);
    });

    contractCase('virtual-media', 'virtual media insert and eject are idempotent', async (ctx) => {
      const { driver, target } = await setup();
      if (!driver.media) return ctx.skip('the driver has no virtual media part');
      const url = opts.mediaUrl ?? 'http://127.0.0.1:9/ingot-agent.iso';
      await driver.media.insert(target, { url });
      await driver.media.insert(target, { url });
      await driver.media.eject(target);
      await driver.media.eject(target);
      const err = await driver.media.insert(target, { url: 'not a url' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BmcRefused);
    });

    contractCase('inventory', 'inventory reports CPUs, RAM, disks and NICs', async (ctx) => {
      const { driver, target } = await setup();
      if (!driver.inventory) return ctx.skip('the driver has no inventory part');
      const hw = await driver.inventory.get(target);
      expect(hw.cpu?.count ?? 0).toBeGreaterThan(0);
      expect(hw.ramMebibytes ?? 0).toBeGreaterThan(0);
      expect(hw.storage?.length ?? 0).toBeGreaterThan(0);
      for (const disk of hw.storage ?? []) expect(disk.sizeBytes).toBeGreaterThan(0);
      expect(hw.nics?.length ?? 0).toBeGreaterThan(0);
      for (const nic of hw.nics ?? []) expect(nic.mac.toLowerCase()).toMatch(MAC);
    });

    contractCase('secure-boot', 'secure boot toggles when the system is capable', async (ctx) => {
      const { driver, target } = await setup();
      if (!driver.secureBoot) return ctx.skip('the driver has no secure boot part');
      const before = await driver.secureBoot.get(target);
      if (!before.capable) {
        const err = await driver.secureBoot.set(target, { enabled: true }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(BmcRefused);
        return;
      }
      await driver.secureBoot.set(target, { enabled: !before.enabled });
      await waitFor('secure boot toggled', () => driver.secureBoot!.get(target), (s) => s.enabled === !before.enabled, wait);
      await driver.secureBoot.set(target, { enabled: !before.enabled });
      await driver.secureBoot.set(target, { enabled: before.enabled });
      await waitFor('secure boot restored', () => driver.secureBoot!.get(target), (s) => s.enabled === before.enabled, wait);
    });

    contractCase('bios', 'BIOS settings apply at the next reset, and reset to defaults', async (ctx) => {
      const { driver, target } = await setup();
      const bios = driver.bios;
      if (!bios) return ctx.skip('the driver has no BIOS part');
      const original = await bios.get(target);
      const toggles: Record<string, string> = { Enabled: 'Disabled', Disabled: 'Enabled' };
      const key = Object.keys(original).find((k) => typeof original[k] === 'string' && toggles[original[k] as string] !== undefined);
      if (key === undefined) return ctx.skip('no Enabled/Disabled BIOS attribute to toggle');
      const changed = toggles[original[key] as string]!;
      await bios.apply(target, { [key]: changed });
      // Staged, not yet in effect: BIOS settings apply during POST.
      expect((await bios.get(target))[key]).toBe(original[key]);
      await rebootAndWait(driver, target);
      await waitFor(`BIOS ${key}=${changed}`, () => bios.get(target), (s) => s[key] === changed, wait);
      await bios.resetToDefaults(target);
      await rebootAndWait(driver, target);
      await waitFor(`BIOS ${key} back to ${String(original[key])}`, () => bios.get(target), (s) => s[key] === original[key], wait);
      await powerTo(driver, target, 'off');
    });

    contractCase('firmware', 'firmware list is not empty', async (ctx) => {
      const { driver, target } = await setup();
      if (!driver.firmware) return ctx.skip('the driver has no firmware part');
      const list = await driver.firmware.list(target);
      expect(list.length).toBeGreaterThan(0);
      for (const c of list) {
        expect(c.id).toBeTruthy();
        expect(c.name).toBeTruthy();
        expect(typeof c.version).toBe('string');
      }
    });

    contractCase('wrong-password', 'a wrong password is a non-retryable BmcAuthenticationError', async () => {
      const { driver, target } = await setup();
      const wrong: BmcTarget = { ...target, credentials: { ...target.credentials, password: `${target.credentials.password}-wrong` } };
      const err = await driver.identify(wrong).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BmcAuthenticationError);
      expect((err as BmcAuthenticationError).retryable).toBe(false);
      // The message must not echo the password it was given.
      expect((err as Error).message).not.toContain(wrong.credentials.password);
      // The right credentials still work afterwards (no lockout from one failure).
      await expect(driver.identify(target)).resolves.toBeTruthy();
    });
  });
}
