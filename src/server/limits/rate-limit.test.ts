import { afterEach, describe, expect, it } from 'vitest';
import { addToken, startApiFixture, type ApiFixture } from '../testing/api-fixture.js';
import { createRateLimiter } from './rate-limit.js';

let api: ApiFixture | undefined;
afterEach(async () => {
  await api?.close();
  api = undefined;
});

describe('rate limits over real HTTP (injected clock)', () => {
  it('failed authentication: the 11th failure from one address in a minute gets 429 with Retry-After, even with a good token, until the window passes', async () => {
    let now = 1_000_000;
    api = await startApiFixture({ rateLimits: { now: () => now, authFailures: { maxFailures: 10, windowMs: 60_000 } } });
    const bad = 'ingot_' + 'A'.repeat(43);
    for (let i = 0; i < 10; i++) expect((await api.call('GET', '/api/v1/hosts', { token: bad })).status).toBe(401);
    const throttled = await api.call('GET', '/api/v1/hosts', { token: bad });
    expect(throttled.status).toBe(429);
    expect(throttled.json.code).toBe('INGOT_ERR_RATE_LIMITED');
    expect(throttled.headers.get('retry-after')).toBe('60');
    expect((await api.call('GET', '/api/v1/hosts')).status).toBe(429);
    // health routes are exempt
    expect((await api.call('GET', '/healthz', { token: null })).status).toBe(200);
    now += 30_000;
    expect((await api.call('GET', '/api/v1/hosts')).headers.get('retry-after')).toBe('30');
    now += 30_000;
    expect((await api.call('GET', '/api/v1/hosts')).status).toBe(200);
    // each failure was recorded in the audit trail
    const failures = await api.store.listAuditEvents({ action: 'auth:failed' });
    expect(failures.length).toBe(10);
    expect(failures[0]!.actor).toBe('anonymous');
    expect(failures[0]!.outcome).toBe('denied');
    expect(failures[0]!.sourceAddress).toBe('127.0.0.1');
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

  it('refuses a nonsensical bucket', () => {
    expect(() => createRateLimiter({ default: { burst: 0, perSecond: 1 } })).toThrow(/burst/);
  });
});
