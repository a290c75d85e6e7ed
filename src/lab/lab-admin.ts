// The lab's control panel: /lab/v1/… on the same HTTPS listener as Redfish, authenticated with
// `Authorization: Bearer <token>` where the token is DATA_DIR/admin-token (mode 0600). Tests
// and `ingot lab fault` use it to inject faults, change BMC passwords and read boot logs.
// It is not Redfish: answers are plain JSON, errors are {error: {code, message}}.
//
//   GET    /lab/v1/systems                          list: id, redfish path, username, power, boot MAC, faults
//   GET    /lab/v1/systems/{id}                     one system, with disks, media, boot settings, BIOS
//   GET    /lab/v1/systems/{id}/boot-log            {records: BootRecord[]}
//   GET    /lab/v1/systems/{id}/faults              SystemFaults
//   PUT    /lab/v1/systems/{id}/faults              merge FaultPatch, returns SystemFaults
//   DELETE /lab/v1/systems/{id}/faults              clear, returns SystemFaults
//   GET    /lab/v1/systems/{id}/credentials         {username, password}
//   POST   /lab/v1/systems/{id}/credentials         {password?} -> sets (or generates) a new BMC password
//   POST   /lab/v1/systems/{id}/disks/{n}/open      creates the sparse backing file if needed -> {path, sizeBytes, failWrites}
//   GET    /lab/v1/stats                            Redfish requests served: {total, unattributed, systems: {id: n}}
//   DELETE /lab/v1/stats                            resets the counts, returns them as they were
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { checkFaultPatch, type FaultBook } from './faults.js';
import type { LabFleet } from './lab-fleet.js';
import { diskPath, ensureDiskFile, type SystemState } from './lab-model.js';
import type { RequestStats } from './request-stats.js';

interface AdminRequest {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  fleet: LabFleet;
  faults: FaultBook;
  stats: RequestStats;
  /** Sessions to end when a password is changed here (absent in tests of the admin alone). */
  sessions?: { endAll(systemId: string): void };
  adminToken: string;
  maxBodyBytes: number;
}

class AdminError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': String(Buffer.byteLength(text)), 'Cache-Control': 'no-store' });
  res.end(text);
}

function tokenMatches(header: string | undefined, token: string): boolean {
  if (!header || !/^bearer /i.test(header)) return false;
  const a = createHash('sha256').update(header.slice(7).trim()).digest();
  const b = createHash('sha256').update(token).digest();
  return timingSafeEqual(a, b);
}

async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new AdminError(413, 'BODY_TOO_LARGE', `request body larger than ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new AdminError(400, 'MALFORMED_JSON', 'request body is not valid JSON');
  }
}

export function systemSummary(fleet: LabFleet, faults: FaultBook, s: SystemState) {
  return {
    id: s.id,
    path: `/redfish/v1/Systems/${s.id}`,
    username: s.credentials.username,
    powerState: fleet.powerState(s),
    bootMac: s.hardware.nics[0]?.mac ?? null,
    faults: faults.get(s.id),
  };
}

export async function handleAdminRequest(a: AdminRequest): Promise<void> {
  const { req, res, fleet, faults } = a;
  try {
    if (!tokenMatches(req.headers.authorization, a.adminToken)) {
      res.setHeader('WWW-Authenticate', 'Bearer realm="ingot-lab-admin"');
      throw new AdminError(401, 'UNAUTHENTICATED', 'send Authorization: Bearer <token> with the token from DATA_DIR/admin-token');
    }
    const method = req.method ?? 'GET';
    const parts = a.url.pathname.replace(/\/+$/, '').split('/').slice(3).map(decodeURIComponent);
    if (parts[0] === 'stats' && parts.length === 1) {
      if (method === 'GET') return reply(res, 200, a.stats.snapshot());
      if (method === 'DELETE') {
        const before = a.stats.snapshot();
        a.stats.reset();
        return reply(res, 200, before);
      }
      throw new AdminError(405, 'METHOD_NOT_ALLOWED', 'use GET (or DELETE to reset)');
    }
    if (parts[0] !== 'systems') throw new AdminError(404, 'NOT_FOUND', `no lab admin resource at ${a.url.pathname}; see /lab/v1/systems`);
    if (parts.length === 1) {
      if (method !== 'GET') throw new AdminError(405, 'METHOD_NOT_ALLOWED', 'use GET');
      return reply(res, 200, { systems: fleet.systems.map((s) => systemSummary(fleet, faults, s)) });
    }
    const system = fleet.get(parts[1]!);
    if (!system) throw new AdminError(404, 'NOT_FOUND', `the lab has no system "${parts[1]}"; list them with GET /lab/v1/systems`);
    const sub = parts.slice(2).join('/');
    const key = `${method} ${sub.replace(/^disks\/[^/]+\/open$/, 'disks/{n}/open')}`;
    switch (key) {
      case 'GET ':
        return reply(res, 200, {
          ...systemSummary(fleet, faults, system),
          uuid: system.uuid,
          boot: system.boot,
          media: system.media,
          bios: system.bios,
          secureBoot: { ...system.secureBoot, capable: system.hardware.secureBootCapable },
          macs: system.hardware.nics.map((n) => n.mac),
          disks: system.hardware.drives.map((d) => ({
            index: d.index,
            path: diskPath(fleet.dataDir, system.id, d.index),
            sizeBytes: d.sizeBytes,
            type: d.type,
            failWrites: faults.driveWriteFails(system.id, d.index),
          })),
          ...(fleet.machinesFor(system) ? { vm: fleet.machinesFor(system)!.describe(system) } : {}),
        });
      case 'GET boot-log':
        fleet.settle(system);
        return reply(res, 200, { records: system.bootLog });
      case 'GET faults':
        return reply(res, 200, faults.get(system.id));
      case 'PUT faults': {
        const body = await readJson(req, a.maxBodyBytes);
        if (!checkFaultPatch.Check(body)) {
          const first = [...checkFaultPatch.Errors(body)][0];
          throw new AdminError(400, 'INVALID_FAULT', `invalid fault: ${first ? `${first.instancePath || '/'} ${first.message}` : 'bad body'}; fields: delayMs, errorBurst, errorStatus, dropConnections, ignorePower, failDriveWrites`);
        }
        return reply(res, 200, faults.set(system.id, body));
      }
      case 'DELETE faults':
        return reply(res, 200, faults.clear(system.id));
      case 'GET credentials':
        return reply(res, 200, { username: system.credentials.username, password: system.credentials.password });
      case 'POST credentials': {
        const body = await readJson(req, a.maxBodyBytes);
        const pw = (body as { password?: unknown }).password;
        if (pw !== undefined && (typeof pw !== 'string' || pw.length < 8 || pw.length > 64)) {
          throw new AdminError(400, 'INVALID_PASSWORD', 'password must be a string of 8 to 64 characters, or omitted to generate one');
        }
        const password = fleet.setPassword(system, pw as string | undefined);
        // Someone changed the password at the BMC: the sessions opened with the old one end too,
        // so the next call of a client still holding the old password fails at once (as on
        // BMCs that log an account out when its password changes) rather than after a timeout.
        a.sessions?.endAll(system.id);
        return reply(res, 200, { username: system.credentials.username, password });
      }
      case 'POST disks/{n}/open': {
        const n = Number(parts[3]);
        if (!Number.isInteger(n) || !system.hardware.drives[n]) throw new AdminError(404, 'NOT_FOUND', `system ${system.id} has no disk ${parts[3]}`);
        const path = await ensureDiskFile(fleet.dataDir, system, n);
        return reply(res, 200, { path, sizeBytes: system.hardware.drives[n]!.sizeBytes, failWrites: faults.driveWriteFails(system.id, n) });
      }
      default:
        throw new AdminError(404, 'NOT_FOUND', `no lab admin route ${method} ${a.url.pathname}`);
    }
  } catch (err) {
    if (err instanceof AdminError) return reply(res, err.status, { error: { code: err.code, message: err.message } });
    throw err;
  }
}
