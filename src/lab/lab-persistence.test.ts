import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ensureLabCa } from './lab-ca.js';
import { LabHarness } from './lab-test-harness.js';

describe('lab persistence, CA and profiles', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('creates the CA once, with private keys mode 0600, and reuses it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ingot-ca-'));
    dirs.push(dir);
    const a = await ensureLabCa(dir);
    expect((await stat(a.caKeyFile)).mode & 0o777).toBe(0o600);
    expect((await stat(a.keyFile)).mode & 0o777).toBe(0o600);
    expect(a.certPem).toContain('BEGIN CERTIFICATE');
    const b = await ensureLabCa(dir);
    expect(b.caPem).toBe(a.caPem);
    expect(b.certPem).toBe(a.certPem);
  });

  it('keeps machines as they were across a restart', async () => {
    const h1 = await LabHarness.start({ hosts: 2 });
    dirs.push(h1.dataDir);
    const creds = h1.creds(1);
    const id = h1.sys(1);
    const S = `/redfish/v1/Systems/${id}`;
    const ca1 = h1.ca;
    await h1.as(1, 'PATCH', S, { body: { Boot: { BootSourceOverrideTarget: 'Cd', BootSourceOverrideEnabled: 'Continuous' } } });
    await h1.as(1, 'PATCH', `${S}/Bios/Settings`, { body: { Attributes: { SriovGlobalEnable: 'Enabled' } } });
    await h1.as(1, 'POST', `/redfish/v1/Managers/${id}/VirtualMedia/Cd/Actions/VirtualMedia.InsertMedia`, { body: { Image: 'http://x.example/a.iso' } });
    await h1.as(1, 'POST', `${S}/Actions/ComputerSystem.Reset`, { body: { ResetType: 'On' } });
    await h1.waitPower(1, 'On');
    expect((await stat(join(h1.dataDir, 'lab-state.json'))).mode & 0o777).toBe(0o600);
    expect((await stat(join(h1.dataDir, 'admin-token'))).mode & 0o777).toBe(0o600);
    const token = h1.lab.adminToken;
    await h1.stop({ keepData: true });

    const h2 = await LabHarness.start({ hosts: 3, dataDir: h1.dataDir });
    expect(h2.ca).toBe(ca1);
    expect(h2.lab.adminToken).toBe(token);
    expect(h2.lab.systems).toHaveLength(3);
    expect(h2.creds(1)).toEqual(creds);
    const sys = await h2.request('GET', S, { auth: creds });
    expect(sys.body.PowerState).toBe('On');
    expect(sys.body.Boot).toMatchObject({ BootSourceOverrideTarget: 'Cd', BootSourceOverrideEnabled: 'Continuous' });
    expect((await h2.as(1, 'GET', `${S}/Bios`)).body.Attributes.SriovGlobalEnable).toBe('Enabled');
    expect((await h2.as(1, 'GET', `/redfish/v1/Managers/${id}/VirtualMedia/Cd`)).body.Image).toBe('http://x.example/a.iso');
    const log = (await h2.admin('GET', `/systems/${id}/boot-log`)).body.records;
    expect(log).toHaveLength(1);
    expect(log[0]).toMatchObject({ source: 'cd', mediaUrl: 'http://x.example/a.iso' });
    await h2.stop({ keepData: true });
  });

  it('builds machines from a profile', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ingot-lab-'));
    dirs.push(dir);
    const profile = join(dir, 'profile.yaml');
    await writeFile(
      profile,
      [
        'groups:',
        '  - {name: gpu, count: 1, cpus: 2, ramGiB: 256, disks: [{sizeGiB: 100, type: nvme}], gpus: [{model: H100, count: 2}], secureBootCapable: false}',
        '  - {count: 1, cpus: 1, ramGiB: 16, disks: [{sizeGiB: 20, type: hdd}, {sizeGiB: 30, type: ssd}]}',
        '',
      ].join('\n'),
    );
    const h = await LabHarness.start({ hosts: 2, dataDir: join(dir, 'data'), profile });
    try {
      const S0 = `/redfish/v1/Systems/${h.sys(0)}`;
      const s0 = await h.as(0, 'GET', S0);
      expect(s0.body.MemorySummary.TotalSystemMemoryGiB).toBe(256);
      expect(s0.body.SecureBoot).toBeUndefined();
      expect((await h.as(0, 'GET', `${S0}/SecureBoot`)).status).toBe(404);
      const procs = await h.as(0, 'GET', `${S0}/Processors`);
      expect(procs.body['Members@odata.count']).toBe(4);
      expect((await h.as(0, 'GET', `${S0}/Processors/GPU1`)).body).toMatchObject({ ProcessorType: 'GPU', Model: 'H100' });
      const S1 = `/redfish/v1/Systems/${h.sys(1)}`;
      const d0 = await h.as(1, 'GET', `${S1}/Storage/1/Drives/0`);
      expect(d0.body).toMatchObject({ CapacityBytes: 20 * 1024 ** 3, MediaType: 'HDD', Protocol: 'SAS' });
      const nic = await h.as(1, 'GET', `${S1}/EthernetInterfaces/NIC1`);
      expect(nic.body.MACAddress).toBe('52:54:00:00:01:00');
    } finally {
      await h.stop({ keepData: true });
    }
    await writeFile(profile, 'groups: [{count: 1, cpus: 0, ramGiB: 1, disks: []}]\n');
    await expect(LabHarness.start({ hosts: 1, dataDir: join(dir, 'data2'), profile })).rejects.toThrow(/\/groups\/0\/cpus/);
  });

  it('refuses a corrupt state file rather than starting a fresh lab over it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ingot-lab-'));
    dirs.push(dir);
    await writeFile(join(dir, 'lab-state.json'), '{"version": 99, "systems": []}');
    await expect(LabHarness.start({ hosts: 1, dataDir: dir })).rejects.toThrow(/unknown format/);
    expect(await readFile(join(dir, 'lab-state.json'), 'utf8')).toContain('99');
  });
});
