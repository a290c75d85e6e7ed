// The lab as an independent Redfish client sees it: OpenStack Ironic's sushy (Debian's
// python3-sushy) reads the service root, a system, its NICs, processors and BIOS, the
// manager's virtual media, and the task, update and session services, as Ironic's redfish
// driver does. sushy failed on the lab's old service root (`TaskService` instead of `Tasks`)
// and UpdateService without Actions; this keeps them readable by the clients operators run.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LabHarness } from '../src/lab/lab-test-harness.js';

const PYTHON = '/usr/bin/python3';
const PROBE = join(import.meta.dirname, 'fixtures/sushy-probe.py');
const run = promisify(execFile);

let h: LabHarness;
beforeAll(async () => {
  h = await LabHarness.start({ hosts: 1 });
});
afterAll(async () => {
  await h?.stop();
});

describe('the lab read by sushy, Ironic\'s Redfish client', () => {
  it('finds the system, its parts and every service Ironic asks for', async () => {
    expect(existsSync(PYTHON), `${PYTHON} is needed (Debian python3 with python3-sushy, installed by .ci/run)`).toBe(true);
    const { username, password } = h.creds(0);
    // requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override the session's CA (psf/requests#3829): drop them so the lab CA is the one used.
    const { REQUESTS_CA_BUNDLE: _r, CURL_CA_BUNDLE: _c, ...env } = process.env;
    const { stdout } = await run(PYTHON, [PROBE, h.lab.url, username, password, h.lab.caFile, `/redfish/v1/Systems/${h.sys(0)}`], { timeout: 60_000, env });
    const seen = JSON.parse(stdout) as Record<string, unknown>;
    const system = (await h.as(0, 'GET', `/redfish/v1/Systems/${h.sys(0)}`)).body;
    expect(seen).toMatchObject({
      task_service: 'TaskService',
      update_service: 'UpdateService',
      session_service: 'SessionService',
      firmware: ['BIOS', 'BMC'],
      virtual_media: ['Cd'],
      processors: system.ProcessorSummary.Count,
    });
    expect(seen.macs).toHaveLength(2);
    expect(seen.bios_attributes).toBeGreaterThan(5);
  });
});
