// Crawls the lab's Redfish tree from the service root, as a Redfish validator does, and checks
// every resource against hand-reduced DMTF-style schemas (test/fixtures/redfish-schemas).
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import AjvModule from 'ajv';
import addFormatsModule from 'ajv-formats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LabHarness } from './lab-test-harness.js';

// ajv and ajv-formats are CommonJS with a `default` export; under NodeNext the default import is the module.
const Ajv = ((AjvModule as unknown as { default?: unknown }).default ?? AjvModule) as typeof AjvModule.default;
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as typeof addFormatsModule.default;

const SCHEMA_DIR = join(import.meta.dirname, '../../test/fixtures/redfish-schemas');

function collectLinks(value: unknown, out: Set<string>): void {
  if (Array.isArray(value)) for (const v of value) collectLinks(v, out);
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k === '@odata.id' && typeof v === 'string' && !v.includes('#')) out.add(v);
      else if (k === 'target' && typeof v === 'string') continue;
      else collectLinks(v, out);
    }
  }
}

describe('Redfish conformance (hand-reduced schemas)', () => {
  let h: LabHarness;
  let ajv: InstanceType<typeof Ajv>;
  beforeAll(async () => {
    h = await LabHarness.start({ hosts: 2 });
    ajv = new Ajv({ allErrors: true, strict: false });
    addFormats(ajv);
    for (const f of (await readdir(SCHEMA_DIR)).filter((f) => f.endsWith('.json'))) {
      ajv.addSchema(JSON.parse(await readFile(join(SCHEMA_DIR, f), 'utf8')));
    }
    // Give the crawl something in every optional place: media inserted, a task, a session.
    const id = h.sys(0);
    await h.as(0, 'POST', `/redfish/v1/Managers/${id}/VirtualMedia/Cd/Actions/VirtualMedia.InsertMedia`, { body: { Image: 'http://i.example/x.iso' } });
    await h.as(0, 'POST', `/redfish/v1/Systems/${id}/Actions/ComputerSystem.Reset`, { body: { ResetType: 'On' } });
    await h.request('POST', '/redfish/v1/SessionService/Sessions', { body: { UserName: 'admin', Password: h.creds(0).password } });
  });
  afterAll(async () => {
    await h.stop();
  });

  function schemaFor(body: Record<string, unknown>): string {
    const type = String(body['@odata.type'] ?? '');
    if (/Collection\.[A-Za-z]+Collection$/.test(type)) return 'Collection.json';
    const ns = type.slice(1).split('.')[0]!;
    const known = ['ServiceRoot', 'ComputerSystem', 'Manager', 'VirtualMedia', 'Bios', 'Drive', 'EthernetInterface', 'Session', 'Task'];
    return known.includes(ns) ? `${ns}.json` : 'Resource.json';
  }

  it('every resource reachable from the service root is valid and self-consistent', async () => {
    const seen = new Set<string>();
    const queue = ['/redfish/v1/'];
    const failures: string[] = [];
    const schemasUsed = new Set<string>();
    while (queue.length > 0) {
      const uri = queue.shift()!;
      if (seen.has(uri)) continue;
      seen.add(uri);
      const r = await h.as(0, 'GET', uri);
      if (r.status !== 200) {
        failures.push(`${uri}: HTTP ${r.status}`);
        continue;
      }
      expect(r.headers['odata-version']).toBe('4.0');
      expect(r.headers.etag).toBeTruthy();
      const body = r.body as Record<string, unknown>;
      if (body['@odata.id'] !== uri) failures.push(`${uri}: @odata.id is ${String(body['@odata.id'])}`);
      const schema = schemaFor(body);
      schemasUsed.add(schema);
      const validate = ajv.getSchema(schema)!;
      if (!validate(body)) failures.push(`${uri} (${schema}): ${ajv.errorsText(validate.errors)}`);
      if (Array.isArray(body.Members) && body['Members@odata.count'] !== body.Members.length) failures.push(`${uri}: Members@odata.count mismatch`);
      const links = new Set<string>();
      collectLinks(body, links);
      for (const l of links) if (!seen.has(l)) queue.push(l);
    }
    expect(failures).toEqual([]);
    // The crawl must have reached the interesting parts of the tree, or it proves nothing.
    expect(seen.size).toBeGreaterThan(30);
    for (const s of ['ServiceRoot.json', 'ComputerSystem.json', 'Manager.json', 'VirtualMedia.json', 'Bios.json', 'Drive.json', 'EthernetInterface.json', 'Session.json', 'Task.json', 'Collection.json']) {
      expect(schemasUsed, s).toContain(s);
    }
  });

  it('error responses follow the Redfish error format', async () => {
    const validate = ajv.getSchema('RedfishError.json')!;
    const responses = [
      await h.request('GET', '/redfish/v1/Systems'),
      await h.as(0, 'GET', '/redfish/v1/Nothing/Here'),
      await h.as(0, 'DELETE', '/redfish/v1/Systems'),
      await h.as(0, 'PATCH', `/redfish/v1/Systems/${h.sys(0)}`, { rawBody: 'nope' }),
      await h.as(0, 'PATCH', `/redfish/v1/Systems/${h.sys(0)}`, { body: { Boot: { BootSourceOverrideTarget: 'Floppy' }, Nope: 1 } }),
    ];
    for (const r of responses) {
      expect(r.status).toBeGreaterThanOrEqual(400);
      expect(validate(r.body), `${r.status} ${ajv.errorsText(validate.errors)}`).toBe(true);
    }
    const invalid = { error: { code: 'oops' } };
    expect(validate(invalid)).toBe(false);
  });
});
