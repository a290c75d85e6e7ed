// Client for the lab's admin endpoint (/lab/v1, see lab-admin.ts), used by `ingot lab fault …`
// and by tests. Talks HTTPS to the lab, trusting only the lab CA.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import type { FaultPatch, SystemFaults } from './faults.js';
import { readLabState } from './lab-fleet.js';
import type { BootRecord } from './lab-model.js';
import type { RequestStatsSnapshot } from './request-stats.js';

export interface LabSystemSummary {
  id: string;
  path: string;
  username: string;
  powerState: string;
  bootMac: string | null;
  faults: SystemFaults;
}

export class LabAdminError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'LabAdminError';
  }
}

export class LabAdminClient {
  readonly #url: string;
  readonly #token: string;
  readonly #agent: Agent;

  constructor(opts: { url: string; token: string; ca: string }) {
    this.#url = opts.url.replace(/\/+$/, '');
    this.#token = opts.token;
    this.#agent = new Agent({ connect: { ca: opts.ca }, keepAliveTimeout: 10_000 });
  }

  /** Builds a client from a lab's data directory (admin-token, ca/ca.crt, and the URL the lab last served on). */
  static async fromDataDir(dataDir: string, url?: string): Promise<LabAdminClient> {
    const [token, ca] = await Promise.all([readFile(join(dataDir, 'admin-token'), 'utf8'), readFile(join(dataDir, 'ca', 'ca.crt'), 'utf8')]);
    const labUrl = url ?? (await readLabState(dataDir)).url;
    if (!labUrl) throw new Error(`no lab URL recorded in ${dataDir}; pass the lab URL`);
    return new LabAdminClient({ url: labUrl, token: token.trim(), ca });
  }

  async #call<T>(method: 'GET' | 'PUT' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<T> {
    const res = await request(`${this.#url}/lab/v1${path}`, {
      method,
      dispatcher: this.#agent,
      headers: { authorization: `Bearer ${this.#token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.body.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (res.statusCode >= 400) {
      const msg = (parsed as { error?: { message?: string } } | undefined)?.error?.message ?? text.slice(0, 200);
      throw new LabAdminError(res.statusCode, `lab admin ${method} ${path} failed (${res.statusCode}): ${msg}`);
    }
    return parsed as T;
  }

  async listSystems(): Promise<LabSystemSummary[]> {
    return (await this.#call<{ systems: LabSystemSummary[] }>('GET', '/systems')).systems;
  }
  getSystem(id: string): Promise<Record<string, unknown>> {
    return this.#call('GET', `/systems/${encodeURIComponent(id)}`);
  }
  async bootLog(id: string): Promise<BootRecord[]> {
    return (await this.#call<{ records: BootRecord[] }>('GET', `/systems/${encodeURIComponent(id)}/boot-log`)).records;
  }
  getFaults(id: string): Promise<SystemFaults> {
    return this.#call('GET', `/systems/${encodeURIComponent(id)}/faults`);
  }
  setFaults(id: string, patch: FaultPatch): Promise<SystemFaults> {
    return this.#call('PUT', `/systems/${encodeURIComponent(id)}/faults`, patch);
  }
  clearFaults(id: string): Promise<SystemFaults> {
    return this.#call('DELETE', `/systems/${encodeURIComponent(id)}/faults`);
  }
  credentials(id: string): Promise<{ username: string; password: string }> {
    return this.#call('GET', `/systems/${encodeURIComponent(id)}/credentials`);
  }
  /** The "credentials changed on the BMC" fault: sets (or generates) a new password. */
  changePassword(id: string, password?: string): Promise<{ username: string; password: string }> {
    return this.#call('POST', `/systems/${encodeURIComponent(id)}/credentials`, password === undefined ? {} : { password });
  }
  openDisk(id: string, index: number): Promise<{ path: string; sizeBytes: number; failWrites: boolean }> {
    return this.#call('POST', `/systems/${encodeURIComponent(id)}/disks/${index}/open`, {});
  }

  /** Redfish requests the lab served, in total and per system. */
  stats(): Promise<RequestStatsSnapshot> {
    return this.#call('GET', '/stats');
  }
  /** Resets the request counts; returns them as they were. */
  resetStats(): Promise<RequestStatsSnapshot> {
    return this.#call('DELETE', '/stats');
  }

  async close(): Promise<void> {
    await this.#agent.close();
  }
}
