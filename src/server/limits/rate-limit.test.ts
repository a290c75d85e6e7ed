import { afterEach, describe, expect, it } from 'vitest';
import { addToken, startApiFixture, type ApiFixture } from '../testing/api-fixture.js';
import { createRateLimiter } from './rate-limit.js';

let api: ApiFixture | undefined;
afterEach(async () => {
  await api?.close();
  api = undefined;
});

describe('rate limits over real HTTP (injected clock)', () => {
  it('failed authentication with unknown tokens: the 11th from one address in a minute gets 429 with Retry-After until the window passes; valid tokens from that address are never blocked', async () => {
    let now = 1_000_000;
    api = await startApiFixture({ rateLimits: { now: () => now, authFailures: { maxFailures: 10, windowMs: 60_000 } } });
    const bad = 'ingot_' + 'A'.repeat(43);
    for (let i = 0; i < 10; i++) expect((await api.call('GET', '/api/v1/hosts', { token: bad })).status).toBe(401);
    const throttled = await api.call('GET', '/api/v1/hosts', { token: bad });
    expect(throttled.status).toBe(429);
    expect(throttled.json.code).toBe('INGOT_ERR_RATE_LIMITED');
    expect(throttled.headers.get('retry-after')).toBe('60');
    expect((await api.call('GET', '/api/v1/hosts', { token: 'garbage' })).status).toBe(429);
    // a valid admin token and a valid tenant token from the same address still work
    expect((await api.call('GET', '/api/v1/hosts')).status).toBe(200);
    const viewer = await addToken(api.store, ['project-viewer'], { project: 'red' });
    expect((await api.call('GET', '/api/v1/projects/red/claims', { token: viewer })).status).not.toBe(429);
    // health routes are exempt
    expect((await api.call('GET', '/healthz', { token: null })).status).toBe(200);
    now += 30_000;
    expect((await api.call('GET', '/api/v1/hosts', { token: bad })).headers.get('retry-after')).toBe('30');
    now += 30_000;
    expect((await api.call('GET', '/api/v1/hosts', { token: bad })).status).toBe(401);
    // each failure was recorded in the audit trail
    const failures = await api.store.listAuditEvents({ action: 'auth:failed' });
    expect(failures.length).toBeGreaterThan(0);
    expect(failures[0]!.actor).toBe('anonymous');
    expect(failures[0]!.outcome).toBe('denied');
    expect(failures[0]!.sourceAddress).toBe('127.0.0.1');
  });

  it('a known but unusable token (revoked, or an agent token on the public API) is throttled by its own id, not by address', async () => {
    const now = 2_000_000;
    api = await startApiFixture({ rateLimits: { now: () => now, authFailures: { maxFailures: 10, windowMs: 60_000 } } });
    const revoked = await addToken(api.store, ['platform-admin'], { revokedAt: new Date(now).toISOString() });
    for (let i = 0; i < 10; i++) expect((await api.call('GET', '/api/v1/hosts', { token: revoked })).status).toBe(401);
    expect((await api.call('GET', '/api/v1/hosts', { token: revoked })).status).toBe(429);
    for (let i = 0; i < 10; i++) expect((await api.call('GET', '/api/v1/hosts', { token: api.agentToken })).status).toBe(401);
    const agentThrottled = await api.call('GET', '/api/v1/hosts', { token: api.agentToken });
    expect(agentThrottled.status).toBe(429);
    expect(agentThrottled.json.message).toMatch(/this token failed authentication 11 times/);
    // the address is not blamed: an unknown token from it is a plain 401, a valid one a 200
    expect((await api.call('GET', '/api/v1/hosts', { token: 'ingot_' + 'B'.repeat(43) })).status).toBe(401);
    expect((await api.call('GET', '/api/v1/hosts')).status).toBe(200);
    const failures = await api.store.listAuditEvents({ action: 'auth:failed' });
    expect(failures.some((e) => e.actor !== 'anonymous')).toBe(true);
  });

  it('the agent listener throttles bad tokens the same way and keeps serving valid agent tokens', async () => {
    const now = 3_000_000;
    api = await startApiFixture({ agentRateLimits: { now: () => now, authFailures: { maxFailures: 10, windowMs: 60_000 } } });
    const statuses: number[] = [];
    for (let i = 0; i < 30; i++) statuses.push((await api.call('POST', '/agent/v1/heartbeat', { base: 'agent', token: `ingot_${String(i).padStart(43, 'x')}`, body: {} })).status);
    expect(statuses.slice(0, 10).every((s) => s === 401)).toBe(true);
    expect(statuses.slice(10).every((s) => s === 429)).toBe(true);
    // the fixture's agent token has no session: it authenticates, then is refused for that (not throttled)
    expect((await api.call('POST', '/agent/v1/heartbeat', { base: 'agent', token: api.agentToken, body: {} })).status).not.toBe(429);
  });

  it('per-identity token bucket by role: a burst is allowed, then 429 with Retry-After; refills with time; other tokens unaffected', async () => {
    let now = 5_000_000;
    api = await startApiFixture({ rateLimits: { now: () => now, perRole: { 'platform-reader': { burst: 3, perSecond: 0.5 } }, default: { burst: 100, perSecond: 100 } } });
    const reader = await addToken(api.store, ['platform-reader']);
    for (let i = 0; i < 3; i++) expect((await api.call('GET', '/api/v1/hosts', { token: reader })).status).toBe(200);
    const limited = await api.call('GET', '/api/v1/hosts', { token: reader });
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('2');
    expect((await api.call('GET', '/api/v1/hosts')).status).toBe(200);
    now += 2_000;
    expect((await api.call('GET', '/api/v1/hosts', { token: reader })).status).toBe(200);
    expect((await api.call('GET', '/api/v1/hosts', { token: reader })).status).toBe(429);
  });

  it('refusals cost the identity like any request: a viewer deleting hosts in a loop gets 429, and its refusals are audited as one event with a count', async () => {
    let now = 7_000_000;
    api = await startApiFixture({ now: () => now, rateLimits: { now: () => now } });
    const viewer = await addToken(api.store, ['project-viewer'], { project: 'red' });
    const statuses = new Map<number, number>();
    for (let i = 0; i < 600; i++) {
      const { status } = await api.call('DELETE', '/api/v1/hosts/someone-elses', { token: viewer });
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
    }
    // the default bucket (60 at once) is spent by refusals too
    expect(statuses.get(403)).toBe(60);
    expect(statuses.get(429)).toBe(540);
    expect(await api.store.listAuditEvents({ action: 'host:delete' })).toHaveLength(1);
    now += 61_000;
    expect((await api.call('DELETE', '/api/v1/hosts/someone-elses', { token: viewer })).status).toBe(403);
    const events = await api.store.listAuditEvents({ action: 'host:delete' });
    expect(events.map((e) => e.repeatCount ?? 1)).toEqual([1, 59, 1]);
    expect(events.every((e) => e.outcome === 'denied' && e.target.name === 'someone-elses')).toBe(true);
  });

  it('counts unknown credentials from all addresses together', () => {
    const limiter = createRateLimiter({ now: () => 0, authFailures: { maxFailures: 10, windowMs: 60_000, maxUnknownTotal: 200 } });
    for (let i = 0; i < 200; i++) limiter.recordAuthFailure({ address: `10.0.${i >> 8}.${i & 255}` });
    expect(() => limiter.recordAuthFailure({ address: '10.9.9.9' })).toThrow(/unknown tokens from all addresses \(201 in 60s\)/);
    // a known credential is counted on its own
    expect(() => limiter.recordAuthFailure({ credentialId: 'tok-1' })).not.toThrow();
  });

  it('refuses a nonsensical bucket', () => {
    expect(() => createRateLimiter({ default: { burst: 0, perSecond: 1 } })).toThrow(/burst/);
  });
});
