// ingot apply's local checks for the tenancy kinds, and where each manifest goes.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveProject } from './config.js';
import { parseManifests } from './manifests.js';

const TENANCY = `apiVersion: ingot.dev/v1
kind: OSImage
metadata: {name: ubuntu}
spec: {url: "https://images.example/u.qcow2", checksum: "${'a'.repeat(64)}", checksumType: sha256, format: qcow2}
---
apiVersion: ingot.dev/v1
kind: NodeType
metadata: {name: metal.small}
spec: {selector: {minCpus: 2}, osImageName: ubuntu}
---
apiVersion: ingot.dev/v1
kind: Project
metadata: {name: red}
spec: {allowedNodeTypes: ["metal.*"], quotas: {claims: {soft: 1, hard: 2}}}
---
apiVersion: ingot.dev/v1
kind: IPPool
metadata: {name: rack1}
spec: {ranges: [{start: 192.0.2.10, end: 192.0.2.20}], prefix: 24}
---
apiVersion: ingot.dev/v1
kind: Claim
metadata: {name: web-1}
spec: {nodeTypeName: metal.small, userData: "#cloud-config"}
---
apiVersion: ingot.dev/v1
kind: ClaimSet
metadata: {name: workers, project: blue}
spec: {replicas: 2, template: {spec: {nodeTypeName: metal.small}}}
---
apiVersion: ingot.dev/v1
kind: Secret
metadata: {name: ud, project: red}
stringData: {userData: "#cloud-config"}
`;

describe('tenancy manifests', () => {
  it('reads every tenancy kind, keeping metadata.project', () => {
    const m = parseManifests(TENANCY, 't.yaml');
    expect(m.map((x) => [x.kind, x.name, x.project])).toEqual([
      ['OSImage', 'ubuntu', undefined],
      ['NodeType', 'metal.small', undefined],
      ['Project', 'red', undefined],
      ['IPPool', 'rack1', undefined],
      ['Claim', 'web-1', undefined],
      ['ClaimSet', 'workers', 'blue'],
      ['Secret', 'ud', 'red'],
    ]);
  });

  it('names bad fields of the new kinds, and refuses metadata.project on platform kinds', () => {
    const bad = `apiVersion: ingot.dev/v1
kind: OSImage
metadata: {name: weak, project: red}
spec: {url: "https://x/y", checksum: "abc", checksumType: md5, format: raw}
---
apiVersion: ingot.dev/v1
kind: Claim
metadata: {name: c1}
spec: {nodeType: metal.small}
---
apiVersion: ingot.dev/v1
kind: NodeType
metadata: {name: Bad_Name}
spec: {selector: {}, osImageName: ubuntu}
`;
    let message = '';
    try {
      parseManifests(bad, 'b.yaml');
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain('osimage/weak: metadata.project: OSImage objects belong to the platform');
    expect(message).toMatch(/osimage\/weak: spec\.checksumType: must be one of sha256, sha512/);
    expect(message).toMatch(/claim\/c1: spec\.nodeType: unknown field "nodeType"/);
    expect(message).toMatch(/claim\/c1: spec\.nodeTypeName: is required/);
    expect(message).toContain('metadata.name "Bad_Name" is not a node type name');
    expect(message).toContain('nothing was applied');
  });

  it('the same name in two projects is two objects; twice in one project is refused', () => {
    const two = `apiVersion: ingot.dev/v1
kind: Claim
metadata: {name: c1, project: red}
spec: {nodeTypeName: a}
---
apiVersion: ingot.dev/v1
kind: Claim
metadata: {name: c1, project: blue}
spec: {nodeTypeName: a}
`;
    expect(parseManifests(two, 'x')).toHaveLength(2);
    expect(() => parseManifests(two.replace('project: blue', 'project: red'), 'x')).toThrow(/claim\/red\/c1 is also defined in document 1/);
  });

  it('a kind the command does not take is named', () => {
    expect(() => parseManifests(TENANCY, 't.yaml', ['Host'])).toThrow(/kind "OSImage" cannot be applied here; use one of Host/);
  });
});

describe('the project of project commands', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ingot-project-'));
  const config = join(dir, 'config.json');
  writeFileSync(config, JSON.stringify({ server: 'http://127.0.0.1:1', token: 't', project: 'saved' }));
  const env = { INGOT_CONFIG: config } as NodeJS.ProcessEnv;

  it('--project wins, then INGOT_PROJECT, then the login default for the same server', () => {
    expect(resolveProject('flag', { ...env, INGOT_PROJECT: 'envp' })).toBe('flag');
    expect(resolveProject(undefined, { ...env, INGOT_PROJECT: 'envp' })).toBe('envp');
    expect(resolveProject(undefined, env)).toBe('saved');
    expect(resolveProject(undefined, { ...env, INGOT_SERVER: 'http://127.0.0.1:1/' })).toBe('saved');
  });

  it('the saved default is not used for another server, and no project is a clear error', () => {
    expect(() => resolveProject(undefined, { ...env, INGOT_SERVER: 'http://other:1' })).toThrow(
      'no project given: use --project PROJECT, set INGOT_PROJECT, or save a default with `ingot login --server URL --token TOKEN --project PROJECT`',
    );
    expect(() => resolveProject(undefined, { INGOT_CONFIG: join(dir, 'none.json') } as NodeJS.ProcessEnv)).toThrow(/no project given/);
    expect(() => resolveProject('Red Team', env)).toThrow('project "Red Team" (from --project) is not a project name');
  });
});
