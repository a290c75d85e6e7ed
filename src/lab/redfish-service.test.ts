import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LabHarness } from './lab-test-harness.js';

describe('lab Redfish service', () => {
  let h: LabHarness;
  let S0: string;
  let S1: string;
  beforeAll(async () => {
    h = await LabHarness.start({ hosts: 3 });
    S0 = `/redfish/v1/Systems/${h.sys(0)}`;
    S1 = `/redfish/v1/Systems/${h.sys(1)}`;
  });
  afterAll(async () => {
    await h.stop();
  });

  it('serves the version document, service root, $metadata and odata without credentials', async () => {
    const v = await h.request('GET', '/redfish');
    expect(v.body).toEqual({ v1: '/redfish/v1/' });
    const root = await h.request('GET', '/redfish/v1/');
    expect(root.status).toBe(200);
    expect(root.headers['odata-version']).toBe('4.0');
    expect(root.body['@odata.id']).toBe('/redfish/v1/');
    expect(root.body.Links.Sessions['@odata.id']).toBe('/redfish/v1/SessionService/Sessions');
    const noSlash = await h.request('GET', '/redfish/v1');
    expect(noSlash.status).toBe(200);
    const md = await h.request('GET', '/redfish/v1/$metadata');
    expect(md.status).toBe(200);
    expect(md.headers['content-type']).toMatch(/application\/xml/);
    expect(md.text).toContain('<edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/ComputerSystem_v1.xml">');
    expect(md.text).toContain('Namespace="ComputerSystem.v1_27_0"');
    const od = await h.request('GET', '/redfish/v1/odata');
    expect(od.body.value.map((x: { name: string }) => x.name)).toContain('Systems');
  });

  it('refuses everything else without credentials, with bad ones, and with another system’s', async () => {
    for (const path of ['/redfish/v1/Systems', S0, `${S0}/Bios`, `/redfish/v1/Managers/${h.sys(0)}`, '/redfish/v1/SessionService', '/redfish/v1/nope']) {
      const r = await h.request('GET', path);
      expect(r.status, path).toBe(401);
      expect(r.headers['www-authenticate']).toMatch(/^Basic realm="/);
      expect(r.body.error['@Message.ExtendedInfo'][0].MessageId).toMatch(/^Base\.1\.\d+\.NoValidSession$/);
    }
    expect((await h.request('GET', S0, { auth: { username: 'admin', password: 'wrong-password' } })).status).toBe(401);
    expect((await h.as(1, 'GET', S0)).status).toBe(401);
    expect((await h.as(1, 'GET', `/redfish/v1/Managers/${h.sys(0)}/VirtualMedia/Cd`)).status).toBe(401);
    expect((await h.as(0, 'GET', S0)).status).toBe(200);
  });

  it('shows only the caller’s system in service-wide collections', async () => {
    const r = await h.as(1, 'GET', '/redfish/v1/Systems');
    expect(r.body['Members@odata.count']).toBe(1);
    expect(r.body.Members[0]['@odata.id']).toBe(S1);
    const m = await h.as(1, 'GET', '/redfish/v1/Managers');
    expect(m.body.Members).toEqual([{ '@odata.id': `/redfish/v1/Managers/${h.sys(1)}` }]);
  });

  it('answers 404 for unknown resources, 405 with Allow for wrong methods, 501 for $ queries', async () => {
    const nf = await h.as(0, 'GET', '/redfish/v1/Systems/node-999');
    expect(nf.status).toBe(404);
    expect(nf.body.error.code).toMatch(/ResourceMissingAtURI$/);
    expect((await h.as(0, 'GET', `${S0}/Processors/CPU99`)).status).toBe(404);
    const del = await h.as(0, 'DELETE', S0);
    expect(del.status).toBe(405);
    expect(del.headers.allow).toBe('GET, PATCH, HEAD');
    expect((await h.as(0, 'GET', `${S0}?$expand=.`)).status).toBe(501);
  });

  it('logs in with a session bound to its system and logs out', async () => {
    const login = await h.request('POST', '/redfish/v1/SessionService/Sessions', { body: { UserName: 'admin', Password: h.creds(0).password } });
    expect(login.status).toBe(201);
    const token = login.headers['x-auth-token'] as string;
    const location = login.headers.location as string;
    expect(token.length).toBeGreaterThan(20);
    expect(location).toMatch(/^\/redfish\/v1\/SessionService\/Sessions\/[0-9a-f]+$/);
    expect((await h.request('GET', S0, { token })).status).toBe(200);
    expect((await h.request('GET', S1, { token })).status).toBe(401);
    const list = await h.request('GET', '/redfish/v1/SessionService/Sessions', { token });
    expect(list.body.Members).toContainEqual({ '@odata.id': location });
    const bad = await h.request('POST', '/redfish/v1/SessionService/Sessions', { body: { UserName: 'admin', Password: 'nope-nope' } });
    expect(bad.status).toBe(401);
    expect((await h.request('DELETE', location, { token })).status).toBe(204);
    expect((await h.request('GET', S0, { token })).status).toBe(401);
  });

  it('moves power through PoweringOn to On, with a task monitor, and back to Off', async () => {
    const sys = h.sys(2);
    const r = await h.as(2, 'POST', `/redfish/v1/Systems/${sys}/Actions/ComputerSystem.Reset`, { body: { ResetType: 'On' } });
    expect(r.status).toBe(202);
    const monitor = r.headers.location as string;
    expect(monitor).toMatch(/TaskMonitors\//);
    expect(r.body.TaskState).toBe('Running');
    const seen = new Set<string>();
    await h.until('On', async () => {
      const s = await h.powerState(2);
      seen.add(s);
      return s === 'On' ? true : undefined;
    });
    expect([...seen].every((s) => s === 'PoweringOn' || s === 'On')).toBe(true);
    const done = await h.as(2, 'GET', monitor);
    expect(done.status).toBe(200);
    const task = await h.as(2, 'GET', `/redfish/v1/TaskService/Tasks/${r.body.Id}`);
    expect(task.body.TaskState).toBe('Completed');
    expect(task.body.PercentComplete).toBe(100);
    expect((await h.as(0, 'GET', monitor)).status).toBe(404);
    const again = await h.as(2, 'POST', `/redfish/v1/Systems/${sys}/Actions/ComputerSystem.Reset`, { body: { ResetType: 'On' } });
    expect(again.status).toBe(204);
    const off = await h.as(2, 'POST', `/redfish/v1/Systems/${sys}/Actions/ComputerSystem.Reset`, { body: { ResetType: 'ForceOff' } });
    expect(off.status).toBe(202);
    await h.waitPower(2, 'Off');
  });

  it('implements every advertised ResetType and rejects others', async () => {
    const sys = await h.as(0, 'GET', S0);
    const allowed: string[] = sys.body.Actions['#ComputerSystem.Reset']['ResetType@Redfish.AllowableValues'];
    expect(allowed).toEqual(['On', 'ForceOff', 'GracefulShutdown', 'GracefulRestart', 'ForceRestart', 'PowerCycle', 'Nmi']);
    const target = sys.body.Actions['#ComputerSystem.Reset'].target as string;
    const reset = (t: unknown) => h.as(0, 'POST', target, { body: { ResetType: t } });
    expect((await reset('Nmi')).status).toBe(409); // off
    const bootsBefore = (await h.admin('GET', `/systems/${h.sys(0)}/boot-log`)).body.records.length;
    for (const t of ['GracefulRestart', 'ForceRestart', 'PowerCycle']) {
      const r = await reset(t);
      expect(r.status, t).toBe(202);
      await h.waitPower(0, 'On');
    }
    const log = (await h.admin('GET', `/systems/${h.sys(0)}/boot-log`)).body.records;
    expect(log.length - bootsBefore).toBe(3);
    expect((await reset('Nmi')).status).toBe(204);
    expect((await reset('GracefulShutdown')).status).toBe(202);
    await h.waitPower(0, 'Off');
    const bad = await reset('Explode');
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toMatch(/ActionParameterValueNotInList$/);
    const missing = await h.as(0, 'POST', target, { body: {} });
    expect(missing.body.error.code).toMatch(/ActionParameterMissing$/);
    const unknown = await h.as(0, 'POST', target, { body: { ResetType: 'On', Force: true } });
    expect(unknown.status).toBe(400);
    expect(JSON.stringify(unknown.body)).toContain('ActionParameterUnknown');
    expect(await h.powerState(0)).toBe('Off');
  });

  it('consumes a Once boot override at the next boot and keeps a Continuous one', async () => {
    const sys = h.sys(1);
    const patch = await h.as(1, 'PATCH', S1, { body: { Boot: { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Once', BootSourceOverrideMode: 'UEFI' } } });
    expect(patch.status).toBe(200);
    expect(patch.body.Boot.BootSourceOverrideEnabled).toBe('Once');
    await h.as(1, 'POST', `${S1}/Actions/ComputerSystem.Reset`, { body: { ResetType: 'On' } });
    await h.waitPower(1, 'On');
    const after = await h.as(1, 'GET', S1);
    expect(after.body.Boot.BootSourceOverrideEnabled).toBe('Disabled');
    await h.as(1, 'POST', `${S1}/Actions/ComputerSystem.Reset`, { body: { ResetType: 'ForceRestart' } });
    await h.waitPower(1, 'On');
    let log = (await h.admin('GET', `/systems/${sys}/boot-log`)).body.records;
    expect(log.slice(-2).map((r: { source: string }) => r.source)).toEqual(['pxe', 'hdd']);
    expect(log.at(-2).mac).toBe(h.lab.systems[1]!.bootMac);

    // Continuous, from virtual media: every boot is from the CD.
    const ins = await h.as(1, 'POST', `/redfish/v1/Managers/${sys}/VirtualMedia/Cd/Actions/VirtualMedia.InsertMedia`, { body: { Image: 'http://images.example/agent.iso', Inserted: true } });
    expect(ins.status).toBe(204);
    await h.as(1, 'PATCH', S1, { body: { Boot: { BootSourceOverrideTarget: 'Cd', BootSourceOverrideEnabled: 'Continuous' } } });
    for (let i = 0; i < 2; i++) {
      await h.as(1, 'POST', `${S1}/Actions/ComputerSystem.Reset`, { body: { ResetType: 'PowerCycle' } });
      await h.waitPower(1, 'On');
    }
    log = (await h.admin('GET', `/systems/${sys}/boot-log`)).body.records;
    expect(log.slice(-2).map((r: { source: string; mediaUrl: string }) => [r.source, r.mediaUrl])).toEqual([
      ['cd', 'http://images.example/agent.iso'],
      ['cd', 'http://images.example/agent.iso'],
    ]);
    expect((await h.as(1, 'GET', S1)).body.Boot.BootSourceOverrideEnabled).toBe('Continuous');
    await h.as(1, 'POST', `${S1}/Actions/ComputerSystem.Reset`, { body: { ResetType: 'ForceOff' } });
    await h.waitPower(1, 'Off');
  });

  it('inserts and ejects virtual media by action and by PATCH', async () => {
    const cd = `/redfish/v1/Managers/${h.sys(0)}/VirtualMedia/Cd`;
    const coll = await h.as(0, 'GET', `/redfish/v1/Managers/${h.sys(0)}/VirtualMedia`);
    expect(coll.body.Members).toEqual([{ '@odata.id': cd }]);
    expect((await h.as(0, 'POST', `${cd}/Actions/VirtualMedia.InsertMedia`, { body: { Image: 'https://img.example/a.iso' } })).status).toBe(204);
    let vm = await h.as(0, 'GET', cd);
    expect(vm.body).toMatchObject({ Image: 'https://img.example/a.iso', Inserted: true, ImageName: 'a.iso', ConnectedVia: 'URI', TransferProtocolType: 'HTTPS' });
    expect((await h.as(0, 'POST', `${cd}/Actions/VirtualMedia.EjectMedia`, { body: {} })).status).toBe(204);
    vm = await h.as(0, 'GET', cd);
    expect(vm.body).toMatchObject({ Image: null, Inserted: false, ConnectedVia: 'NotConnected' });
    const bad = await h.as(0, 'POST', `${cd}/Actions/VirtualMedia.InsertMedia`, { body: { Image: 'file:///etc/passwd' } });
    expect(bad.status).toBe(400);
    expect((await h.as(0, 'POST', `${cd}/Actions/VirtualMedia.InsertMedia`, { body: {} })).status).toBe(400);
    const p = await h.as(0, 'PATCH', cd, { body: { Image: 'http://img.example/b.iso', Inserted: true } });
    expect(p.status).toBe(200);
    expect(p.body.Image).toBe('http://img.example/b.iso');
    const e = await h.as(0, 'PATCH', cd, { body: { Image: null } });
    expect(e.body.Inserted).toBe(false);
  });

  it('stages BIOS settings and applies them only at the next reset', async () => {
    const bios = await h.as(0, 'GET', `${S0}/Bios`);
    expect(bios.body.Attributes.ProcVirtualization).toBe('Enabled');
    const settingsUri = bios.body['@Redfish.Settings'].SettingsObject['@odata.id'];
    const p = await h.as(0, 'PATCH', settingsUri, { body: { Attributes: { ProcVirtualization: 'Disabled', BootTimeoutSeconds: 30 } } });
    expect(p.status).toBe(200);
    expect(p.body.Attributes).toEqual({ ProcVirtualization: 'Disabled', BootTimeoutSeconds: 30 });
    expect((await h.as(0, 'GET', `${S0}/Bios`)).body.Attributes.ProcVirtualization).toBe('Enabled');
    const wrong = await h.as(0, 'PATCH', settingsUri, { body: { Attributes: { ProcVirtualization: 'Maybe' } } });
    expect(wrong.status).toBe(400);
    expect(wrong.body.error.code).toMatch(/PropertyValueNotInList$/);
    await h.as(0, 'POST', `${S0}/Actions/ComputerSystem.Reset`, { body: { ResetType: 'On' } });
    await h.waitPower(0, 'On');
    const applied = await h.as(0, 'GET', `${S0}/Bios`);
    expect(applied.body.Attributes.ProcVirtualization).toBe('Disabled');
    expect(applied.body.Attributes.BootTimeoutSeconds).toBe(30);
    expect((await h.as(0, 'GET', settingsUri)).body.Attributes).toEqual({});
    expect((await h.as(0, 'POST', `${S0}/Bios/Actions/Bios.ResetBios`, { body: {} })).status).toBe(204);
    expect((await h.as(0, 'GET', settingsUri)).body.Attributes).toEqual({ ProcVirtualization: 'Enabled', BootTimeoutSeconds: 10 });
    await h.as(0, 'POST', `${S0}/Actions/ComputerSystem.Reset`, { body: { ResetType: 'ForceOff' } });
    await h.waitPower(0, 'Off');
  });

  it('enables secure boot for the next boot', async () => {
    const sb = `${S0}/SecureBoot`;
    const p = await h.as(0, 'PATCH', sb, { body: { SecureBootEnable: true } });
    expect(p.body).toMatchObject({ SecureBootEnable: true, SecureBootCurrentBoot: 'Disabled' });
    await h.as(0, 'POST', `${S0}/Actions/ComputerSystem.Reset`, { body: { ResetType: 'On' } });
    await h.waitPower(0, 'On');
    expect((await h.as(0, 'GET', sb)).body.SecureBootCurrentBoot).toBe('Enabled');
    await h.as(0, 'PATCH', sb, { body: { SecureBootEnable: false } });
    await h.as(0, 'POST', `${S0}/Actions/ComputerSystem.Reset`, { body: { ResetType: 'ForceOff' } });
    await h.waitPower(0, 'Off');
  });

  it('a Legacy boot never runs with secure boot, whatever the setting', async () => {
    const sb = `${S0}/SecureBoot`;
    await h.as(0, 'PATCH', S0, { body: { Boot: { BootSourceOverrideMode: 'Legacy' } } });
    await h.as(0, 'PATCH', sb, { body: { SecureBootEnable: true } });
    await h.as(0, 'POST', `${S0}/Actions/ComputerSystem.Reset`, { body: { ResetType: 'On' } });
    await h.waitPower(0, 'On');
    expect((await h.as(0, 'GET', sb)).body).toMatchObject({ SecureBootEnable: true, SecureBootCurrentBoot: 'Disabled' });
    expect(h.lab.fleet.get(h.sys(0))!.bootLog.at(-1)).toMatchObject({ mode: 'Legacy', secureBoot: false });
    await h.as(0, 'PATCH', sb, { body: { SecureBootEnable: false } });
    await h.as(0, 'PATCH', S0, { body: { Boot: { BootSourceOverrideMode: 'UEFI' } } });
    await h.as(0, 'POST', `${S0}/Actions/ComputerSystem.Reset`, { body: { ResetType: 'ForceOff' } });
    await h.waitPower(0, 'Off');
  });

  it('honours ETags with If-Match and reports unwritable and unknown properties', async () => {
    const g = await h.as(0, 'GET', S0);
    const etag = g.headers.etag as string;
    expect(etag).toMatch(/^"[^"]+"$/);
    const stale = await h.as(0, 'PATCH', S0, { body: { AssetTag: 'a' }, headers: { 'if-match': '"not-the-etag"' } });
    expect(stale.status).toBe(412);
    expect(stale.body.error.code).toMatch(/PreconditionFailed$/);
    expect((await h.as(0, 'GET', S0)).body.AssetTag).toBe('');
    const good = await h.as(0, 'PATCH', S0, { body: { AssetTag: 'rack-1' }, headers: { 'if-match': etag } });
    expect(good.status).toBe(200);
    expect(good.headers.etag).not.toBe(etag);
    const ro = await h.as(0, 'PATCH', S0, { body: { PowerState: 'On' } });
    expect(ro.status).toBe(400);
    expect(ro.body.error.code).toMatch(/PropertyNotWritable$/);
    const unk = await h.as(0, 'PATCH', S0, { body: { Frobnicate: 1 } });
    expect(unk.status).toBe(400);
    expect(unk.body.error.code).toMatch(/PropertyUnknown$/);
    // DSP0266: the writable part applies; the rest is reported.
    const mixed = await h.as(0, 'PATCH', S0, { body: { AssetTag: 'rack-2', Model: 'x' } });
    expect(mixed.status).toBe(200);
    expect(mixed.body.AssetTag).toBe('rack-2');
    expect(mixed.body['@Message.ExtendedInfo'][0].MessageId).toMatch(/PropertyNotWritable$/);
    const badVal = await h.as(0, 'PATCH', S0, { body: { Boot: { BootSourceOverrideTarget: 'Floppy' } } });
    expect(badVal.status).toBe(400);
    expect(badVal.body.error.code).toMatch(/PropertyValueNotInList$/);
    const malformed = await h.as(0, 'PATCH', S0, { rawBody: '{"AssetTag": ' });
    expect(malformed.status).toBe(400);
    expect(malformed.body.error.code).toMatch(/^Base\.1\.\d+\.MalformedJSON$/);
    const big = await h.as(0, 'PATCH', S0, { rawBody: JSON.stringify({ AssetTag: 'x'.repeat(70 * 1024) }) });
    expect(big.status).toBe(413);
  });

  it('lets a BMC account change its password', async () => {
    const acct = await h.as(2, 'GET', '/redfish/v1/AccountService/Accounts/1');
    expect(acct.body.UserName).toBe('admin');
    expect(acct.body.Password).toBeNull();
    const old = h.creds(2);
    const p = await h.as(2, 'PATCH', '/redfish/v1/AccountService/Accounts/1', { body: { Password: 'new-password-123' } });
    expect(p.status).toBe(200);
    expect((await h.request('GET', `/redfish/v1/Systems/${h.sys(2)}`, { auth: old })).status).toBe(401);
    expect((await h.request('GET', `/redfish/v1/Systems/${h.sys(2)}`, { auth: { username: 'admin', password: 'new-password-123' } })).status).toBe(200);
  });
});
