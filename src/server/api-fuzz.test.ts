// Property test over every route of both listeners (the public API as its OpenAPI document
// lists it, the agent API as registered): requests with arbitrary path parameters, queries,
// tokens, content types and bodies (JSON values, deep nesting, junk text, bad bytes) must never
// get a 5xx, and a refused request must change nothing (the change feed, tokens and approvals
// stay as they were). Bounded and seeded: INGOT_FUZZ_SEED=<n> replays a run, INGOT_FUZZ_RUNS
// sets how many requests per listener (default 250); a failure names the seed and the request.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registeredRoutes } from './api-server.js';
import { addToken, hostManifest, secretManifest, startApiFixture, type ApiFixture } from './testing/api-fixture.js';

const SEED = Number(process.env.INGOT_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const RUNS = Number(process.env.INGOT_FUZZ_RUNS ?? 250);

let api: ApiFixture;
let tokens: (string | null)[];

beforeAll(async () => {
  api = await startApiFixture();
  expect((await api.call('POST', '/api/v1/secrets', { body: secretManifest('bmc-creds', { username: 'u', password: 'fuzz-password-1' }) })).status).toBe(201);
  expect((await api.call('POST', '/api/v1/hosts', { body: hostManifest('h1') })).status).toBe(201);
  const viewer = await addToken(api.store, ['project-viewer'], { project: 'red' });
  tokens = [api.adminToken, api.noRoleToken, api.agentToken, viewer, null, 'ingot_' + 'x'.repeat(43), 'garbage'];
});

afterAll(async () => {
  await api?.close();
});

interface FuzzRoute {
  method: string;
  /** With `{param}` placeholders. */
  path: string;
}

const segment = fc.oneof(
  fc.constantFrom('h1', 'bmc-creds', 'red', 'nope', '..', '%2e%2e', '%00', 'a'.repeat(300), '00000000-0000-0000-0000-000000000000'),
  fc.string({ maxLength: 40 }).map((s) => encodeURIComponent(s) || 'x'),
);

const query = fc.option(
  fc.dictionary(fc.constantFrom('limit', 'labelSelector', 'continue', 'since', 'state', 'afterId', 'wait', 'x'), fc.oneof(fc.string({ maxLength: 20 }), fc.integer().map(String)), { maxKeys: 3 }),
  { nil: undefined },
);

const body = fc.oneof(
  fc.jsonValue({ maxDepth: 6 }).map((v) => JSON.stringify(v)),
  fc.record({ apiVersion: fc.constantFrom('ingot.dev/v1', 'x'), kind: fc.constantFrom('Host', 'Secret', 'Claim', 'x'), metadata: fc.jsonValue({ maxDepth: 3 }), spec: fc.jsonValue({ maxDepth: 4 }) }).map((v) => JSON.stringify(v)),
  fc.string({ maxLength: 200 }),
  fc.stringMatching(/^[-[{:&*!|> \n\\"'a-z0-9]{0,200}$/),
  fc.integer({ min: 60, max: 5000 }).map((n) => '['.repeat(n)),
  fc.integer({ min: 60, max: 2000 }).map((n) => `${'- '.repeat(n)}x`),
  fc.constant('{"a":"\\ud800"}'),
);

const contentType = fc.constantFrom('application/json', 'application/yaml', 'application/merge-patch+json', 'text/plain', 'application/octet-stream', undefined);

async function stateMark(): Promise<string> {
  const [changes, tokenCount, approvals] = await Promise.all([api.store.latestChangeSeq(), api.store.listTokens(), api.store.listApprovals({})]);
  return JSON.stringify([changes, tokenCount.length, approvals.length]);
}

function fuzzListener(base: 'api' | 'agent', routes: () => FuzzRoute[]): Promise<void> {
  const request = fc.record({
    route: fc.constantFrom(...routes()),
    params: fc.array(segment, { minLength: 4, maxLength: 4 }),
    query,
    token: fc.constantFrom(...tokens),
    body: fc.option(body, { nil: undefined }),
    contentType,
  });
  return fc.assert(
    fc.asyncProperty(request, async (r) => {
      let i = 0;
      const path = r.route.path.replace(/\{[^}]+\}|:[A-Za-z]+/g, () => r.params[i++ % r.params.length]!);
      const qs = r.query ? `?${new URLSearchParams(r.query).toString()}` : '';
      const before = await stateMark();
      const res = await api.call(r.route.method, `${path}${qs}`, {
        base,
        token: r.token,
        ...(r.body !== undefined && r.route.method !== 'GET' ? { raw: r.body, ...(r.contentType ? { contentType: r.contentType } : {}) } : {}),
      });
      const where = `seed ${SEED}: ${r.route.method} ${path}${qs} -> ${res.status} ${res.text.slice(0, 200)}`;
      expect(res.status, where).toBeLessThan(500);
      if (res.status >= 400) expect(await stateMark(), `a refused request changed state (${where})`).toBe(before);
    }),
    { seed: SEED, numRuns: RUNS, endOnFailure: true },
  );
}

describe(`fuzzing both listeners (seed ${SEED}, ${RUNS} requests each)`, () => {
  it('the public API: every OpenAPI route, never a 5xx, refusals change nothing', async () => {
    const doc = (await api.call('GET', '/api/openapi.json')).json as { paths: Record<string, Record<string, unknown>> };
    const routes: FuzzRoute[] = [];
    for (const [path, methods] of Object.entries(doc.paths)) {
      for (const method of Object.keys(methods)) routes.push({ method: method.toUpperCase(), path });
    }
    expect(routes.length).toBeGreaterThan(40);
    await fuzzListener('api', () => routes);
  }, 240_000);

  it('the agent API: every registered route, never a 5xx, refusals change nothing', async () => {
    const routes = registeredRoutes(api.agentApp).filter((r) => r.method !== 'HEAD');
    expect(routes.length).toBeGreaterThan(4);
    await fuzzListener('agent', () => routes.map((r) => ({ method: r.method, path: r.url })));
  }, 240_000);
});
