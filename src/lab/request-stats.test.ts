// The lab counts the Redfish requests it serves, per system, for benchmarks (GET /lab/v1/stats).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LabAdminClient } from './lab-fault-client.js';
import { LabHarness } from './lab-test-harness.js';
import { RequestStats } from './request-stats.js';

describe('RequestStats', () => {
  it('counts totals, per system and unattributed, and resets', () => {
    const s = new RequestStats();
    s.record('a');
    s.record('a');
    s.record('b');
    s.record(undefined);
    expect(s.snapshot()).toEqual({ total: 4, unattributed: 1, systems: { a: 2, b: 1 } });
    s.reset();
    expect(s.snapshot()).toEqual({ total: 0, unattributed: 0, systems: {} });
  });
});

describe('lab request counting', () => {
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

  it('attributes each Redfish request once, by path, credentials or login body; admin calls are not counted', async () => {
    await admin.resetStats();
    // 1. Two reads of system 0's own resources, one service-wide read as system 1.
    expect((await h.as(0, 'GET', `/redfish/v1/Systems/${h.sys(0)}`)).status).toBe(200);
    expect((await h.as(0, 'GET', `/redfish/v1/Systems/${h.sys(0)}/EthernetInterfaces`)).status).toBe(200);
    expect((await h.as(1, 'GET', '/redfish/v1/Systems')).status).toBe(200);
    // 2. A login as system 1, a public read, and a request with bad credentials.
    const login = await h.request('POST', '/redfish/v1/SessionService/Sessions', { body: { UserName: h.creds(1).username, Password: h.creds(1).password } });
    expect(login.status).toBe(201);
    expect((await h.request('GET', '/redfish/v1/')).status).toBe(200);
    expect((await h.request('GET', '/redfish/v1/Systems', { auth: { username: 'nobody', password: 'wrong-password' } })).status).toBe(401);
    // 3. A request to system 0 that its fault answers with a 503 still counts for system 0.
    await admin.setFaults(h.sys(0), { errorBurst: 1 });
    expect((await h.as(0, 'GET', `/redfish/v1/Systems/${h.sys(0)}`)).status).toBe(503);
    const stats = await admin.stats();
    expect(stats).toEqual({ total: 7, unattributed: 2, systems: { [h.sys(0)]: 3, [h.sys(1)]: 2 } });
    expect(h.lab.stats.snapshot()).toEqual(stats);
  });

  it('the stats endpoint needs the admin token', async () => {
    expect((await h.request('GET', '/lab/v1/stats')).status).toBe(401);
    expect((await h.request('PUT', '/lab/v1/stats', { headers: { authorization: `Bearer ${h.lab.adminToken}` }, body: {} })).status).toBe(405);
  });
});
