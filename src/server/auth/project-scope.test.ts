import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../store/open-store.js';
import type { Store } from '../../store/store.js';
import type { Identity } from './policy.js';
import { platformScopeRoles, projectScopeRoles } from './project-scope.js';

let dir: string;
let store: Store;
const identity = (over: Partial<Identity>): Identity => ({ tokenId: 't1', principal: 't1', type: 'api', roles: [], project: '', hostUid: '', ...over });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ingot-scope-'));
  store = await openStore({ database: join(dir, 'db.sqlite') });
  await store.create({
    kind: 'Project',
    name: 'red',
    spec: { members: [{ subject: 'alice', role: 'project-admin' }, { subject: 'bob', role: 'project-viewer' }, { subject: 'mallory', role: 'platform-admin' }] },
    status: {},
  });
});
afterAll(async () => {
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('roles in force by scope', () => {
  it('project roles are dropped on platform routes; platform roles stay', () => {
    expect(platformScopeRoles(identity({ roles: ['project-admin', 'platform-reader'], project: 'red' }))).toEqual(['platform-reader']);
  });

  it("a token's project roles count on its own project only", async () => {
    const red = identity({ roles: ['project-member'], project: 'red' });
    expect(await projectScopeRoles(store, red, 'red')).toEqual(['project-member']);
    expect(await projectScopeRoles(store, red, 'blue')).toEqual([]);
  });

  it('OIDC subjects listed in spec.members get their role in that project, and nowhere else', async () => {
    const alice = identity({ tokenId: 'oidc:alice' });
    expect(await projectScopeRoles(store, alice, 'red')).toEqual(['project-admin']);
    expect(await projectScopeRoles(store, alice, 'blue')).toEqual([]);
    expect(platformScopeRoles(alice)).toEqual([]);
    expect(await projectScopeRoles(store, identity({ tokenId: 'oidc:bob' }), 'red')).toEqual(['project-viewer']);
    // Only API tokens of the form oidc:<sub> match; an Ingot token id equal to a subject does not.
    expect(await projectScopeRoles(store, identity({ tokenId: 'alice' }), 'red')).toEqual([]);
    // A member entry can never grant a platform role (the schema refuses it; the check ignores it too).
    expect(await projectScopeRoles(store, identity({ tokenId: 'oidc:mallory' }), 'red')).toEqual([]);
  });
});
