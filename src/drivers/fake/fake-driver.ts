// The fake BMC driver: a BmcDriver over FakeFleet's simulated hardware, for fake://NAME hosts.
// It validates its input as a real BMC does (an unknown boot device or a malformed media URL
// is BmcRefused, not silently accepted), checks credentials on every call (like Redfish basic
// auth per request), and returns as soon as it has asked: changes land later and are polled.
import { setTimeout as sleep } from 'node:timers/promises';
import {
  BmcRefused,
  type BmcDriver,
  type BmcTarget,
  type BootDevice,
  type PowerState,
  type SystemIdentity,
} from '../driver.js';
import type { FakeFleet, FakeOp } from './fake-fleet.js';
import { FAKE_BIOS_DEFAULTS, FAKE_BIOS_ENUMS } from './fake-inventory.js';

const BOOT_DEVICES: readonly BootDevice[] = ['pxe', 'cd', 'hdd', 'uefi-http'];
const MAX_MEDIA_URL = 4096;
const MAX_BIOS_SETTINGS = 256;

/** The fleet key of a target: NAME in fake://NAME (not the Ingot host name, which may differ). */
export function fakeNameOf(target: Pick<BmcTarget, 'address' | 'hostName'>): string {
  if (target.address.driver !== 'fake') {
    throw new BmcRefused(`host ${target.hostName}: the fake driver cannot drive ${target.address.scheme}:// addresses`);
  }
  return target.address.name;
}

export function createFakeDriver(fleet: FakeFleet): BmcDriver {
  /** Every call: latency, then the fleet's gate (scripted failures, flaky network, credentials). */
  async function call(target: BmcTarget, op: FakeOp): Promise<string> {
    const name = fakeNameOf(target);
    const latency = fleet.callLatencyMs(name);
    if (latency > 0) await sleep(latency);
    fleet.beginCall(name, op, target.credentials);
    return name;
  }

  function checkPowerAllowed(name: string): void {
    if (fleet.activeScenario(name) === 'fail-power') {
      throw new BmcRefused(`fake host ${name}: the BMC refused the power request (scenario fail-power); check the host's power supply`);
    }
  }

  function checkPowerState(value: unknown): asserts value is PowerState {
    if (value !== 'on' && value !== 'off') throw new BmcRefused(`power state must be "on" or "off", not ${JSON.stringify(value)}`);
  }

  function checkMode(value: unknown): void {
    if (value !== 'soft' && value !== 'hard') throw new BmcRefused(`power mode must be "soft" or "hard", not ${JSON.stringify(value)}`);
  }

  return {
    name: 'fake',

    validate(target) {
      fakeNameOf(target);
    },

    async identify(target): Promise<SystemIdentity> {
      const name = await call(target, 'identify');
      if (fleet.activeScenario(name) === 'fail-register') {
        throw new BmcRefused(`fake host ${name}: the BMC refused registration (scenario fail-register); no such system at this address`);
      }
      const m = fleet.machine(name);
      return {
        systemId: name,
        uuid: m.uuid,
        manufacturer: m.inventory.systemVendor?.manufacturer,
        model: m.inventory.systemVendor?.productName,
        serialNumber: m.inventory.systemVendor?.serialNumber,
        macAddresses: (m.inventory.nics ?? []).map((n) => n.mac.toLowerCase()),
      };
    },

    power: {
      async get(target) {
        const name = await call(target, 'power');
        return fleet.getPower(name);
      },
      async set(target, request) {
        const name = await call(target, 'power');
        checkPowerState(request?.state);
        checkMode(request.mode);
        checkPowerAllowed(name);
        fleet.setPower(name, request.state);
      },
      async reboot(target, request) {
        const name = await call(target, 'power');
        checkMode(request?.mode);
        checkPowerAllowed(name);
        fleet.reboot(name);
      },
    },

    boot: {
      async setBootDevice(target, request) {
        const name = await call(target, 'boot');
        if (!BOOT_DEVICES.includes(request?.device)) {
          throw new BmcRefused(`fake host ${name}: boot device ${JSON.stringify(request?.device)} is not supported; use one of ${BOOT_DEVICES.join(', ')}`);
        }
        if (typeof request.persistent !== 'boolean') throw new BmcRefused(`fake host ${name}: persistent must be true or false`);
        if (request.mode !== undefined && request.mode !== 'UEFI' && request.mode !== 'legacy') {
          throw new BmcRefused(`fake host ${name}: boot mode ${JSON.stringify(request.mode)} is not supported; use UEFI or legacy`);
        }
        fleet.setBootDevice(name, request);
      },
      async getBootDevice(target) {
        const name = await call(target, 'boot');
        return fleet.getBootDevice(name);
      },
    },

    media: {
      async insert(target, request) {
        const name = await call(target, 'media');
        const url = request?.url;
        if (typeof url !== 'string' || url.length === 0 || url.length > MAX_MEDIA_URL || !/^https?:\/\/[^\s]+$/.test(url)) {
          throw new BmcRefused(`fake host ${name}: virtual media needs an http(s) URL of at most ${MAX_MEDIA_URL} characters`);
        }
        fleet.insertMedia(name, url);
      },
      async eject(target) {
        const name = await call(target, 'media');
        fleet.ejectMedia(name);
      },
    },

    inventory: {
      async get(target) {
        const name = await call(target, 'inventory');
        return fleet.machine(name).inventory;
      },
    },

    secureBoot: {
      async get(target) {
        const name = await call(target, 'secureBoot');
        return fleet.getSecureBoot(name);
      },
      async set(target, request) {
        const name = await call(target, 'secureBoot');
        if (typeof request?.enabled !== 'boolean') throw new BmcRefused(`fake host ${name}: secure boot "enabled" must be true or false`);
        fleet.setSecureBoot(name, request.enabled);
      },
    },

    bios: {
      async get(target) {
        const name = await call(target, 'bios');
        return fleet.getBios(name);
      },
      async apply(target, settings) {
        const name = await call(target, 'bios');
        const entries = Object.entries(settings ?? {});
        if (entries.length > MAX_BIOS_SETTINGS) throw new BmcRefused(`fake host ${name}: at most ${MAX_BIOS_SETTINGS} BIOS settings per request`);
        // Redfish BMCs reject the whole PATCH when one attribute is unknown or mistyped
        // (Redfish spec DSP0266, 400 with PropertyValueNotInList / PropertyUnknown).
        for (const [key, value] of entries) {
          const current = FAKE_BIOS_DEFAULTS[key];
          if (current === undefined) {
            throw new BmcRefused(`fake host ${name}: unknown BIOS attribute "${key.slice(0, 80)}"; known: ${Object.keys(FAKE_BIOS_DEFAULTS).join(', ')}`);
          }
          if (typeof value !== typeof current) throw new BmcRefused(`fake host ${name}: BIOS attribute ${key} takes a ${typeof current}, not a ${typeof value}`);
          const allowed = FAKE_BIOS_ENUMS[key];
          if (allowed && !allowed.includes(value as string)) {
            throw new BmcRefused(`fake host ${name}: BIOS attribute ${key} must be one of ${allowed.join(', ')}`);
          }
        }
        fleet.stageBios(name, Object.fromEntries(entries));
      },
      async resetToDefaults(target) {
        const name = await call(target, 'bios');
        fleet.stageBiosDefaults(name);
      },
    },

    firmware: {
      async list(target) {
        const name = await call(target, 'firmware');
        return fleet.machine(name).firmware;
      },
    },
  };
}
