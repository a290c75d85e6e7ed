// A small scriptable Redfish service for the driver's unit tests: real HTTP(S) on 127.0.0.1,
// sessions and Basic auth, ETags, actions, and hooks to inject faults (503, 429, 202 tasks,
// 412). It is NOT the lab (src/lab): it models one system just well enough to test the
// client's protocol handling, and counts every request it serves.
import { createHash, randomBytes } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';

export interface MiniRequest {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: unknown;
  auth: 'session' | 'basic' | 'none';
}

export interface MiniResponse {
  status: number;
  headers?: Record<string, string>;
  body?: unknown;
  /** Sent as is instead of `body` (HTML pages, truncated JSON). */
  raw?: string;
}

export type Hook = (req: MiniRequest) => MiniResponse | undefined;

export interface MiniRedfishOptions {
  tls?: { key: string; cert: string };
  username?: string;
  password?: string;
  /** false: the Sessions collection answers 405, as on services without session support. */
  sessions?: boolean;
  /** false: the service root names no SessionService and no Links.Sessions. */
  advertiseSessions?: boolean;
  /** true: session creation answers 401 whatever the credentials (Basic still works). */
  refuseSessions?: boolean;
  /** Extra members of /redfish/v1/Systems (to test the "several systems" refusal). */
  extraSystems?: number;
  /** Page the EthernetInterfaces collection one member per page (nextLink). */
  pageNics?: boolean;
}

type Json = Record<string, unknown>;

export function defaultResources(opts: MiniRedfishOptions = {}): Map<string, Json> {
  const r = new Map<string, Json>();
  const sys = '/redfish/v1/Systems/1';
  r.set('/redfish/v1', {
    '@odata.id': '/redfish/v1', Id: 'RootService', RedfishVersion: '1.15.0',
    Systems: { '@odata.id': '/redfish/v1/Systems' }, Managers: { '@odata.id': '/redfish/v1/Managers' },
    UpdateService: { '@odata.id': '/redfish/v1/UpdateService' },
    ...(opts.advertiseSessions === false
      ? {}
      : { SessionService: { '@odata.id': '/redfish/v1/SessionService' }, Links: { Sessions: { '@odata.id': '/redfish/v1/SessionService/Sessions' } } }),
  });
  const systems = [{ '@odata.id': sys }];
  for (let i = 0; i < (opts.extraSystems ?? 0); i++) systems.push({ '@odata.id': `/redfish/v1/Systems/${i + 2}` });
  r.set('/redfish/v1/Systems', { Members: systems, 'Members@odata.count': systems.length });
  r.set(sys, {
    '@odata.id': sys, Id: '1', Name: 'mini', UUID: '4C4C4544-0000-1111-2222-333344445555', Manufacturer: 'Mini',
    Model: 'M1', SerialNumber: 'SN1', PowerState: 'Off', BiosVersion: '1.2.3',
    ProcessorSummary: { Count: 2, Model: 'Mini CPU' }, MemorySummary: { TotalSystemMemoryGiB: 16 },
    Boot: {
      BootSourceOverrideEnabled: 'Disabled', BootSourceOverrideTarget: 'None', BootSourceOverrideMode: 'UEFI',
      'BootSourceOverrideTarget@Redfish.AllowableValues': ['None', 'Pxe', 'Cd', 'Hdd', 'UefiHttp'],
    },
    Processors: { '@odata.id': `${sys}/Processors` }, Storage: { '@odata.id': `${sys}/Storage` },
    EthernetInterfaces: { '@odata.id': `${sys}/EthernetInterfaces` }, Bios: { '@odata.id': `${sys}/Bios` },
    SecureBoot: { '@odata.id': `${sys}/SecureBoot` },
    Links: { ManagedBy: [{ '@odata.id': '/redfish/v1/Managers/bmc' }] },
    Actions: { '#ComputerSystem.Reset': { target: `${sys}/Actions/ComputerSystem.Reset`,
      'ResetType@Redfish.AllowableValues': ['On', 'ForceOff', 'GracefulShutdown', 'GracefulRestart', 'ForceRestart'] } },
  });
  r.set(`${sys}/Processors`, { Members: [{ '@odata.id': `${sys}/Processors/0` }, { '@odata.id': `${sys}/Processors/1` }] });
  for (const i of [0, 1]) r.set(`${sys}/Processors/${i}`, { Id: `${i}`, ProcessorType: 'CPU', Model: 'Mini CPU', TotalCores: 8, TotalThreads: 16, MaxSpeedMHz: 3000, InstructionSet: 'x86-64' });
  r.set(`${sys}/Storage`, { Members: [{ '@odata.id': `${sys}/Storage/1` }] });
  r.set(`${sys}/Storage/1`, { Id: '1', Drives: [{ '@odata.id': `${sys}/Storage/1/Drives/0` }] });
  r.set(`${sys}/Storage/1/Drives/0`, { Id: '0', Name: 'disk0', CapacityBytes: 500107862016, MediaType: 'HDD', SerialNumber: 'D0', Model: 'Spinny',
    Identifiers: [{ DurableNameFormat: 'NAA', DurableName: '5000C500A1B2C3D4' }] });
  const nics = ['52:54:00:00:00:01', '52:54:00:00:00:02'];
  nics.forEach((mac, i) => r.set(`${sys}/EthernetInterfaces/${i}`, { Id: `nic${i}`, MACAddress: mac.toUpperCase(), SpeedMbps: 10000, LinkStatus: 'LinkUp' }));
  if (opts.pageNics) {
    r.set(`${sys}/EthernetInterfaces`, { Members: [{ '@odata.id': `${sys}/EthernetInterfaces/0` }], 'Members@odata.nextLink': `${sys}/EthernetInterfaces?page=2` });
    r.set(`${sys}/EthernetInterfaces?page=2`, { Members: [{ '@odata.id': `${sys}/EthernetInterfaces/1` }] });
  } else {
    r.set(`${sys}/EthernetInterfaces`, { Members: nics.map((_, i) => ({ '@odata.id': `${sys}/EthernetInterfaces/${i}` })) });
  }
  r.set(`${sys}/Bios`, { Id: 'Bios', Attributes: { BootMode: 'Uefi', ProcTurboMode: 'Enabled' },
    '@Redfish.Settings': { SettingsObject: { '@odata.id': `${sys}/Bios/Settings` } },
    Actions: { '#Bios.ResetBios': { target: `${sys}/Bios/Actions/Bios.ResetBios` } } });
  r.set(`${sys}/Bios/Settings`, { Id: 'Settings', Attributes: {} });
  r.set(`${sys}/SecureBoot`, { Id: 'SecureBoot', SecureBootEnable: false, SecureBootCurrentBoot: 'Disabled' });
  r.set('/redfish/v1/Managers/bmc', { Id: 'bmc', FirmwareVersion: '9.9', VirtualMedia: { '@odata.id': '/redfish/v1/Managers/bmc/VirtualMedia' } });
  r.set('/redfish/v1/Managers/bmc/VirtualMedia', { Members: [{ '@odata.id': '/redfish/v1/Managers/bmc/VirtualMedia/Floppy' }, { '@odata.id': '/redfish/v1/Managers/bmc/VirtualMedia/Cd' }] });
  r.set('/redfish/v1/Managers/bmc/VirtualMedia/Floppy', { '@odata.id': '/redfish/v1/Managers/bmc/VirtualMedia/Floppy', Id: 'Floppy', MediaTypes: ['Floppy', 'USBStick'], Inserted: false, Image: null });
  r.set('/redfish/v1/Managers/bmc/VirtualMedia/Cd', { '@odata.id': '/redfish/v1/Managers/bmc/VirtualMedia/Cd', Id: 'Cd', MediaTypes: ['CD', 'DVD'], Inserted: false, Image: null,
    Actions: { '#VirtualMedia.InsertMedia': { target: '/redfish/v1/Managers/bmc/VirtualMedia/Cd/Actions/VirtualMedia.InsertMedia' },
      '#VirtualMedia.EjectMedia': { target: '/redfish/v1/Managers/bmc/VirtualMedia/Cd/Actions/VirtualMedia.EjectMedia' } } });
  r.set('/redfish/v1/UpdateService', { FirmwareInventory: { '@odata.id': '/redfish/v1/UpdateService/FirmwareInventory' } });
  r.set('/redfish/v1/UpdateService/FirmwareInventory', { Members: [{ '@odata.id': '/redfish/v1/UpdateService/FirmwareInventory/BIOS' }] });
  r.set('/redfish/v1/UpdateService/FirmwareInventory/BIOS', { Id: 'BIOS', Name: 'System BIOS', Version: '1.2.3' });
  return r;
}

function etagOf(resource: Json): string {
  return `W/"${createHash('sha256').update(JSON.stringify(resource)).digest('hex').slice(0, 16)}"`;
}

function merge(into: Json, patch: Json): void {
  for (const [k, v] of Object.entries(patch)) {
    if (v && typeof v === 'object' && !Array.isArray(v) && into[k] && typeof into[k] === 'object') merge(into[k] as Json, v as Json);
    else into[k] = v;
  }
}

export class MiniRedfish {
  readonly resources: Map<string, Json>;
  readonly log: MiniRequest[] = [];
  readonly hooks: Hook[] = [];
  readonly sessions = new Map<string, string>(); // token -> session path
  username: string;
  password: string;
  url = '';
  readonly #opts: MiniRedfishOptions;
  readonly #server: Server;

  constructor(opts: MiniRedfishOptions = {}) {
    this.#opts = opts;
    this.username = opts.username ?? 'admin';
    this.password = opts.password ?? 'secret';
    this.resources = defaultResources(opts);
    const handler = (req: IncomingMessage, res: ServerResponse) => void this.#handle(req, res);
    this.#server = opts.tls ? createHttpsServer({ key: opts.tls.key, cert: opts.tls.cert }, handler) : createHttpServer(handler);
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    const port = (this.#server.address() as AddressInfo).port;
    this.url = `${this.#opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
    return this;
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  /** Requests served matching method and path (prefix match when `path` ends with *). */
  count(method: string, path: string): number {
    return this.log.filter((r) => r.method === method && (path.endsWith('*') ? r.path.startsWith(path.slice(0, -1)) : r.path === path)).length;
  }

  /** Answers the next `times` requests matching method+path with `response`, then stops. */
  failNext(method: string, path: string, times: number, response: MiniResponse): void {
    let left = times;
    this.hooks.push((r) => (left > 0 && r.method === method && r.path === path ? (left--, response) : undefined));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = undefined;
    }
    const path = req.url ?? '/';
    const token = req.headers['x-auth-token'];
    const basic = req.headers['authorization'];
    let auth: MiniRequest['auth'] = 'none';
    if (typeof token === 'string' && this.sessions.has(token)) auth = 'session';
    else if (typeof basic === 'string' && basic === `Basic ${Buffer.from(`${this.username}:${this.password}`).toString('base64')}`) auth = 'basic';
    const mreq: MiniRequest = { method: req.method ?? 'GET', path, headers: req.headers, body, auth };
    this.log.push(mreq);
    let out: MiniResponse | undefined;
    for (const hook of this.hooks) {
      out = hook(mreq);
      if (out) break;
    }
    out ??= this.#default(mreq);
    const headers = { 'content-type': 'application/json', ...out.headers };
    res.writeHead(out.status, headers);
    res.end(out.raw ?? (out.body === undefined ? undefined : JSON.stringify(out.body)));
  }

  #error(status: number, message: string): MiniResponse {
    return { status, body: { error: { code: 'Base.1.0.GeneralError', message: 'error', '@Message.ExtendedInfo': [{ Message: message }] } } };
  }

  #default(r: MiniRequest): MiniResponse {
    const sessionsPath = '/redfish/v1/SessionService/Sessions';
    if (r.method === 'GET' && r.path === '/redfish/v1') return { status: 200, body: this.resources.get('/redfish/v1') };
    if (r.path === sessionsPath && r.method === 'POST') {
      if (this.#opts.sessions === false) return this.#error(405, 'sessions not supported');
      if (this.#opts.refuseSessions) return this.#error(401, 'sessions are not allowed for this account');
      const b = r.body as { UserName?: string; Password?: string } | undefined;
      if (b?.UserName !== this.username || b?.Password !== this.password) return this.#error(401, 'bad credentials');
      const t = randomBytes(12).toString('hex');
      const p = `${sessionsPath}/${t.slice(0, 8)}`;
      this.sessions.set(t, p);
      return { status: 201, headers: { 'x-auth-token': t, location: p }, body: { '@odata.id': p, Id: t.slice(0, 8) } };
    }
    if (r.auth === 'none') return this.#error(401, 'authentication required');
    if (r.method === 'DELETE' && r.path.startsWith(`${sessionsPath}/`)) {
      for (const [t, p] of this.sessions) if (p === r.path) this.sessions.delete(t);
      return { status: 204 };
    }
    const resource = this.resources.get(r.path);
    if (r.method === 'GET') return resource ? { status: 200, headers: { etag: etagOf(resource) }, body: resource } : this.#error(404, 'no such resource');
    if (r.method === 'PATCH') {
      if (!resource) return this.#error(404, 'no such resource');
      const ifMatch = r.headers['if-match'];
      if (typeof ifMatch === 'string' && ifMatch !== etagOf(resource)) return this.#error(412, 'ETag does not match');
      merge(resource, r.body as Json);
      return { status: 204 };
    }
    if (r.method === 'POST') return this.#action(r);
    return this.#error(405, 'method not allowed');
  }

  #action(r: MiniRequest): MiniResponse {
    const body = (r.body ?? {}) as Json;
    const sys = this.resources.get('/redfish/v1/Systems/1')!;
    if (r.path === '/redfish/v1/Systems/1/Actions/ComputerSystem.Reset') {
      const type = body['ResetType'];
      const allowed = (sys['Actions'] as Json)['#ComputerSystem.Reset'] as Json;
      if (!(allowed['ResetType@Redfish.AllowableValues'] as string[]).includes(type as string)) return this.#error(400, `ResetType ${String(type)} not allowed`);
      if (type === 'On' || type === 'ForceOn' || type === 'PowerCycle' || type === 'ForceRestart' || type === 'GracefulRestart') sys['PowerState'] = 'On';
      else sys['PowerState'] = 'Off';
      return { status: 204 };
    }
    const cd = this.resources.get('/redfish/v1/Managers/bmc/VirtualMedia/Cd')!;
    if (r.path.endsWith('/Actions/VirtualMedia.InsertMedia')) {
      if (cd['Inserted']) return this.#error(409, 'media already inserted');
      cd['Image'] = body['Image'];
      cd['Inserted'] = true;
      return { status: 204 };
    }
    if (r.path.endsWith('/Actions/VirtualMedia.EjectMedia')) {
      cd['Image'] = null;
      cd['Inserted'] = false;
      return { status: 204 };
    }
    if (r.path.endsWith('/Actions/Bios.ResetBios')) {
      (this.resources.get('/redfish/v1/Systems/1/Bios')!['Attributes'] as Json)['ProcTurboMode'] = 'Enabled';
      return { status: 204 };
    }
    return this.#error(404, 'no such action');
  }
}
