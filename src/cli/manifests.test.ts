import { describe, expect, it } from 'vitest';
import { parseManifests } from './manifests.js';

const GOOD = `apiVersion: ingot.dev/v1
kind: Secret
metadata: {name: n1-bmc}
stringData: {username: admin, password: pw}
---
apiVersion: ingot.dev/v1
kind: Host
metadata:
  name: n1
  labels: {rack: r1}
spec:
  bmc: {address: "fake://n1", credentialsName: n1-bmc}
  online: true
---
`;

describe('parseManifests', () => {
  it('reads several documents, skipping empty ones, with their positions', () => {
    const m = parseManifests(GOOD, 'f.yaml');
    expect(m.map((x) => [x.kind, x.name, x.index, x.line])).toEqual([
      ['Secret', 'n1-bmc', 1, 1],
      ['Host', 'n1', 2, 6],
    ]);
  });

  it('accepts JSON', () => {
    const m = parseManifests(JSON.stringify({ apiVersion: 'ingot.dev/v1', kind: 'Host', metadata: { name: 'j1' }, spec: {} }), 'f.json');
    expect(m[0]!.name).toBe('j1');
  });

  it('reports malformed YAML with line and column and says nothing was applied', () => {
    const bad = GOOD + 'apiVersion: ingot.dev/v1\nkind: Host\nmetadata: {name: n2\nspec: {}\n';
    expect(() => parseManifests(bad, 'f.yaml')).toThrow(/^f\.yaml: invalid YAML at line \d+, column \d+: .+[\s\S]*nothing was applied/);
  });

  it('names an unknown field, its line, and the allowed ones', () => {
    const bad = GOOD.replace('  online: true', '  online: true\n  onlin: false');
    expect(() => parseManifests(bad, 'f.yaml')).toThrow(/document 2 \(line 6\), host\/n1: spec\.onlin: unknown field "onlin"; remove it or check its spelling \(allowed here: bmc, .*online.*\) \(line 14\)/);
  });

  it('checks apiVersion, kind and name before anything else', () => {
    expect(() => parseManifests('kind: Host\nmetadata: {name: a}\nspec: {}\n', 'f')).toThrow('apiVersion is missing; set apiVersion: ingot.dev/v1');
    expect(() => parseManifests('apiVersion: v1\nkind: Host\nmetadata: {name: a}\n', 'f')).toThrow('apiVersion "v1" is not supported');
    expect(() => parseManifests('apiVersion: ingot.dev/v1\nkind: Pod\nmetadata: {name: a}\n', 'f')).toThrow('kind "Pod" cannot be applied here; use one of Host, Secret');
    expect(() => parseManifests('apiVersion: ingot.dev/v1\nkind: Host\nmetadata: {name: Bad_Name}\nspec: {}\n', 'f')).toThrow('metadata.name "Bad_Name" is not a DNS label');
    expect(() => parseManifests(GOOD, 'f', ['Host'])).toThrow('kind "Secret" cannot be applied here; use one of Host');
  });

  it('reports every bad document at once, and duplicates', () => {
    const text = `${GOOD}apiVersion: ingot.dev/v1\nkind: Host\nmetadata: {name: n1}\nspec: {online: "yes"}\n---\napiVersion: ingot.dev/v1\nkind: Host\nmetadata: {name: n3}\nspec: {bootMode: BIOS}\n`;
    let message = '';
    try {
      parseManifests(text, 'f');
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toContain('spec.online: must be boolean');
    expect(message).toContain('spec.bootMode: must be one of UEFI, UEFISecureBoot, legacy');
  });

  it('decodes Kubernetes-style base64 data into stringData', () => {
    const m = parseManifests(`apiVersion: ingot.dev/v1\nkind: Secret\nmetadata: {name: s}\ndata: {password: ${Buffer.from('pw').toString('base64')}}\n`, 'f');
    expect(m[0]!.body).toMatchObject({ stringData: { password: 'pw' } });
    expect(m[0]!.body).not.toHaveProperty('data');
  });

  it('refuses an empty file', () => {
    expect(() => parseManifests('', 'f')).toThrow('f contains no documents; nothing was applied');
    expect(() => parseManifests('---\n---\n', 'f')).toThrow('contains no documents');
  });
});
