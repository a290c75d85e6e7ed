import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApiFixture, type ApiFixture } from '../testing/api-fixture.js';
import { registeredRoutes } from './access-control.js';
import { AUTHZ_MATRIX_PATH, renderAuthzMatrix } from './authz-matrix.js';
import { createPolicy } from './policy.js';

let api: ApiFixture;
beforeAll(async () => {
  api = await startApiFixture();
});
afterAll(async () => {
  await api?.close();
});

const repoRoot = join(import.meta.dirname, '..', '..', '..');

describe('docs/authz-matrix.md', () => {
  it('equals what the code renders (regenerate with INGOT_WRITE_AUTHZ_MATRIX=1)', () => {
    const rendered = renderAuthzMatrix(createPolicy(), { api: registeredRoutes(api.app), agent: registeredRoutes(api.agentApp) });
    const path = join(repoRoot, AUTHZ_MATRIX_PATH);
    if (process.env.INGOT_WRITE_AUTHZ_MATRIX) writeFileSync(path, rendered);
    expect(readFileSync(path, 'utf8')).toBe(rendered);
  });

  it('changes when a rule changes (the comparison can fail)', () => {
    const routes = { api: registeredRoutes(api.app), agent: registeredRoutes(api.agentApp) };
    const a = renderAuthzMatrix(createPolicy(), routes);
    const b = renderAuthzMatrix(createPolicy({ overrides: { 'secret:reveal': 'role:platform-admin' } }), routes);
    expect(a).not.toBe(b);
    expect(b).toContain('| `secret:reveal` | `role:platform-admin` | yes |');
  });
});
