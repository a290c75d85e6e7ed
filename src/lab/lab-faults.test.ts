import { stat } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LabAdminClient } from './lab-fault-client.js';
import { LabHarness } from './lab-test-harness.js';

describe('lab faults and admin endpoint', () => {
  let h: LabHarness;
  let admin: LabAdminClient;
  beforeAll(async () => {
    h = await LabHarness.start({ hosts: 2 });
    admin = await LabAdminClient.fromDataDir(h.dataDir);
  });
  afterAll(async () => {
    await admin.close();
    await h.stop();
  });
  const S = (i: number) => `/redfish/v1/Systems/${h.sys(i)}`;

  it('requires the admin token', async () => {
    expect((await h.request('GET', '/lab/v1/systems')).status).toBe(401);
    expect((await h.request('GET', '/lab/v1/systems', { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
    const systems = await admin.listSystems();
    expect(systems.map((s) => s.id)).toEqual([h.sys(0), h.sys(1)]);
    expect(JSON.stringify(systems)).not.toContain(h.creds(0).password);
  });

  it('rejects invalid fault bodies', async () => {
    await expect(admin.setFaults(h.sys(0), { delayMs: -1 } as never)).rejects.toThrow(/400/);
    await expect(admin.setFaults(h.sys(0), { explode: true } as never)).rejects.toThrow(/400/);
  });

  it('delays responses', async () => {
    await admin.setFaults(h.sys(0), { delayMs: 150 });
    const t0 = Date.now();
    const r = await h.as(0, 'GET', S(0));
    expect(r.status).toBe(200);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140); // a lower bound only: the delay was applied
    await admin.clearFaults(h.sys(0));
  });

  it('answers a burst of 5xx, then recovers, without touching other systems', async () => {
    await admin.setFaults(h.sys(0), { errorBurst: 2, errorStatus: 500 });
    expect((await h.as(1, 'GET', S(1))).status).toBe(200);
    const a = await h.as(0, 'GET', S(0));
    const b = await h.as(0, 'GET', `/redfish/v1/Managers/${h.sys(0)}`);
    expect([a.status, b.status]).toEqual([500, 500]);
    expect(a.body.error.code).toMatch(/ServiceTemporarilyUnavailable$/);
    expect((await h.as(0, 'GET', S(0))).status).toBe(200);
    expect((await admin.getFaults(h.sys(0))).errorBurst).toBe(0);
  });

  it('drops the next N connections', async () => {
    await admin.setFaults(h.sys(1), { dropConnections: 2 });
    await expect(h.as(1, 'GET', S(1))).rejects.toThrow(/socket hang up|ECONNRESET/);
    await expect(h.as(1, 'GET', '/redfish/v1/Systems')).rejects.toThrow(/socket hang up|ECONNRESET/);
    expect((await h.as(1, 'GET', S(1))).status).toBe(200);
  });

  it('changes the credentials on the BMC', async () => {
    const old = h.creds(1);
    const login = await h.request('POST', '/redfish/v1/SessionService/Sessions', { body: { UserName: old.username, Password: old.password } });
    const token = login.headers['x-auth-token'] as string;
    expect((await h.request('GET', S(1), { token })).status).toBe(200);
    const changed = await admin.changePassword(h.sys(1));
    // Sessions opened with the old password end with it.
    expect((await h.request('GET', S(1), { token })).status).toBe(401);
    expect(changed.password).not.toBe(old.password);
    expect((await h.request('GET', S(1), { auth: old })).status).toBe(401);
    expect((await h.request('GET', S(1), { auth: changed })).status).toBe(200);
    const set = await admin.changePassword(h.sys(1), 'chosen-password-1');
    expect(set.password).toBe('chosen-password-1');
    expect((await admin.credentials(h.sys(1))).password).toBe('chosen-password-1');
  });

  it('ignores power actions silently', async () => {
    await admin.setFaults(h.sys(0), { ignorePower: true });
    const r = await h.as(0, 'POST', `${S(0)}/Actions/ComputerSystem.Reset`, { body: { ResetType: 'On' } });
    expect(r.status).toBe(204);
    expect(await h.powerState(0)).toBe('Off');
    await admin.clearFaults(h.sys(0));
    expect((await h.as(0, 'POST', `${S(0)}/Actions/ComputerSystem.Reset`, { body: { ResetType: 'On' } })).status).toBe(202);
    await h.waitPower(0, 'On');
    expect((await admin.bootLog(h.sys(0))).length).toBe(1);
  });

  it('records failing drives and creates sparse backing files on first open', async () => {
    await admin.setFaults(h.sys(0), { failDriveWrites: [1] });
    const d0 = await admin.openDisk(h.sys(0), 0);
    const d1 = await admin.openDisk(h.sys(0), 1);
    expect(d0.failWrites).toBe(false);
    expect(d1.failWrites).toBe(true);
    expect(h.lab.faults.driveWriteFails(h.sys(0), 1)).toBe(true);
    const st = await stat(d0.path);
    expect(st.size).toBe(10 * 1024 ** 3);
    expect(st.blocks * 512).toBeLessThan(1024 * 1024); // sparse: no blocks allocated
    await expect(admin.openDisk(h.sys(0), 7)).rejects.toThrow(/404/);
    const sys1 = await admin.getSystem(h.sys(1));
    const disks = sys1.disks as Array<{ path: string }>;
    await expect(stat(disks[0]!.path)).rejects.toThrow(/ENOENT/); // never opened: never created
  });
});

describe('lab scale', () => {
  it('serves 1,000 systems from one listener without creating disk files', async () => {
    const h = await LabHarness.start({ hosts: 1000 });
    try {
      expect(h.lab.systems).toHaveLength(1000);
      expect(h.sys(999)).toBe('node-1000');
      expect(new Set(h.lab.systems.map((s) => s.bootMac)).size).toBe(1000);
      const r = await h.as(999, 'GET', `/redfish/v1/Systems/${h.sys(999)}`);
      expect(r.status).toBe(200);
      expect((await h.as(999, 'GET', '/redfish/v1/Systems')).body.Members).toEqual([{ '@odata.id': `/redfish/v1/Systems/${h.sys(999)}` }]);
      const { readdir } = await import('node:fs/promises');
      expect(await readdir(h.dataDir)).not.toContain('systems');
    } finally {
      await h.stop();
    }
  });
});
