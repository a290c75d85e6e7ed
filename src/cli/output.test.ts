import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import type { Host } from '../model/host.js';
import { describeHost, eventsTable, formatAge, hostsTable, parseOutputFormat, render, renderTable } from './output.js';

const NOW = Date.parse('2026-03-01T12:00:00Z');

function host(name: string, state: string, extra: Partial<Host['status']> = {}, createdAt = '2026-03-01T11:58:00Z'): Host {
  return {
    apiVersion: 'ingot.dev/v1',
    kind: 'Host',
    metadata: { name, uid: 'u', labels: { rack: 'r1' }, annotations: {}, resourceVersion: '3', createdAt, updatedAt: createdAt },
    spec: { bmc: { address: `fake://${name}`, credentialsName: 'bmc' }, online: true },
    status: { provisioning: { state: state as Host['status']['provisioning']['state'] }, poweredOn: true, errorType: '', errorMessage: '', errorCount: 0, operationHistory: {}, conditions: [], ...extra },
  };
}

describe('output', () => {
  it('pads table columns to the widest cell, three spaces apart, with no trailing spaces', () => {
    expect(renderTable(['NAME', 'STATE'], [['a', 'available'], ['longer-name', 'x']])).toBe('NAME          STATE\na             available\nlonger-name   x\n');
  });

  it('shows hosts as NAME STATE POWER ERROR AGE', () => {
    const text = hostsTable([host('r1-n07', 'available'), host('r1-n08', 'error', { poweredOn: false, errorType: 'inspection' }, '2026-02-27T12:00:00Z')], NOW);
    const lines = text.trimEnd().split('\n');
    expect(lines[0]!.split(/\s+/)).toEqual(['NAME', 'STATE', 'POWER', 'ERROR', 'AGE']);
    expect(lines[1]!.split(/\s+/)).toEqual(['r1-n07', 'available', 'on', '2m']);
    expect(lines[2]!.split(/\s+/)).toEqual(['r1-n08', 'error', 'off', 'inspection', '2d']);
  });

  it('formats ages in the largest whole unit', () => {
    expect(formatAge('2026-03-01T11:59:18Z', NOW)).toBe('42s');
    expect(formatAge('2026-03-01T09:00:00Z', NOW)).toBe('3h');
    expect(formatAge('garbage', NOW)).toBe('');
    expect(formatAge('2026-03-01T12:00:05Z', NOW)).toBe('0s');
  });

  it('describes a host with its error, progress and labels', () => {
    const text = describeHost(host('n1', 'error', { errorType: 'provisioning', errorMessage: 'digest mismatch', progress: { step: 'deploy', percent: 40 } }), NOW);
    expect(text).toMatch(/^Name:\s+n1$/m);
    expect(text).toMatch(/^Error:\s+provisioning: digest mismatch$/m);
    expect(text).toMatch(/^Progress:\s+deploy 40%$/m);
    expect(text).toMatch(/^Labels:\s+rack=r1$/m);
  });

  it('lists events with their transition', () => {
    const text = eventsTable([{ id: 1, type: 'Normal', reason: 'StateChanged', message: 'registered\nok', fromState: 'registering', toState: 'inspecting', createdAt: '2026-03-01T11:59:00Z' }], NOW);
    expect(text.split('\n')[1]).toMatch(/^1m\s+Normal\s+StateChanged\s+registering -> inspecting\s+registered ok$/);
  });

  it('renders json and yaml as the API objects, round-tripping', () => {
    const h = host('n1', 'available');
    expect(JSON.parse(render(h, 'json', () => 'no'))).toEqual(h);
    expect(YAML.parse(render(h, 'yaml', () => 'no'))).toEqual(h);
    expect(render(h, 'table', () => 'the table')).toBe('the table');
  });

  it('rejects unknown output formats with the list of known ones', () => {
    expect(parseOutputFormat(undefined)).toBe('table');
    expect(parseOutputFormat('YAML')).toBe('yaml');
    expect(() => parseOutputFormat('xml')).toThrow('-o xml: unknown output format; use one of table, json, yaml');
  });
});
