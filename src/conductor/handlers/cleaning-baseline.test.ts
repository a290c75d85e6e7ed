// Cleaning's BMC half: after the agent erased the disks, BIOS settings go back to the
// baseline and firmware is checked against the approved inventory; a mismatch keeps the host
// out of available (an error of type deprovisioning).
import { describe, expect, it } from 'vitest';
import { unapprovedFirmware } from './firmware-check.js';
import { harness, host } from './test-kit.js';

describe('cleaning: BIOS baseline', () => {
  it('stages the BIOS defaults once, then finishes cleaning', async () => {
    const h = harness();
    const { outcome, host: after } = await h.drive(host('deprovisioning').provisionedWith());
    expect(outcome).toMatchObject({ kind: 'advance', event: 'deprovisioned' });
    expect(after.status.stepState?.biosReset).toBe(true);
    const m = h.fleet.machine('node-1');
    expect(m.bios.pending).toBeDefined();
  });

  it('can be turned off', async () => {
    const h = harness({ config: { resetBiosOnClean: false } });
    const { outcome } = await h.drive(host('deprovisioning').provisionedWith());
    expect(outcome).toMatchObject({ kind: 'advance', event: 'deprovisioned' });
    expect(h.fleet.machine('node-1').bios.pending).toBeUndefined();
  });
});

describe('cleaning: approved firmware', () => {
  it('passes when every listed component runs an approved version', async () => {
    const probe = harness();
    const versions = Object.fromEntries(probe.fleet.machine('node-1').firmware.map((c) => [c.id, [c.version]]));
    const h = harness({ config: { approvedFirmware: versions } });
    const { outcome } = await h.drive(host('deprovisioning').provisionedWith());
    expect(outcome).toMatchObject({ kind: 'advance', event: 'deprovisioned' });
  });

  it('fails cleaning, naming the component and the approved versions, when one is not approved', async () => {
    const h = harness({ config: { approvedFirmware: { bios: ['9.9.9'] } } });
    const actual = h.fleet.machine('node-1').firmware.find((c) => c.id === 'bios')!.version;
    const { outcome } = await h.drive(host('deprovisioning').provisionedWith());
    expect(outcome).toMatchObject({ kind: 'failed', errorType: 'deprovisioning' });
    expect((outcome as { message: string }).message).toContain(`System BIOS (bios) runs ${actual}, approved: 9.9.9`);
  });

  it('matches components by id or by name and ignores unlisted ones', () => {
    const components = [
      { id: 'bios', name: 'System BIOS', version: '1.0' },
      { id: 'bmc', name: 'BMC firmware', version: '2.0' },
    ];
    expect(unapprovedFirmware(components, { 'System BIOS': ['1.0'] })).toEqual([]);
    expect(unapprovedFirmware(components, { bmc: ['2.1', '2.2'] })).toEqual(['BMC firmware (bmc) runs 2.0, approved: 2.1, 2.2']);
    expect(unapprovedFirmware(components, {})).toEqual([]);
  });
});
