// The Redfish driver's operations against the mini responder: vendor variations
// (AllowableValues, VirtualMedia location, missing actions) and idempotence.
import { afterEach, describe, expect, it } from 'vitest';
import { BmcRefused } from '../driver.js';
import { MiniRedfish, type MiniRedfishOptions } from '../../../test/support/mini-redfish.js';
import { targetFor } from '../../../test/support/redfish-target.js';
import { createRedfishDriver } from './redfish-driver.js';

const SYSTEM = '/redfish/v1/Systems/1';
const RESET = `${SYSTEM}/Actions/ComputerSystem.Reset`;
const CD = '/redfish/v1/Managers/bmc/VirtualMedia/Cd';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function setup(miniOpts: MiniRedfishOptions = {}) {
  const mini = await new MiniRedfish(miniOpts).start();
  const driver = createRedfishDriver({ retryBaseDelayMs: 1, taskPollIntervalMs: 1, sleep: async () => {} });
  cleanups.push(() => mini.close(), () => driver.close());
  const system = mini.resources.get(SYSTEM)!;
  const resetTypes = (types: string[]) => {
    ((system['Actions'] as Record<string, Record<string, unknown>>)['#ComputerSystem.Reset']!)['ResetType@Redfish.AllowableValues'] = types;
  };
  const resetsSent = () => mini.log.filter((r) => r.method === 'POST' && r.path === RESET).map((r) => (r.body as { ResetType: string }).ResetType);
  return { mini, driver, target: targetFor(mini), system, resetTypes, resetsSent };
}

describe('redfish driver: validate and identify', () => {
  it('identifies the system with lower-case MACs and UUID', async () => {
    const { driver, target } = await setup();
    expect(await driver.identify(target)).toEqual({
      systemId: SYSTEM,
      uuid: '4c4c4544-0000-1111-2222-333344445555',
      manufacturer: 'Mini',
      model: 'M1',
      serialNumber: 'SN1',
      macAddresses: ['52:54:00:00:00:01', '52:54:00:00:00:02'],
    });
  });

  it('validate refuses non-Redfish addresses and empty credentials', async () => {
    const { driver, target } = await setup();
    expect(() => driver.validate(target)).not.toThrow();
    expect(() => driver.validate({ ...target, credentials: { username: 'admin', password: '' } })).toThrow(/spec.bmc.credentialsName/);
    expect(() => driver.validate({ ...target, address: { ...target.address, driver: 'ipmi' } })).toThrow(BmcRefused);
  });
});

describe('redfish driver: power', () => {
  it('turns on and off with the preferred reset types, and does nothing when already there', async () => {
    const { driver, target, resetsSent } = await setup();
    await driver.power.set(target, { state: 'off', mode: 'soft' }); // already off
    expect(resetsSent()).toEqual([]);
    await driver.power.set(target, { state: 'on', mode: 'hard' });
    expect(await driver.power.get(target)).toBe('on');
    await driver.power.set(target, { state: 'on', mode: 'hard' });
    await driver.power.set(target, { state: 'off', mode: 'soft' });
    await driver.power.set(target, { state: 'on', mode: 'hard' });
    await driver.power.set(target, { state: 'off', mode: 'hard' });
    expect(resetsSent()).toEqual(['On', 'GracefulShutdown', 'On', 'ForceOff']);
  });

  it('uses ForceOn when On is not allowed, and ForceOff when GracefulShutdown is not', async () => {
    const { driver, target, resetTypes, resetsSent } = await setup();
    resetTypes(['ForceOn', 'ForceOff', 'ForceRestart']);
    await driver.power.set(target, { state: 'on', mode: 'soft' });
    await driver.power.set(target, { state: 'off', mode: 'soft' });
    expect(resetsSent()).toEqual(['ForceOn', 'ForceOff']);
  });

  it('reads allowable values from an ActionInfo resource', async () => {
    const { mini, driver, target, system, resetsSent } = await setup();
    system['Actions'] = { '#ComputerSystem.Reset': { target: RESET, '@Redfish.ActionInfo': `${SYSTEM}/ResetActionInfo` } };
    mini.resources.set(`${SYSTEM}/ResetActionInfo`, { Parameters: [{ Name: 'ResetType', AllowableValues: ['PowerCycle', 'ForceOff'] }] });
    // The mini BMC enforces the allowed list from the action itself; mirror it there.
    (system['Actions'] as Record<string, Record<string, unknown>>)['#ComputerSystem.Reset']!['ResetType@Redfish.AllowableValues'] = undefined;
    mini.hooks.push((r) => (r.method === 'POST' && r.path === RESET && !['PowerCycle', 'ForceOff'].includes((r.body as { ResetType: string }).ResetType) ? { status: 400 } : undefined));
    mini.hooks.push((r) => (r.method === 'POST' && r.path === RESET ? ((system['PowerState'] = 'On'), { status: 204 }) : undefined));
    await driver.power.set(target, { state: 'on', mode: 'hard' });
    expect(resetsSent()).toEqual(['PowerCycle']);
  });

  it('refuses when no allowed reset type can do the job', async () => {
    const { driver, target, system, resetTypes } = await setup();
    system['PowerState'] = 'On';
    resetTypes(['On', 'ForceOn']);
    const err = await driver.power.set(target, { state: 'off', mode: 'hard' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BmcRefused);
    expect((err as Error).message).toContain('ForceOff');
  });

  it('reboot powers on a system that is off, and restarts one that is on', async () => {
    const { driver, target, resetsSent } = await setup();
    await driver.power.reboot(target, { mode: 'soft' });
    await driver.power.reboot(target, { mode: 'soft' });
    await driver.power.reboot(target, { mode: 'hard' });
    expect(resetsSent()).toEqual(['On', 'GracefulRestart', 'ForceRestart']);
  });

  it('accepts a refusal to turn on when the system is on by the time it is checked', async () => {
    const { mini, driver, target, system } = await setup();
    mini.failNext('POST', RESET, 1, { status: 409, body: { error: { message: 'already on' } } });
    mini.hooks.unshift((r) => (r.method === 'POST' && r.path === RESET ? ((system['PowerState'] = 'On'), undefined) : undefined));
    await driver.power.set(target, { state: 'on', mode: 'hard' });
    expect(await driver.power.get(target)).toBe('on');
  });
});

describe('redfish driver: boot device', () => {
  it('sets once and persistent overrides, with the boot mode, and skips a PATCH that changes nothing', async () => {
    const { mini, driver, target, system } = await setup();
    await driver.boot.setBootDevice(target, { device: 'cd', persistent: false });
    expect(await driver.boot.getBootDevice(target)).toEqual({ device: 'cd', persistent: false });
    await driver.boot.setBootDevice(target, { device: 'uefi-http', persistent: true, mode: 'legacy' });
    expect(system['Boot']).toMatchObject({ BootSourceOverrideTarget: 'UefiHttp', BootSourceOverrideEnabled: 'Continuous', BootSourceOverrideMode: 'Legacy' });
    const patches = mini.count('PATCH', SYSTEM);
    await driver.boot.setBootDevice(target, { device: 'uefi-http', persistent: true, mode: 'legacy' });
    expect(mini.count('PATCH', SYSTEM)).toBe(patches);
  });

  it('refuses a device the BMC does not allow', async () => {
    const { driver, target, system } = await setup();
    (system['Boot'] as Record<string, unknown>)['BootSourceOverrideTarget@Redfish.AllowableValues'] = ['Pxe', 'Hdd'];
    const err = await driver.boot.setBootDevice(target, { device: 'uefi-http', persistent: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BmcRefused);
    expect((err as Error).message).toContain('UefiHttp');
  });

  it('reports none when the override is disabled', async () => {
    const { driver, target } = await setup();
    expect(await driver.boot.getBootDevice(target)).toEqual({ device: 'none', persistent: false });
  });
});

describe('redfish driver: virtual media', () => {
  it('inserts into the CD slot (not the floppy), idempotently, and ejects', async () => {
    const { mini, driver, target } = await setup();
    const cd = mini.resources.get(CD)!;
    await driver.media!.insert(target, { url: 'http://127.0.0.1:9/a.iso' });
    await driver.media!.insert(target, { url: 'http://127.0.0.1:9/a.iso' });
    expect(cd).toMatchObject({ Image: 'http://127.0.0.1:9/a.iso', Inserted: true });
    expect(mini.count('POST', `${CD}/Actions/VirtualMedia.InsertMedia`)).toBe(1);
    await driver.media!.insert(target, { url: 'http://127.0.0.1:9/b.iso' }); // ejects a first
    expect(cd).toMatchObject({ Image: 'http://127.0.0.1:9/b.iso', Inserted: true });
    await driver.media!.eject(target);
    await driver.media!.eject(target);
    expect(cd).toMatchObject({ Image: null, Inserted: false });
    expect(mini.count('POST', `${CD}/Actions/VirtualMedia.EjectMedia`)).toBe(2);
    expect(mini.count('POST', '/redfish/v1/Managers/bmc/VirtualMedia/Floppy*')).toBe(0);
  });

  it('finds VirtualMedia on the System and falls back to PATCH without actions', async () => {
    const { mini, driver, target, system } = await setup();
    const slot = `${SYSTEM}/VirtualMedia/1`;
    system['VirtualMedia'] = { '@odata.id': `${SYSTEM}/VirtualMedia` };
    system['Links'] = {};
    mini.resources.set(`${SYSTEM}/VirtualMedia`, { Members: [{ '@odata.id': slot }] });
    mini.resources.set(slot, { '@odata.id': slot, MediaTypes: ['DVD'], Inserted: false, Image: '' });
    await driver.media!.insert(target, { url: 'https://images.example/agent.iso' });
    expect(mini.resources.get(slot)).toMatchObject({ Image: 'https://images.example/agent.iso', Inserted: true });
    await driver.media!.eject(target);
    expect(mini.resources.get(slot)).toMatchObject({ Image: null, Inserted: false });
    expect(mini.count('PATCH', slot)).toBe(2);
  });

  it('sends TransferProtocolType only to BMCs that list it', async () => {
    const { mini, driver, target } = await setup();
    const insert = `${CD}/Actions/VirtualMedia.InsertMedia`;
    const actions = mini.resources.get(CD)!['Actions'] as Record<string, Record<string, unknown>>;
    await driver.media!.insert(target, { url: 'http://127.0.0.1:9/a.iso' });
    expect(mini.log.find((r) => r.path === insert)!.body).toEqual({ Image: 'http://127.0.0.1:9/a.iso', Inserted: true, WriteProtected: true });
    await driver.media!.eject(target);
    actions['#VirtualMedia.InsertMedia']!['TransferProtocolType@Redfish.AllowableValues'] = ['HTTPS', 'NFS'];
    await driver.media!.insert(target, { url: 'https://127.0.0.1:9/b.iso' });
    expect(mini.log.filter((r) => r.path === insert).at(-1)!.body).toMatchObject({ TransferProtocolType: 'HTTPS' });
    await driver.media!.eject(target);
    await expect(driver.media!.insert(target, { url: 'http://127.0.0.1:9/c.iso' })).rejects.toThrow(/over HTTP /);
  });

  it('refuses a non-http URL and a BMC without a CD slot', async () => {
    const { mini, driver, target } = await setup();
    await expect(driver.media!.insert(target, { url: 'file:///etc/passwd' })).rejects.toBeInstanceOf(BmcRefused);
    mini.resources.get(CD)!['MediaTypes'] = ['USBStick'];
    await expect(driver.media!.insert(target, { url: 'http://127.0.0.1:9/a.iso' })).rejects.toThrow(/no virtual CD\/DVD/);
  });
});

describe('redfish driver: inventory, secure boot, BIOS, firmware', () => {
  it('reads the hardware inventory', async () => {
    const { driver, target } = await setup();
    const hw = await driver.inventory!.get(target);
    expect(hw).toEqual({
      systemVendor: { manufacturer: 'Mini', productName: 'M1', serialNumber: 'SN1' },
      cpu: { count: 2, model: 'Mini CPU', cores: 16, threads: 32, speedMHz: 3000, arch: 'x86_64' },
      ramMebibytes: 16384,
      storage: [{ name: 'disk0', sizeBytes: 500107862016, rotational: true, serialNumber: 'D0', model: 'Spinny', wwn: '0x5000c500a1b2c3d4', type: 'HDD' }],
      nics: [
        { name: 'nic0', mac: '52:54:00:00:00:01', speedGbps: 10, linkUp: true },
        { name: 'nic1', mac: '52:54:00:00:00:02', speedGbps: 10, linkUp: true },
      ],
      firmware: { bios: { version: '1.2.3' }, bmc: { version: '9.9' } },
      secureBootCapable: true,
    });
  });

  it('falls back to SimpleStorage and tolerates missing optional parts', async () => {
    const { mini, driver, target, system } = await setup();
    delete system['Storage'];
    delete system['Processors'];
    delete system['SecureBoot'];
    system['SimpleStorage'] = { '@odata.id': `${SYSTEM}/SimpleStorage` };
    mini.resources.set(`${SYSTEM}/SimpleStorage`, { Members: [{ '@odata.id': `${SYSTEM}/SimpleStorage/1` }] });
    mini.resources.set(`${SYSTEM}/SimpleStorage/1`, { Devices: [{ Name: 'vda', CapacityBytes: 1073741824 }] });
    const hw = await driver.inventory!.get(target);
    expect(hw.storage).toEqual([{ name: 'vda', sizeBytes: 1073741824 }]);
    expect(hw.cpu).toEqual({ count: 2, model: 'Mini CPU' });
    expect(hw.secureBootCapable).toBe(false);
  });

  it('reads RAM from the Memory collection, GPUs from Processors and the BIOS version from the firmware inventory when the system does not say', async () => {
    const { mini, driver, target, system } = await setup();
    delete system['MemorySummary'];
    delete system['BiosVersion'];
    system['Memory'] = { '@odata.id': `${SYSTEM}/Memory` };
    mini.resources.set(`${SYSTEM}/Memory`, { Members: [{ '@odata.id': `${SYSTEM}/Memory/0` }, { '@odata.id': `${SYSTEM}/Memory/1` }] });
    mini.resources.set(`${SYSTEM}/Memory/0`, { Id: '0', CapacityMiB: 16384 });
    mini.resources.set(`${SYSTEM}/Memory/1`, { Id: '1', CapacityMiB: 8192 });
    mini.resources.get(`${SYSTEM}/Processors`)!['Members'] = [{ '@odata.id': `${SYSTEM}/Processors/0` }, { '@odata.id': `${SYSTEM}/Processors/gpu` }];
    mini.resources.set(`${SYSTEM}/Processors/gpu`, { Id: 'gpu', ProcessorType: 'GPU', Model: 'Mini GPU', Manufacturer: 'MiniCorp' });
    const hw = await driver.inventory!.get(target);
    expect(hw.ramMebibytes).toBe(24576);
    expect(hw.gpus).toEqual([{ model: 'Mini GPU', vendor: 'MiniCorp' }]);
    expect(hw.firmware?.bios?.version).toBe('1.2.3');
  });

  it('sets secure boot and reports the current boot separately', async () => {
    const { mini, driver, target } = await setup();
    expect(await driver.secureBoot!.get(target)).toEqual({ enabled: false, capable: true, currentBoot: false });
    await driver.secureBoot!.set(target, { enabled: true });
    await driver.secureBoot!.set(target, { enabled: true });
    expect(mini.count('PATCH', `${SYSTEM}/SecureBoot`)).toBe(1);
    expect(await driver.secureBoot!.get(target)).toEqual({ enabled: true, capable: true, currentBoot: false });
  });

  it('refuses to enable secure boot on a BMC without it', async () => {
    const { driver, target, system } = await setup();
    delete system['SecureBoot'];
    expect(await driver.secureBoot!.get(target)).toEqual({ enabled: false, capable: false });
    await expect(driver.secureBoot!.set(target, { enabled: true })).rejects.toBeInstanceOf(BmcRefused);
    await driver.secureBoot!.set(target, { enabled: false });
  });

  it('stages BIOS changes in the settings object, skips unchanged ones, and resets to defaults', async () => {
    const { mini, driver, target } = await setup();
    expect(await driver.bios!.get(target)).toEqual({ BootMode: 'Uefi', ProcTurboMode: 'Enabled' });
    await driver.bios!.apply(target, { ProcTurboMode: 'Disabled', BootMode: 'Uefi' });
    expect(mini.resources.get(`${SYSTEM}/Bios/Settings`)!['Attributes']).toEqual({ ProcTurboMode: 'Disabled' });
    await driver.bios!.apply(target, { ProcTurboMode: 'Disabled' });
    expect(mini.count('PATCH', `${SYSTEM}/Bios/Settings`)).toBe(1);
    await expect(driver.bios!.apply(target, { NoSuchKnob: 1 })).rejects.toThrow(/NoSuchKnob/);
    await driver.bios!.resetToDefaults(target);
    expect(mini.count('POST', `${SYSTEM}/Bios/Actions/Bios.ResetBios`)).toBe(1);
  });

  it('lists firmware components', async () => {
    const { driver, target } = await setup();
    expect(await driver.firmware!.list(target)).toEqual([{ id: 'BIOS', name: 'System BIOS', version: '1.2.3' }]);
  });
});
