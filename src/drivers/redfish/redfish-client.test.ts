// Protocol handling of the Redfish client, against a real HTTP(S) responder on 127.0.0.1.
import { afterEach, describe, expect, it } from 'vitest';
import { BmcAuthenticationError, BmcCertificateError, BmcRefused, BmcUnreachable } from '../driver.js';
import { MiniRedfish, type MiniRedfishOptions } from '../../../test/support/mini-redfish.js';
import { targetFor } from '../../../test/support/redfish-target.js';
import { issueServerCert, makeCa } from '../../../test/support/test-pki.js';
import { createRedfishDriver, type RedfishDriverOptions } from './redfish-driver.js';
import { parseRetryAfter } from './redfish-client.js';

const SESSIONS = '/redfish/v1/SessionService/Sessions';
const SYSTEM = '/redfish/v1/Systems/1';
const RESET = `${SYSTEM}/Actions/ComputerSystem.Reset`;

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function setup(miniOpts: MiniRedfishOptions = {}, driverOpts: RedfishDriverOptions = {}) {
  const mini = await new MiniRedfish(miniOpts).start();
  const sleeps: number[] = [];
  const driver = createRedfishDriver({
    retryBaseDelayMs: 1,
    taskPollIntervalMs: 1,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    ...driverOpts,
  });
  cleanups.push(() => mini.close(), () => driver.close());
  return { mini, driver, sleeps, target: targetFor(mini) };
}

describe('redfish client: authentication', () => {
  it('logs in once, reuses the session, and deletes it on close', async () => {
    const { mini, driver, target } = await setup();
    await driver.power.get(target);
    await driver.power.get(target);
    expect(mini.count('POST', SESSIONS)).toBe(1);
    expect(mini.log.filter((r) => r.path === SYSTEM).every((r) => r.auth === 'session')).toBe(true);
    expect(mini.sessions.size).toBe(1);
    await driver.close();
    expect(mini.sessions.size).toBe(0);
    expect(mini.count('DELETE', `${SESSIONS}/*`)).toBe(1);
  });

  it('falls back to HTTP Basic when the service has no sessions', async () => {
    const { mini, driver, target } = await setup({ sessions: false });
    expect(await driver.power.get(target)).toBe('off');
    await driver.power.get(target);
    expect(mini.count('POST', SESSIONS)).toBe(1);
    const systemReads = mini.log.filter((r) => r.path === SYSTEM);
    expect(systemReads).toHaveLength(2);
    expect(systemReads.every((r) => r.auth === 'basic')).toBe(true);
  });

  it('uses HTTP Basic without trying a session when the service root advertises no SessionService', async () => {
    const { mini, driver, target } = await setup({ advertiseSessions: false });
    expect(await driver.power.get(target)).toBe('off');
    expect(mini.count('POST', SESSIONS)).toBe(0);
    expect(mini.log.filter((r) => r.path === SYSTEM).every((r) => r.auth === 'basic')).toBe(true);
  });

  it('uses Basic when session creation is refused but Basic works, and says so in the identity', async () => {
    const { mini, driver, target } = await setup({ refuseSessions: true });
    const identity = await driver.identify(target);
    expect(identity.authenticationNote).toMatch(/refused to create a session \(HTTP 401.*HTTP Basic/);
    await driver.power.get(target);
    expect(mini.count('POST', SESSIONS)).toBe(1);
    expect(mini.log.filter((r) => r.path === SYSTEM).every((r) => r.auth === 'basic')).toBe(true);
  });

  it('reports wrong credentials when session creation is refused and Basic fails too', async () => {
    const { driver, target } = await setup({ refuseSessions: true });
    const err = await driver.power.get({ ...target, credentials: { username: 'admin', password: 'wrong-one' } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BmcAuthenticationError);
  });

  it('keeps each host its own login: concurrent failures name their own host and Secret', async () => {
    const { driver, target } = await setup();
    const bad = { username: 'admin', password: 'wrong-for-both' };
    const a = { ...target, hostName: 'rack1-a', credentialsName: 'secret-a', credentials: bad };
    const b = { ...target, hostName: 'rack1-b', credentialsName: 'secret-b', credentials: bad };
    const [ea, eb] = await Promise.all([driver.power.get(a).catch((e: Error) => e), driver.power.get(b).catch((e: Error) => e)]);
    expect((ea as Error).message).toContain('host "rack1-a"');
    expect((ea as Error).message).toContain('Secret "secret-a"');
    expect((eb as Error).message).toContain('host "rack1-b"');
    expect((eb as Error).message).toContain('Secret "secret-b"');
  });

  it('logs in again once when the BMC forgot the session', async () => {
    const { mini, driver, target } = await setup();
    await driver.power.get(target);
    mini.sessions.clear(); // expired on the BMC
    expect(await driver.power.get(target)).toBe('off');
    expect(mini.count('POST', SESSIONS)).toBe(2);
  });

  it('maps rejected credentials to BmcAuthenticationError without echoing the password', async () => {
    const { driver, target } = await setup();
    const wrong = { ...target, credentials: { username: 'admin', password: 'hunter2-wrong' } };
    const err = await driver.power.get(wrong).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BmcAuthenticationError);
    expect((err as Error).message).toContain('spec.bmc.credentialsName');
    expect((err as Error).message).toContain('update the secret');
    expect((err as Error).message).not.toContain('hunter2');
  });

  it('maps 401 on Basic auth to BmcAuthenticationError', async () => {
    const { driver, target } = await setup({ sessions: false });
    const err = await driver.power.get({ ...target, credentials: { username: 'admin', password: 'nope' } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BmcAuthenticationError);
  });

  it('does not reuse a session made with a rotated-out password, and deletes it', async () => {
    const { mini, driver, target } = await setup();
    await driver.power.get(target);
    const [oldToken] = [...mini.sessions.keys()];
    mini.password = 'rotated';
    // The BMC still honours the old session, but the new credentials must be proven.
    await driver.power.get({ ...target, credentials: { username: 'admin', password: 'rotated' } });
    expect(mini.count('POST', SESSIONS)).toBe(2);
    expect(mini.sessions.has(oldToken!)).toBe(false);
    const err = await driver.power.get(target).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BmcAuthenticationError);
  });
});

describe('redfish client: retries', () => {
  it('retries a GET on 503 and counts each attempt', async () => {
    const { mini, driver, target, sleeps } = await setup();
    mini.failNext('GET', SYSTEM, 2, { status: 503 });
    expect(await driver.power.get(target)).toBe('off');
    expect(mini.count('GET', SYSTEM)).toBe(3);
    expect(sleeps).toHaveLength(2);
  });

  it('gives up after maxAttempts with BmcUnreachable naming the URL and the last error', async () => {
    const { mini, driver, target } = await setup({}, { maxAttempts: 3 });
    mini.failNext('GET', SYSTEM, 10, { status: 500, body: { error: { message: 'sensor bus hung' } } });
    const err = await driver.power.get(target).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BmcUnreachable);
    expect((err as Error).message).toContain(`${mini.url}${SYSTEM}`);
    expect((err as Error).message).toContain('HTTP 500');
    expect((err as Error).message).toContain('sensor bus hung');
    expect((err as Error).message).toContain('3 attempts');
    expect(mini.count('GET', SYSTEM)).toBe(3);
  });

  it('honours Retry-After on 429', async () => {
    const { mini, driver, target, sleeps } = await setup();
    mini.failNext('GET', SYSTEM, 1, { status: 429, headers: { 'retry-after': '7' } });
    expect(await driver.power.get(target)).toBe('off');
    expect(sleeps).toEqual([7000]);
    expect(mini.count('GET', SYSTEM)).toBe(2);
  });

  it('gives up at once when Retry-After is longer than allowed', async () => {
    const { mini, driver, target } = await setup({}, { maxRetryAfterMs: 5000 });
    mini.failNext('GET', SYSTEM, 1, { status: 503, headers: { 'retry-after': '3600' } });
    const err = await driver.power.get(target).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BmcUnreachable);
    expect((err as Error).message).toContain('Retry-After');
    expect(mini.count('GET', SYSTEM)).toBe(1);
  });

  it('never resends an action the BMC received (503 on POST)', async () => {
    const { mini, driver, target } = await setup();
    mini.failNext('POST', RESET, 5, { status: 503 });
    const err = await driver.power.set(target, { state: 'on', mode: 'hard' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BmcUnreachable);
    expect(mini.count('POST', RESET)).toBe(1);
  });

  it('reports a refused connection as BmcUnreachable after the allowed attempts', async () => {
    const { mini, driver, sleeps } = await setup({}, { maxAttempts: 3 });
    const target = targetFor(mini);
    await mini.close();
    cleanups.splice(0, 1);
    const err = await driver.power.get(target).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BmcUnreachable);
    expect((err as Error).message).toContain('ECONNREFUSED');
    expect((err as Error).message).toContain('3 attempts');
    expect(sleeps).toHaveLength(2);
  });

  it('names an HTML page where JSON was expected', async () => {
    const { mini, driver, target } = await setup();
    mini.failNext('GET', SYSTEM, 1, { status: 200, headers: { 'content-type': 'text/html' }, raw: '<!DOCTYPE html><html><body>Login</body></html>' });
    const err = await driver.power.get(target).catch((e: Error) => e);
    expect(err).toBeInstanceOf(BmcRefused);
    expect((err as Error).message).toMatch(/host "h1": reading the power state: GET .*\/redfish\/v1\/Systems\/1 did not return a JSON object \(it sent an HTML page \(text\/html\)\)/);
  });

  it('names truncated JSON', async () => {
    const { mini, driver, target } = await setup();
    mini.failNext('GET', SYSTEM, 1, { status: 200, raw: '{"PowerState": "O' });
    const err = await driver.power.get(target).catch((e: Error) => e);
    expect((err as Error).message).toContain('truncated or malformed JSON (17 bytes)');
  });

  it('refuses to follow a redirect, naming where it pointed', async () => {
    const { mini, driver, target } = await setup();
    mini.failNext('GET', SYSTEM, 1, { status: 302, headers: { location: 'https://elsewhere.example/redfish/v1/Systems/1' } });
    const err = await driver.power.get(target).catch((e: Error) => e);
    expect(err).toBeInstanceOf(BmcRefused);
    expect((err as Error).message).toMatch(/HTTP 302 redirecting to https:\/\/elsewhere\.example.*does not follow BMC redirects/);
    expect(mini.log.filter((r) => r.path === SYSTEM)).toHaveLength(1);
  });

  it('a 500 HTML page on every call is BmcUnreachable naming the call and the page', async () => {
    const { mini, driver, target } = await setup({}, { maxAttempts: 2 });
    mini.failNext('GET', SYSTEM, 10, { status: 500, headers: { 'content-type': 'text/html' }, raw: '<html><body>Internal error</body></html>' });
    const err = await driver.power.get(target).catch((e: Error) => e);
    expect(err).toBeInstanceOf(BmcUnreachable);
    expect((err as Error).message).toMatch(/GET .*\/Systems\/1 failed after 2 attempts: HTTP 500 \(an HTML page \(text\/html\)\)/);
  });

  it('parses Retry-After as seconds or an HTTP date', () => {
    expect(parseRetryAfter('2')).toBe(2000);
    expect(parseRetryAfter('Wed, 21 Oct 2015 07:28:10 GMT', Date.parse('Wed, 21 Oct 2015 07:28:00 GMT'))).toBe(10_000);
    expect(parseRetryAfter('soon')).toBeUndefined();
    expect(parseRetryAfter(undefined)).toBeUndefined();
  });
});

describe('redfish client: tasks, ETags, paging, system discovery', () => {
  it('follows a task monitor until the task completes', async () => {
    const { mini, driver, target } = await setup();
    const monitor = '/redfish/v1/TaskService/TaskMonitors/7';
    mini.failNext('POST', RESET, 1, { status: 202, headers: { location: monitor } });
    mini.failNext('GET', monitor, 2, { status: 202 });
    mini.failNext('GET', monitor, 1, { status: 200, body: { TaskState: 'Completed' } });
    await driver.power.set(target, { state: 'on', mode: 'hard' });
    expect(mini.count('GET', monitor)).toBe(3);
  });

  it('turns a task that ended in Exception into BmcRefused with its messages', async () => {
    const { mini, driver, target } = await setup();
    const monitor = '/redfish/v1/TaskService/Tasks/8';
    mini.failNext('POST', RESET, 1, { status: 202, headers: { location: monitor } });
    mini.failNext('GET', monitor, 1, { status: 200, body: { TaskState: 'Running' } });
    mini.failNext('GET', monitor, 1, { status: 200, body: { TaskState: 'Exception', Messages: [{ Message: 'PSU fault' }] } });
    const err = await driver.power.set(target, { state: 'on', mode: 'hard' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BmcRefused);
    expect((err as Error).message).toContain('Exception');
    expect((err as Error).message).toContain('PSU fault');
  });

  it('stops following a task after the timeout, as retryable', async () => {
    let now = 0;
    const { mini, driver, target } = await setup({}, {
      taskTimeoutMs: 50,
      taskPollIntervalMs: 10,
      now: () => now,
      sleep: async (ms) => {
        now += ms;
      },
    });
    const monitor = '/redfish/v1/TaskService/Tasks/9';
    mini.failNext('POST', RESET, 1, { status: 202, headers: { location: monitor } });
    mini.failNext('GET', monitor, 100, { status: 202 });
    const err = await driver.power.set(target, { state: 'on', mode: 'hard' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BmcUnreachable);
    expect(mini.count('GET', monitor)).toBe(5);
  });

  it('sends If-Match and retries once after 412', async () => {
    const { mini, driver, target } = await setup();
    mini.failNext('PATCH', SYSTEM, 1, { status: 412 });
    await driver.boot.setBootDevice(target, { device: 'pxe', persistent: false });
    const patches = mini.log.filter((r) => r.method === 'PATCH');
    expect(patches).toHaveLength(2);
    expect(patches.every((p) => typeof p.headers['if-match'] === 'string')).toBe(true);
    expect(await driver.boot.getBootDevice(target)).toEqual({ device: 'pxe', persistent: false });
  });

  it('gives up with BmcRefused after a second 412', async () => {
    const { mini, driver, target } = await setup();
    mini.failNext('PATCH', SYSTEM, 2, { status: 412 });
    const err = await driver.boot.setBootDevice(target, { device: 'pxe', persistent: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BmcRefused);
    expect(mini.count('PATCH', SYSTEM)).toBe(2);
  });

  it('follows Members@odata.nextLink', async () => {
    const { mini, driver, target } = await setup({ pageNics: true });
    const identity = await driver.identify(target);
    expect(identity.macAddresses).toEqual(['52:54:00:00:00:01', '52:54:00:00:00:02']);
    expect(mini.count('GET', `${SYSTEM}/EthernetInterfaces?page=2`)).toBe(1);
  });

  it('uses the only system when the address has no path', async () => {
    const { mini, driver } = await setup();
    const identity = await driver.identify(targetFor(mini, { path: '' }));
    expect(identity.systemId).toBe(SYSTEM);
  });

  it('refuses to guess among several systems', async () => {
    const { mini, driver } = await setup({ extraSystems: 2 });
    const err = await driver.identify(targetFor(mini, { path: '' })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BmcRefused);
    expect((err as Error).message).toContain('the BMC has 3 systems; put the system path in spec.bmc.address, e.g. redfish+http://127.0.0.1:');
  });

  it('refuses to follow a link to another origin', async () => {
    const { mini, driver, target } = await setup();
    mini.failNext('POST', RESET, 1, { status: 202, headers: { location: 'http://198.51.100.1/steal' } });
    const err = await driver.power.set(target, { state: 'on', mode: 'hard' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BmcRefused);
    expect((err as Error).message).toContain('another origin');
  });
});

describe('redfish client: TLS', () => {
  const good = makeCa('good-ca');
  const other = makeCa('other-ca');
  const serverCert = issueServerCert(good);

  it('verifies the BMC against the host CA bundle', async () => {
    const { mini, driver } = await setup({ tls: serverCert });
    expect(await driver.power.get(targetFor(mini, { caBundle: good.certPem }))).toBe('off');
  });

  it('reports a BMC certificate from another CA as BmcCertificateError that says what to do', async () => {
    const { mini, driver } = await setup({ tls: serverCert });
    const err = await driver.power.get(targetFor(mini, { caBundle: other.certPem })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BmcCertificateError);
    expect((err as Error).message).toMatch(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT/);
    expect((err as Error).message).toContain('spec.bmc.caBundleName');
    expect((err as Error).message).toContain('disableCertificateVerification');
    expect(mini.log).toHaveLength(0);
  });

  it('rejects an unknown CA with no bundle set, and accepts it with verification off', async () => {
    const { mini, driver } = await setup({ tls: serverCert });
    const err = await driver.power.get(targetFor(mini)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BmcCertificateError);
    expect((err as Error).message).toContain("Secret holding the BMC's CA as ca.crt");
    expect(await driver.power.get(targetFor(mini, { verify: false }))).toBe('off');
  });
});
