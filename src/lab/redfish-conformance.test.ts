// Crawls the lab's Redfish tree from the service root, as DMTF's Redfish Service Validator
// does, and validates every resource against the published DMTF JSON schema of the version its
// `@odata.type` declares (test/fixtures/redfish-schemas, loaded offline; see the README there):
// required properties present, no property the schema does not define, links named as the
// schema names them, values of the right type and enum.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import AjvModule, { type ErrorObject } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LabHarness } from './lab-test-harness.js';
import { PERSONALITIES } from './personality.js';

// ajv and ajv-formats are CommonJS with a `default` export; under NodeNext the default import is the module.
const Ajv = ((AjvModule as unknown as { default?: unknown }).default ?? AjvModule) as typeof AjvModule.default;
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as typeof addFormatsModule.default;
type AjvInstance = InstanceType<typeof Ajv>;

const SCHEMA_DIR = join(import.meta.dirname, '../../test/fixtures/redfish-schemas');
const DMTF = 'http://redfish.dmtf.org/schemas/v1/';

/** Collects external `$ref`s: schema URL -> the definitions referenced in it. */
function collectRefs(value: unknown, out: Map<string, Set<string>>): void {
  if (Array.isArray(value)) for (const v of value) collectRefs(v, out);
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k === '$ref' && typeof v === 'string' && /^https?:/.test(v)) {
        const [url, fragment] = v.split('#') as [string, string | undefined];
        const defs = out.get(url) ?? new Set<string>();
        const name = /^\/definitions\/([^/]+)$/.exec(fragment ?? '')?.[1];
        if (name) defs.add(name);
        out.set(url, defs);
      } else collectRefs(v, out);
    }
  }
}

/** Every DMTF schema file in the fixtures, plus "accept anything" for schemas referenced but not kept. */
interface DmtfSchemas {
  ajv: AjvInstance;
  /** URLs of the schema files kept (not the stand-ins). */
  files: Set<string>;
}

async function loadDmtfSchemas(): Promise<DmtfSchemas> {
  // Redfish schemas carry their own $schema (redfish-schema-v1.json, a superset of draft-04
  // with readonly, longDescription…); the structural keywords are draft-07 compatible.
  const ajv = new Ajv({ allErrors: true, strict: false, unicodeRegExp: false, validateSchema: false });
  addFormats(ajv);
  const ids = new Set<string>();
  const refs = new Map<string, Set<string>>();
  for (const f of (await readdir(SCHEMA_DIR)).filter((f) => f.endsWith('.json'))) {
    const schema = JSON.parse(await readFile(join(SCHEMA_DIR, f), 'utf8')) as Record<string, unknown>;
    delete schema.$schema;
    // Each file is registered under its published URL (odata-v4.json is DMTF's copy of
    // odata.v4_0_5.json and keeps that file's $id, so the $id alone would clash).
    schema.$id = `${DMTF}${f}`;
    ids.add(String(schema.$id));
    collectRefs(schema, refs);
    ajv.addSchema(schema);
  }
  for (const [url, defs] of refs) {
    if (!ids.has(url)) ajv.addSchema({ $id: url, definitions: Object.fromEntries([...defs].map((d) => [d, {}])) });
  }
  return { ajv, files: ids };
}

/** The schema URL of a resource's declared type: `#Ns.vX_Y_Z.Type` or `#NsCollection.NsCollection`. */
function schemaRefOf(odataType: string): string | undefined {
  const m = /^#([A-Za-z]+)(?:\.(v\d+_\d+_\d+))?\.([A-Za-z]+)$/.exec(odataType);
  if (!m) return undefined;
  const [, ns, version, type] = m;
  return `${DMTF}${ns}${version ? `.${version}` : ''}.json#/definitions/${type}`;
}

function collectLinks(value: unknown, out: Set<string>): void {
  if (Array.isArray(value)) for (const v of value) collectLinks(v, out);
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k === '@odata.id' && typeof v === 'string' && !v.includes('#')) out.add(v);
      else if (k === 'target' || k === 'TaskMonitor') continue;
      else collectLinks(v, out);
    }
  }
}

function hasFile(ids: Set<string>, ref: string): boolean {
  return ids.has(ref.split('#')[0]!);
}

/** Ajv's errors, naming the offending property (ajv leaves it in params). */
function describeErrors(errors: ErrorObject[] | null | undefined): string {
  return [...new Set((errors ?? []).map((e) => {
    const extra = (e.params as { additionalProperty?: string }).additionalProperty;
    return `${e.instancePath || '/'} ${e.message ?? ''}${extra ? ` (${extra})` : ''}`;
  }))].join('; ');
}

/** Crawls from the service root as system `i`; returns the failures and what was visited. */
async function crawlAndValidate(h: LabHarness, { ajv, files }: DmtfSchemas, i = 0): Promise<{ failures: string[]; seen: Set<string>; types: Set<string> }> {
  const seen = new Set<string>();
  const types = new Set<string>();
  const queue = ['/redfish/v1/'];
  const failures: string[] = [];
  while (queue.length > 0) {
    const uri = queue.shift()!;
    if (seen.has(uri)) continue;
    seen.add(uri);
    const r = await h.as(i, 'GET', uri);
    if (r.status !== 200) {
      failures.push(`${uri}: HTTP ${r.status}`);
      continue;
    }
    if (r.headers['odata-version'] !== '4.0') failures.push(`${uri}: OData-Version header is ${String(r.headers['odata-version'])}`);
    if (!r.headers.etag) failures.push(`${uri}: no ETag`);
    const body = r.body as Record<string, unknown>;
    if (body['@odata.id'] !== uri && `${String(body['@odata.id'])}/` !== uri) failures.push(`${uri}: @odata.id is ${String(body['@odata.id'])}`);
    const type = String(body['@odata.type'] ?? '');
    const ref = schemaRefOf(type);
    if (!ref || !hasFile(files, ref)) {
      failures.push(`${uri}: no DMTF schema file for @odata.type "${type}"`);
    } else {
      types.add(type);
      const validate = ajv.getSchema(ref);
      if (!validate) failures.push(`${uri}: ${ref} not found in its schema file`);
      else if (!validate(body)) failures.push(`${uri} (${type}): ${describeErrors(validate.errors)}`);
    }
    if (Array.isArray(body.Members) && body['Members@odata.count'] !== body.Members.length) failures.push(`${uri}: Members@odata.count mismatch`);
    const links = new Set<string>();
    collectLinks(body, links);
    for (const l of links) if (!seen.has(l)) queue.push(l);
  }
  return { failures, seen, types };
}

describe('Redfish conformance with the DMTF schemas', () => {
  let h: LabHarness;
  let schemas: DmtfSchemas;
  let ajv: AjvInstance;
  beforeAll(async () => {
    h = await LabHarness.start({ hosts: 2 });
    schemas = await loadDmtfSchemas();
    ajv = schemas.ajv;
    // Give the crawl something in every optional place: media inserted, a task, a session.
    const id = h.sys(0);
    await h.as(0, 'POST', `/redfish/v1/Managers/${id}/VirtualMedia/Cd/Actions/VirtualMedia.InsertMedia`, { body: { Image: 'http://i.example/x.iso' } });
    await h.as(0, 'POST', `/redfish/v1/Systems/${id}/Actions/ComputerSystem.Reset`, { body: { ResetType: 'On' } });
    await h.request('POST', '/redfish/v1/SessionService/Sessions', { body: { UserName: 'admin', Password: h.creds(0).password } });
  });
  afterAll(async () => {
    await h.stop();
  });

  it('the validator catches what it must: a missing required property, an unknown one, a misnamed link', () => {
    const validate = ajv.getSchema(`${DMTF}ServiceRoot.v1_20_0.json#/definitions/ServiceRoot`)!;
    const good = { '@odata.id': '/redfish/v1/', '@odata.type': '#ServiceRoot.v1_20_0.ServiceRoot', Id: 'RootService', Name: 'Root', Links: { Sessions: { '@odata.id': '/redfish/v1/SessionService/Sessions' } } };
    expect(validate(good), ajv.errorsText(validate.errors)).toBe(true);
    expect(validate({ ...good, TaskService: { '@odata.id': '/redfish/v1/TaskService' } })).toBe(false);
    const { Links: _links, ...noLinks } = good;
    expect(validate(noLinks)).toBe(false);
    const account = ajv.getSchema(`${DMTF}ManagerAccount.v1_14_1.json#/definitions/ManagerAccount`)!;
    expect(account({ '@odata.id': '/a', '@odata.type': '#ManagerAccount.v1_14_1.ManagerAccount', Id: '1', Name: 'a', UserName: 'u', RoleId: 'Administrator' })).toBe(false);
  });

  it('every resource reachable from the service root validates against the schema it declares', async () => {
    const { failures, seen, types } = await crawlAndValidate(h, schemas);
    expect(failures).toEqual([]);
    // The crawl must have reached the interesting parts of the tree, or it proves nothing.
    expect(seen.size).toBeGreaterThan(30);
    const namespaces = new Set([...types].map((t) => t.slice(1).split('.')[0]));
    for (const ns of ['ServiceRoot', 'ComputerSystem', 'Manager', 'VirtualMedia', 'Bios', 'Drive', 'EthernetInterface', 'Session', 'Task', 'TaskService', 'UpdateService', 'ManagerAccount', 'SoftwareInventory', 'ComputerSystemCollection']) {
      expect(namespaces, ns).toContain(ns);
    }
  });

  it('error responses follow the Redfish error format', async () => {
    const validate = ajv.getSchema(`${DMTF}redfish-error.v1_0_2.json#/definitions/RedfishError`)!;
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
    expect(validate({ error: { code: 'oops' } })).toBe(false);
  });
});

/**
 * Deviations a personality reproduces on purpose. The minimal BMC has no session service at
 * all, so its service root cannot carry the Links.Sessions the schema requires (as on the
 * small BMCs it imitates); everything else it serves must still validate.
 */
const KNOWN_DEVIATIONS: Partial<Record<(typeof PERSONALITIES)[number], string[]>> = {
  minimal: ["/redfish/v1/ (#ServiceRoot.v1_20_0.ServiceRoot): /Links must have required property 'Sessions'"],
};

describe.each(PERSONALITIES.filter((p) => p !== 'standard'))('Redfish conformance of the %s personality', (name) => {
  it('every resource reachable from the service root validates against the schema it declares (but for its known deviations)', async () => {
    const h = await LabHarness.start({ hosts: 1, personality: name });
    try {
      const schemas = await loadDmtfSchemas();
      const { failures, seen } = await crawlAndValidate(h, schemas);
      expect(failures).toEqual(KNOWN_DEVIATIONS[name] ?? []);
      expect(seen.size).toBeGreaterThan(20);
    } finally {
      await h.stop();
    }
  });
});
