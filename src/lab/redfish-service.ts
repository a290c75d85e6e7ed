// The lab's Redfish service: one HTTPS server for every simulated BMC, routing by path.
//
// Credentials are per system, as if each machine had its own BMC behind one address:
// - /Systems/<id>, /Managers/<id>, /Chassis/<id> and everything below them need <id>'s
//   credentials (Basic, or a session created with them); another system's are a 401.
// - Service-wide resources (the Systems/Managers/Chassis collections, SessionService,
//   AccountService, TaskService, UpdateService) answer for the system the credentials belong
//   to: a collection lists only that system, Accounts/1 is its account, FirmwareInventory its
//   firmware, Tasks and Sessions only its own.
// Public, as DSP0266 requires: GET /redfish, /redfish/v1/, /redfish/v1/$metadata,
// /redfish/v1/odata, and POST to the Sessions collection (login).
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FaultBook } from './faults.js';
import type { LabFleet } from './lab-fleet.js';
import { BIOS_ATTRIBUTES, BOOT_MODES, BOOT_OVERRIDE_ENABLED, BOOT_TARGETS, RESET_TYPES, nameUuid, type ResetType, type SystemState } from './lab-model.js';
import {
  RedfishError,
  actionParameterMissing,
  actionParameterUnknown,
  actionParameterValueNotInList,
  errors,
  message,
  propertyValueFormatError,
  propertyValueTypeError,
  successMessage,
} from './redfish-messages.js';
import { planPatch, type Field } from './redfish-patch.js';
import * as R from './redfish-resources.js';
import { SessionStore, type LabSession } from './redfish-sessions.js';
import { handleAdminRequest } from './lab-admin.js';
import { RequestStats } from './request-stats.js';
import { LabVmError } from './vm/lab-vms.js';
import { personality, type Personality } from './personality.js';

export const DEFAULT_MAX_BODY_BYTES = 64 * 1024;
const REALM = 'Ingot Lab BMC';

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';

interface Principal {
  system: SystemState;
  session?: LabSession;
}

interface Ctx {
  req: IncomingMessage;
  path: string;
  params: Record<string, string>;
  /** The system named by the path ({sys}), or the principal's for service-wide resources. */
  system: SystemState;
  principal: Principal;
  body: unknown;
}

interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
  xml?: string;
}

type Handler = (ctx: Ctx) => Reply | Promise<Reply>;

interface Route {
  segments: string[];
  handlers: Partial<Record<Method, Handler>>;
  /** Methods served without authentication. */
  publicMethods?: Method[];
}

export interface RedfishServiceOptions {
  fleet: LabFleet;
  faults: FaultBook;
  tls: { cert: string; key: string };
  adminToken: string;
  host: string;
  port: number;
  maxBodyBytes?: number;
  now?: () => number;
  /** Counts the Redfish requests served (GET /lab/v1/stats); default a fresh counter. */
  stats?: RequestStats;
  /** Which BMC behaviour to reproduce (personality.ts); default standard. */
  personality?: Personality;
}

export interface RunningRedfishService {
  url: string;
  port: number;
  server: Server;
  sessions: SessionStore;
  stats: RequestStats;
  close(): Promise<void>;
}

function etagOf(body: unknown): string {
  return `"${createHash('sha256').update(JSON.stringify(body)).digest('base64url').slice(0, 22)}"`;
}

function sameSecret(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkImageUrl(v: string): string | undefined {
  try {
    const u = new URL(v);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return 'the image must be an http:// or https:// URL';
    return undefined;
  } catch {
    return 'not a URL';
  }
}

/** Runs an operation on a lab VM; its failures become Redfish errors that say what went wrong. */
async function onMachine<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    const status = err instanceof LabVmError ? err.status : 500;
    throw errors.general(status, (err as Error).message, status >= 500 ? 'See the VM\'s qemu.log in the lab data directory, then retry.' : 'Correct the request and resubmit it.');
  }
}

/** Validates action parameters: required ones present, no unknown ones, values of the right kind. */
function actionParams(action: string, body: unknown, spec: Record<string, Field & { required?: boolean }>): Record<string, unknown> {
  if (!isObject(body)) throw new RedfishError(400, [message('UnrecognizedRequestBody', 'The action body must be a JSON object.', { severity: 'Critical' })]);
  const problems = [];
  for (const key of Object.keys(body)) if (!spec[key]) problems.push(actionParameterUnknown(action, key));
  for (const [key, field] of Object.entries(spec)) {
    const v = body[key];
    if (v === undefined) {
      if (field.required) problems.push(actionParameterMissing(action, key));
      continue;
    }
    if (field.kind === 'enum' && (typeof v !== 'string' || !field.values.includes(v))) problems.push(actionParameterValueNotInList(action, key, v, field.values));
    if (field.kind === 'boolean' && typeof v !== 'boolean') problems.push(propertyValueTypeError(key, v, 'boolean'));
    if (field.kind === 'string') {
      if (typeof v !== 'string' || v.length > field.maxLength) problems.push(propertyValueTypeError(key, typeof v === 'string' ? v.slice(0, 32) : v, `string of at most ${field.maxLength} characters`));
      else {
        const why = field.check?.(v);
        if (why) problems.push(propertyValueFormatError(key, v.slice(0, 256), why));
      }
    }
  }
  if (problems.length > 0) throw new RedfishError(400, problems);
  return body;
}

export async function startRedfishService(opts: RedfishServiceOptions): Promise<RunningRedfishService> {
  const { fleet, faults } = opts;
  const now = opts.now ?? Date.now;
  const maxBody = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const sessions = new SessionStore(now);
  const stats = opts.stats ?? new RequestStats();
  const serviceUuid = nameUuid(`service:${fleet.dataDir}`);
  const persona = opts.personality ?? personality('standard');

  const routes: Route[] = [];
  // What the personality's BMC does not have is not served at all (404), as on that BMC.
  const absent = (pattern: string) =>
    (!persona.bios && pattern.startsWith('Systems/{sys}/Bios')) ||
    (!persona.sessions && pattern.startsWith('SessionService')) ||
    (!persona.mediaActions && pattern.startsWith('Managers/{sys}/VirtualMedia/{vm}/Actions/'));
  const route = (pattern: string, handlers: Route['handlers'], publicMethods?: Method[]) => {
    if (absent(pattern)) return;
    routes.push({ segments: pattern === '' ? [] : pattern.split('/'), handlers, ...(publicMethods ? { publicMethods } : {}) });
  };
  const json = (body: unknown, status = 200, headers?: Record<string, string>): Reply => ({ status, body, ...(headers ? { headers } : {}) });
  const notFound = (path: string): never => {
    throw errors.notFound(path);
  };

  // ---- service root and discovery ----
  route('', { GET: () => json(R.serviceRoot(serviceUuid, persona)) }, ['GET']);
  route('$metadata', { GET: () => ({ status: 200, xml: R.metadataXml() }) }, ['GET']);
  route('odata', { GET: () => json(R.odataServiceDocument(persona)) }, ['GET']);

  // ---- systems ----
  route('Systems', { GET: (c) => json(R.collection('ComputerSystemCollection', `${R.ROOT}/Systems`, 'Computer Systems', [R.sysPath(c.principal.system)])) });
  const systemFields: Record<string, Field> = {
    AssetTag: { kind: 'string', maxLength: 64 },
    Boot: {
      kind: 'object',
      fields: {
        BootSourceOverrideTarget: { kind: 'enum', values: BOOT_TARGETS },
        BootSourceOverrideEnabled: { kind: 'enum', values: BOOT_OVERRIDE_ENABLED },
        BootSourceOverrideMode: { kind: 'enum', values: BOOT_MODES },
      },
    },
  };
  route('Systems/{sys}', {
    GET: (c) => json(R.computerSystem(fleet, c.system, persona)),
    PATCH: async (c) => {
      const plan = planPatch(c.body, systemFields, R.computerSystem(fleet, c.system, persona));
      const s = c.system;
      const boot = plan.accepted.Boot as Record<string, string> | undefined;
      if (typeof plan.accepted.AssetTag === 'string') s.assetTag = plan.accepted.AssetTag;
      if (boot?.BootSourceOverrideTarget) s.boot.target = boot.BootSourceOverrideTarget as SystemState['boot']['target'];
      if (boot?.BootSourceOverrideEnabled) {
        s.boot.enabled = (persona.onceReadsContinuous && boot.BootSourceOverrideEnabled === 'Once' ? 'Continuous' : boot.BootSourceOverrideEnabled) as SystemState['boot']['enabled'];
      }
      if (boot?.BootSourceOverrideMode) s.boot.mode = boot.BootSourceOverrideMode as SystemState['boot']['mode'];
      fleet.save();
      const machines = fleet.machinesFor(s);
      if (boot && machines) await onMachine(() => machines.bootSettingsChanged(s));
      return patched(R.computerSystem(fleet, s, persona), plan.warnings);
    },
  });
  route('Systems/{sys}/Actions/ComputerSystem.Reset', {
    POST: async (c) => {
      const action = 'ComputerSystem.Reset';
      const p = actionParams(action, c.body, { ResetType: { kind: 'enum', values: RESET_TYPES, required: true } });
      // The "power actions silently ignored" fault: the BMC says yes and does nothing.
      if (faults.ignoresPower(c.system.id) || persona.ignoresReset) return { status: 204 };
      const machines = fleet.machinesFor(c.system);
      const outcome = machines ? await onMachine(() => machines.reset(c.system, p.ResetType as ResetType)) : fleet.reset(c.system, p.ResetType as ResetType);
      switch (outcome.kind) {
        case 'started':
          if (!persona.resetTask) return { status: 204 };
          // DSP0266 "Asynchronous operations": 202 with the task monitor in Location.
          return json(R.task(outcome.task, now()), 202, { Location: R.taskMonitorPath(outcome.task.id) });
        case 'done':
        case 'noop':
        case 'nmi':
          return { status: 204 };
        case 'refused':
          throw errors.general(409, outcome.reason, 'Power the system on first.');
      }
    },
  });
  route('Systems/{sys}/Processors', { GET: (c) => json(R.processors(c.system)) });
  route('Systems/{sys}/Processors/{id}', { GET: (c) => json(R.processor(c.system, c.params.id!) ?? notFound(c.path)) });
  route('Systems/{sys}/Memory', { GET: (c) => json(R.memories(c.system)) });
  route('Systems/{sys}/Memory/{id}', { GET: (c) => json(R.memory(c.system, c.params.id!) ?? notFound(c.path)) });
  route('Systems/{sys}/Storage', { GET: (c) => json(R.storages(c.system)) });
  route('Systems/{sys}/Storage/{storage}', { GET: (c) => json(c.params.storage === '1' ? R.storage(c.system) : notFound(c.path)) });
  route('Systems/{sys}/Storage/{storage}/Drives/{id}', {
    GET: (c) => json((c.params.storage === '1' ? R.drive(c.system, c.params.id!) : undefined) ?? notFound(c.path)),
  });
  route('Systems/{sys}/EthernetInterfaces', { GET: (c) => json(R.ethernetInterfaces(c.system)) });
  route('Systems/{sys}/EthernetInterfaces/{id}', { GET: (c) => json(R.ethernetInterface(c.system, c.params.id!) ?? notFound(c.path)) });

  // ---- BIOS: current settings are read-only; changes go to the settings object and apply on reset ----
  route('Systems/{sys}/Bios', { GET: (c) => json(R.bios(c.system)) });
  route('Systems/{sys}/Bios/Settings', {
    GET: (c) => json(R.biosSettings(c.system)),
    PATCH: (c) => {
      const attrFields: Record<string, Field> = {};
      for (const [name, def] of Object.entries(BIOS_ATTRIBUTES)) {
        if (def.readOnly) continue;
        attrFields[name] =
          def.type === 'Enumeration'
            ? { kind: 'enum', values: def.values ?? [] }
            : def.type === 'Integer'
              ? { kind: 'integer', min: def.min ?? 0, max: def.max ?? 2 ** 31 }
              : def.type === 'Boolean'
                ? { kind: 'boolean' }
                : { kind: 'string', maxLength: def.max ?? 256 };
      }
      // Read-only attributes are known (PropertyNotWritable), others unknown (PropertyUnknown).
      const current = { ...R.biosSettings(c.system), Attributes: { ...c.system.bios.current } };
      const plan = planPatch(c.body, { Attributes: { kind: 'object', fields: attrFields } }, current);
      const attrs = (plan.accepted.Attributes ?? {}) as Record<string, string | number | boolean>;
      c.system.bios.pending = { ...c.system.bios.pending, ...attrs };
      fleet.save();
      return patched(R.biosSettings(c.system), plan.warnings);
    },
  });
  route('Systems/{sys}/Bios/Actions/Bios.ResetBios', {
    POST: (c) => {
      actionParams('Bios.ResetBios', c.body ?? {}, {});
      fleet.resetBiosToDefaults(c.system);
      return { status: 204 };
    },
  });
  route('Systems/{sys}/SecureBoot', {
    GET: (c) => json(c.system.hardware.secureBootCapable ? R.secureBoot(c.system) : notFound(c.path)),
    PATCH: (c) => {
      if (!c.system.hardware.secureBootCapable) notFound(c.path);
      const plan = planPatch(c.body, { SecureBootEnable: { kind: 'boolean' } }, R.secureBoot(c.system));
      if (typeof plan.accepted.SecureBootEnable === 'boolean') c.system.secureBoot.enabled = plan.accepted.SecureBootEnable;
      fleet.save();
      return patched(R.secureBoot(c.system), plan.warnings);
    },
  });

  // ---- managers (one BMC per system, same id) and virtual media ----
  route('Managers', { GET: (c) => json(R.collection('ManagerCollection', `${R.ROOT}/Managers`, 'Managers', [R.mgrPath(c.principal.system)])) });
  route('Managers/{sys}', { GET: (c) => json(R.manager(c.system)) });
  route('Managers/{sys}/Actions/Manager.Reset', {
    POST: (c) => {
      actionParams('Manager.Reset', c.body ?? {}, { ResetType: { kind: 'enum', values: ['GracefulRestart', 'ForceRestart'] } });
      // A BMC reboot forgets its sessions.
      sessions.endAll(c.system.id);
      return { status: 204 };
    },
  });
  route('Managers/{sys}/VirtualMedia', { GET: (c) => json(R.virtualMediaCollection(c.system)) });
  const mediaFields: Record<string, Field> = {
    Image: { kind: 'string', maxLength: 2048, nullable: true, check: checkImageUrl },
    Inserted: { kind: 'boolean' },
    WriteProtected: { kind: 'boolean' },
  };
  const requireCd = (c: Ctx) => {
    if (c.params.vm !== 'Cd') notFound(c.path);
  };
  route('Managers/{sys}/VirtualMedia/{vm}', {
    GET: (c) => {
      requireCd(c);
      return json(R.virtualMedia(c.system, persona));
    },
    PATCH: async (c) => {
      requireCd(c);
      const plan = planPatch(c.body, mediaFields, R.virtualMedia(c.system, persona));
      const m = c.system.media;
      const a = plan.accepted;
      const machines = fleet.machinesFor(c.system);
      if (a.Image === null || a.Inserted === false) {
        if (machines) await onMachine(() => machines.ejectMedia(c.system));
        m.image = null;
        m.inserted = false;
      } else if (typeof a.Image === 'string') {
        if (machines) await onMachine(() => machines.insertMedia(c.system, a.Image as string));
        m.image = a.Image;
        m.inserted = true;
      }
      if (typeof a.WriteProtected === 'boolean') m.writeProtected = a.WriteProtected;
      fleet.save();
      return patched(R.virtualMedia(c.system, persona), plan.warnings);
    },
  });
  route('Managers/{sys}/VirtualMedia/{vm}/Actions/VirtualMedia.InsertMedia', {
    POST: async (c) => {
      requireCd(c);
      const p = actionParams('VirtualMedia.InsertMedia', c.body, {
        Image: { kind: 'string', maxLength: 2048, check: checkImageUrl, required: true },
        Inserted: { kind: 'boolean' },
        WriteProtected: { kind: 'boolean' },
        TransferProtocolType: { kind: 'enum', values: ['HTTP', 'HTTPS'] },
        TransferMethod: { kind: 'enum', values: ['Stream', 'Upload'] },
        UserName: { kind: 'string', maxLength: 256 },
        Password: { kind: 'string', maxLength: 256 },
      });
      // A lab VM's BMC fetches the image now, as real BMCs do; the answer waits for it.
      const machines = fleet.machinesFor(c.system);
      if (machines) {
        if (p.Inserted === false) await onMachine(() => machines.ejectMedia(c.system));
        else await onMachine(() => machines.insertMedia(c.system, p.Image as string));
      }
      // Inserting over an inserted image replaces it, as most BMCs do after an implicit eject.
      c.system.media = { image: p.Image as string, inserted: p.Inserted !== false, writeProtected: p.WriteProtected !== false };
      if (p.Inserted === false) c.system.media.image = null;
      fleet.save();
      return { status: 204 };
    },
  });
  route('Managers/{sys}/VirtualMedia/{vm}/Actions/VirtualMedia.EjectMedia', {
    POST: async (c) => {
      requireCd(c);
      actionParams('VirtualMedia.EjectMedia', c.body ?? {}, {});
      const machines = fleet.machinesFor(c.system);
      if (machines) await onMachine(() => machines.ejectMedia(c.system));
      c.system.media = { ...c.system.media, image: null, inserted: false };
      fleet.save();
      return { status: 204 };
    },
  });

  // ---- chassis ----
  route('Chassis', { GET: (c) => json(R.collection('ChassisCollection', `${R.ROOT}/Chassis`, 'Chassis', [R.chassisPath(c.principal.system)])) });
  route('Chassis/{sys}', { GET: (c) => json(R.chassis(fleet, c.system)) });

  // ---- sessions ----
  route('SessionService', {
    GET: (c) => json(R.sessionService(sessions.timeoutSeconds(c.system.id))),
    PATCH: (c) => {
      const plan = planPatch(c.body, { SessionTimeout: { kind: 'integer', min: 30, max: 86400 } }, R.sessionService(sessions.timeoutSeconds(c.system.id)));
      if (typeof plan.accepted.SessionTimeout === 'number') sessions.setTimeoutSeconds(c.system.id, plan.accepted.SessionTimeout);
      return patched(R.sessionService(sessions.timeoutSeconds(c.system.id)), plan.warnings);
    },
  });
  route(
    'SessionService/Sessions',
    {
      GET: (c) => json(R.collection('SessionCollection', R.SESSIONS_PATH, 'Sessions', sessions.list(c.system.id).map((s) => `${R.SESSIONS_PATH}/${s.id}`))),
      POST: (c) => {
        const p = actionParams('Session creation', c.body, {
          UserName: { kind: 'string', maxLength: 256, required: true },
          Password: { kind: 'string', maxLength: 256, required: true },
        });
        const system = fleet.systems.find((s) => sameSecret(s.credentials.username, p.UserName as string) && sameSecret(s.credentials.password, p.Password as string));
        if (!system) throw errors.unauthorized(REALM);
        const created = sessions.create(system.id, system.credentials.username);
        if (!created) {
          throw new RedfishError(503, [message('SessionLimitExceeded', 'The session establishment failed due to the number of simultaneous sessions exceeding the limit of the implementation.', { severity: 'Critical', resolution: 'Reduce the number of other sessions before trying to establish the session or increase the limit of simultaneous sessions (if supported).' })]);
        }
        return json(R.session(created.session), 201, { Location: `${R.SESSIONS_PATH}/${created.session.id}`, 'X-Auth-Token': created.token });
      },
    },
    ['POST'],
  );
  const ownSession = (c: Ctx): LabSession => {
    const s = sessions.get(c.params.id!);
    if (!s || s.systemId !== c.system.id) return notFound(c.path);
    return s;
  };
  route('SessionService/Sessions/{id}', {
    GET: (c) => json(R.session(ownSession(c))),
    DELETE: (c) => {
      sessions.delete(ownSession(c).id);
      return { status: 204 };
    },
  });

  // ---- accounts: each BMC has one administrator account, Accounts/1 ----
  route('AccountService', { GET: () => json(R.accountService()) });
  route('AccountService/Accounts', { GET: () => json(R.collection('ManagerAccountCollection', `${R.ROOT}/AccountService/Accounts`, 'Accounts', [`${R.ROOT}/AccountService/Accounts/1`])) });
  route('AccountService/Accounts/{id}', {
    GET: (c) => json(c.params.id === '1' ? R.account(c.system) : notFound(c.path)),
    PATCH: (c) => {
      if (c.params.id !== '1') notFound(c.path);
      const plan = planPatch(c.body, { Password: { kind: 'string', maxLength: 64, check: (v) => (v.length < 8 ? 'at least 8 characters' : undefined) } }, R.account(c.system));
      if (typeof plan.accepted.Password === 'string') fleet.setPassword(c.system, plan.accepted.Password);
      return patched(R.account(c.system), plan.warnings);
    },
  });

  // ---- tasks ----
  route('TaskService', { GET: () => json(R.taskService()) });
  route('TaskService/Tasks', { GET: (c) => json(R.collection('TaskCollection', `${R.ROOT}/TaskService/Tasks`, 'Tasks', fleet.tasksOf(c.system.id).map((t) => R.taskPath(t.id)))) });
  const ownTask = (c: Ctx) => {
    const t = fleet.task(c.params.id!);
    if (!t || t.systemId !== c.system.id) return notFound(c.path);
    return t;
  };
  route('TaskService/Tasks/{id}', { GET: (c) => json(R.task(ownTask(c), now())) });
  route('TaskService/TaskMonitors/{id}', {
    GET: (c) => {
      const t = ownTask(c);
      // DSP0266: a task monitor answers 202 while the operation runs, then the operation's result.
      if (t.state === 'Running') return json(R.task(t, now()), 202, { Location: R.taskMonitorPath(t.id), 'Retry-After': '1' });
      if (t.state === 'Cancelled') return json(R.task(t, now()));
      return json({ '@Message.ExtendedInfo': [successMessage()] });
    },
  });

  // ---- firmware ----
  route('UpdateService', { GET: () => json(R.updateService()) });
  route('UpdateService/Actions/UpdateService.SimpleUpdate', {
    POST: (c) => {
      actionParams('UpdateService.SimpleUpdate', c.body, {
        ImageURI: { kind: 'string', maxLength: 2048, required: true, check: checkImageUrl },
        TransferProtocol: { kind: 'enum', values: ['HTTP', 'HTTPS'] },
      });
      throw errors.actionNotSupported('UpdateService.SimpleUpdate', 'the lab has no firmware images to flash');
    },
  });
  route('UpdateService/FirmwareInventory', {
    GET: () => json(R.collection('SoftwareInventoryCollection', `${R.ROOT}/UpdateService/FirmwareInventory`, 'Firmware inventory', R.FIRMWARE_IDS.map((id) => `${R.ROOT}/UpdateService/FirmwareInventory/${id}`))),
  });
  route('UpdateService/FirmwareInventory/{id}', { GET: (c) => json(R.firmware(c.system, c.params.id!) ?? notFound(c.path)) });

  function patched(body: Record<string, unknown>, warnings: ReturnType<typeof message>[]): Reply {
    return json(warnings.length > 0 ? { ...body, '@Message.ExtendedInfo': warnings } : body);
  }

  function match(segments: string[]): { route: Route; params: Record<string, string> } | undefined {
    outer: for (const r of routes) {
      if (r.segments.length !== segments.length) continue;
      const params: Record<string, string> = {};
      for (let i = 0; i < segments.length; i++) {
        const want = r.segments[i]!;
        if (want.startsWith('{')) params[want.slice(1, -1)] = segments[i]!;
        else if (want !== segments[i]) continue outer;
      }
      return { route: r, params };
    }
    return undefined;
  }

  function authenticate(req: IncomingMessage, scope: SystemState | undefined): Principal | undefined {
    const token = req.headers['x-auth-token'];
    if (typeof token === 'string' && token.length > 0 && token.length <= 512) {
      const session = sessions.authenticate(token);
      if (!session) return undefined;
      const system = fleet.get(session.systemId);
      if (!system || (scope && scope.id !== system.id)) return undefined;
      return { system, session };
    }
    const auth = req.headers.authorization;
    if (!auth || !/^basic /i.test(auth) || auth.length > 2048) return undefined;
    const decoded = Buffer.from(auth.slice(6).trim(), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return undefined;
    const user = decoded.slice(0, colon);
    const pass = decoded.slice(colon + 1);
    const matches = (s: SystemState) => sameSecret(s.credentials.username, user) && sameSecret(s.credentials.password, pass);
    if (scope) return matches(scope) ? { system: scope } : undefined;
    const system = fleet.systems.find(matches);
    return system ? { system } : undefined;
  }

  async function readBody(req: IncomingMessage): Promise<unknown> {
    const type = req.headers['content-type'];
    if (type && !/^application\/(json|[a-z.+-]*\+json)\s*(;|$)/i.test(type)) throw errors.unsupportedMediaType(type.slice(0, 100));
    const declared = Number(req.headers['content-length'] ?? '0');
    if (declared > maxBody) throw errors.bodyTooLarge(maxBody);
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > maxBody) throw errors.bodyTooLarge(maxBody);
      chunks.push(chunk as Buffer);
    }
    const text = Buffer.concat(chunks).toString('utf8');
    if (text.trim() === '') return undefined;
    try {
      return JSON.parse(text);
    } catch (err) {
      throw errors.malformedJson((err as Error).message.slice(0, 200));
    }
  }

  function send(res: ServerResponse, method: string, reply: Reply, extra: Record<string, string> = {}): void {
    if (res.destroyed || res.headersSent) return;
    const headers: Record<string, string> = { 'OData-Version': '4.0', 'Cache-Control': 'no-cache', ...extra, ...(reply.headers ?? {}) };
    let payload: string | undefined;
    if (reply.xml !== undefined) {
      headers['Content-Type'] = 'application/xml; charset=utf-8';
      payload = reply.xml;
    } else if (reply.body !== undefined) {
      headers['Content-Type'] = 'application/json; charset=utf-8';
      payload = JSON.stringify(reply.body);
    }
    if (payload !== undefined) headers['Content-Length'] = String(Buffer.byteLength(payload));
    res.writeHead(reply.status, headers);
    res.end(method === 'HEAD' ? undefined : payload);
  }

  function sendError(res: ServerResponse, method: string, err: RedfishError): void {
    send(res, method, { status: err.status, body: err.body(), headers: err.headers });
  }

  async function applyFaults(systemId: string, res: ServerResponse, req: IncomingMessage): Promise<'served' | 'continue'> {
    const verdict = faults.onRequest(systemId);
    if (verdict.kind === 'drop') {
      req.socket.destroy();
      return 'served';
    }
    if (verdict.delayMs > 0) await sleep(verdict.delayMs);
    if (verdict.kind === 'error') {
      sendError(res, req.method ?? 'GET', errors.serviceUnavailable(verdict.status));
      return 'served';
    }
    return 'continue';
  }

  async function handleRedfish(req: IncomingMessage, res: ServerResponse, url: URL, count: (systemId: string | undefined) => void): Promise<void> {
    const rawMethod = (req.method ?? 'GET').toUpperCase();
    const method = (rawMethod === 'HEAD' ? 'GET' : rawMethod) as Method;
    let path = url.pathname;
    if (path.length > 1 && path.endsWith('/')) path = path.replace(/\/+$/, '');
    if (path === '/redfish') {
      if (method !== 'GET') throw errors.methodNotAllowed(rawMethod, path, ['GET', 'HEAD']);
      return send(res, rawMethod, json({ v1: `${R.ROOT}/` }));
    }
    if (path !== R.ROOT && !path.startsWith(`${R.ROOT}/`)) throw errors.notFound(path);
    let segments: string[];
    try {
      segments = path === R.ROOT ? [] : path.slice(R.ROOT.length + 1).split('/').map(decodeURIComponent);
    } catch {
      throw errors.notFound(path);
    }
    if (segments.length > 12 || segments.some((s) => s.length === 0 || s.length > 128)) throw errors.notFound(path);

    const found = match(segments);
    const scopeId = found?.params.sys;
    const scope = scopeId !== undefined ? fleet.get(scopeId) : undefined;
    if (scope) count(scope.id);
    let faultsApplied = false;
    if (scope) {
      if ((await applyFaults(scope.id, res, req)) === 'served') return;
      faultsApplied = true;
    }

    const isPublic = found?.route.publicMethods?.includes(method) ?? false;
    let principal: Principal | undefined;
    if (!isPublic) {
      // A path naming an unknown system is checked against every system's credentials, so a
      // caller with good credentials learns it is a 404 and a caller without learns nothing.
      principal = authenticate(req, scope);
      if (!principal) {
        count(undefined);
        throw errors.unauthorized(REALM);
      }
      count(principal.system.id);
      if (!faultsApplied) {
        if ((await applyFaults(principal.system.id, res, req)) === 'served') return;
        faultsApplied = true;
      }
    }
    if (!found || (scopeId !== undefined && !scope)) throw errors.notFound(path);
    for (const key of url.searchParams.keys()) {
      // DSP0266 "Query parameters": unsupported $-parameters get 501; others are ignored.
      if (key.startsWith('$')) throw errors.queryNotSupported(key);
    }
    const allow = [...Object.keys(found.route.handlers), ...(found.route.handlers.GET ? ['HEAD'] : [])];
    const handler = found.route.handlers[method];
    if (!handler) throw errors.methodNotAllowed(rawMethod, path, allow);

    const body = method === 'POST' || method === 'PATCH' ? await readBody(req) : undefined;
    if (isPublic && method === 'POST' && !faultsApplied && isObject(body)) {
      // Login: the credentials in the body say which system's faults apply.
      const sys = fleet.systems.find((s) => s.credentials.username === body.UserName && s.credentials.password === body.Password);
      count(sys?.id);
      if (sys && (await applyFaults(sys.id, res, req)) === 'served') return;
    }
    const ctx: Ctx = {
      req,
      path,
      params: found.params,
      system: scope ?? principal?.system ?? (undefined as unknown as SystemState),
      principal: principal ?? (undefined as unknown as Principal),
      body,
    };
    if (method === 'PATCH') {
      // RFC 7232 If-Match: the change applies only to the representation the client saw.
      const ifMatch = req.headers['if-match'];
      if (!ifMatch && persona.requireIfMatch) throw errors.preconditionRequired();
      if (ifMatch && found.route.handlers.GET) {
        const current = await found.route.handlers.GET({ ...ctx, body: undefined });
        const tag = etagOf(current.body);
        const offered = ifMatch.split(',').map((t) => t.trim().replace(/^W\//, ''));
        if (!offered.includes('*') && !offered.includes(tag)) throw errors.preconditionFailed();
      }
    }
    const reply = await handler(ctx);
    const extra: Record<string, string> = {};
    if (method === 'GET' && reply.body !== undefined && reply.status === 200) {
      extra.ETag = etagOf(reply.body);
      extra.Allow = allow.join(', ');
    } else if (method === 'PATCH' && reply.body !== undefined && reply.status === 200 && found.route.handlers.GET) {
      const fresh = await found.route.handlers.GET({ ...ctx, body: undefined });
      extra.ETag = etagOf(fresh.body);
    }
    send(res, rawMethod, reply, extra);
  }

  async function onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    try {
      if ((req.url ?? '').length > 4096) throw errors.notFound('(URI too long)');
      const url = new URL(req.url ?? '/', 'https://lab.invalid');
      if (url.pathname === '/lab/v1' || url.pathname.startsWith('/lab/v1/')) {
        await handleAdminRequest({ req, res, url, fleet, faults, stats, sessions, adminToken: opts.adminToken, maxBodyBytes: maxBody });
        return;
      }
      // Each Redfish request is counted once, for the first system it can be attributed to.
      let counted = false;
      const count = (systemId: string | undefined) => {
        if (counted) return;
        counted = true;
        stats.record(systemId);
      };
      try {
        await handleRedfish(req, res, url, count);
      } finally {
        count(undefined);
      }
    } catch (err) {
      if (err instanceof RedfishError) {
        if (err.status === 413) res.setHeader('Connection', 'close');
        sendError(res, method, err);
      } else {
        sendError(res, method, errors.general(500, 'The lab hit an internal error; see the lab log.'));
        process.emitWarning(`ingot lab: internal error on ${method} ${(req.url ?? '').slice(0, 200)}: ${(err as Error).stack ?? String(err)}`);
      }
    }
  }

  const server = createServer({ cert: opts.tls.cert, key: opts.tls.key, minVersion: 'TLSv1.2' }, (req, res) => void onRequest(req, res));
  // Keep-alive: drivers pool connections to a BMC; idle ones close after 30 s.
  server.keepAliveTimeout = 30_000;
  server.headersTimeout = 35_000;
  server.requestTimeout = 120_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const hostForUrl = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `https://${hostForUrl}:${addr.port}`,
    port: addr.port,
    server,
    sessions,
    stats,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
