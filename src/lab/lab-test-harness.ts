// Test support for the lab: start a lab in a temp dir and talk real HTTPS to it, trusting the
// lab CA (https.request with `ca`). Used by src/lab/*.test.ts and cross-module tests.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { Agent, request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLab, type RunningLab, type StartLabOptions } from './run-lab.js';

export interface LabResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
}

export interface RequestOptions {
  auth?: { username: string; password: string };
  token?: string;
  body?: unknown;
  rawBody?: string;
  headers?: Record<string, string>;
}

export class LabHarness {
  readonly lab: RunningLab;
  readonly ca: string;
  readonly dataDir: string;
  readonly #agent: Agent;

  private constructor(lab: RunningLab, ca: string, dataDir: string) {
    this.lab = lab;
    this.ca = ca;
    this.dataDir = dataDir;
    this.#agent = new Agent({ ca, keepAlive: true });
  }

  static async start(opts: Partial<StartLabOptions> & { dataDir?: string } = {}): Promise<LabHarness> {
    const dataDir = opts.dataDir ?? (await mkdtemp(join(tmpdir(), 'ingot-lab-')));
    const lab = await startLab({
      hosts: opts.hosts ?? 2,
      listen: '127.0.0.1:0',
      dataDir,
      powerTransitionMs: opts.powerTransitionMs ?? 40,
      ...(opts.profile ? { profile: opts.profile } : {}),
      ...(opts.agents !== undefined ? { agents: opts.agents } : {}),
      ...(opts.agentLog ? { agentLog: opts.agentLog } : {}),
      ...(opts.agentProcesses ? { agentProcesses: opts.agentProcesses } : {}),
      ...(opts.vms ? { vms: opts.vms } : {}),
      ...(opts.personality ? { personality: opts.personality } : {}),
    });
    return new LabHarness(lab, await readFile(lab.caFile, 'utf8'), dataDir);
  }

  creds(i = 0): { username: string; password: string } {
    const s = this.lab.systems[i]!;
    return { username: s.username, password: s.password };
  }

  sys(i = 0): string {
    return this.lab.systems[i]!.id;
  }

  request(method: string, path: string, opts: RequestOptions = {}): Promise<LabResponse> {
    const url = new URL(path, this.lab.url);
    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    if (opts.auth) headers.authorization = `Basic ${Buffer.from(`${opts.auth.username}:${opts.auth.password}`).toString('base64')}`;
    if (opts.token) headers['x-auth-token'] = opts.token;
    const payload = opts.rawBody ?? (opts.body !== undefined ? JSON.stringify(opts.body) : undefined);
    if (payload !== undefined && !headers['content-type']) headers['content-type'] = 'application/json';
    return new Promise((resolve, reject) => {
      const req = httpsRequest(url, { method, headers, agent: this.#agent, ca: this.ca }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown;
          try {
            body = text ? JSON.parse(text) : undefined;
          } catch {
            body = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body });
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(payload);
    });
  }

  /** Requests as system i (Basic auth with its credentials). */
  as(i: number, method: string, path: string, opts: Omit<RequestOptions, 'auth'> = {}): Promise<LabResponse> {
    return this.request(method, path, { ...opts, auth: this.creds(i) });
  }

  admin(method: string, path: string, body?: unknown): Promise<LabResponse> {
    return this.request(method, `/lab/v1${path}`, { headers: { authorization: `Bearer ${this.lab.adminToken}` }, ...(body !== undefined ? { body } : {}) });
  }

  /** Polls until `check` returns a value (not a timing assertion: it only bounds how long to wait). */
  async until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await check();
      if (v !== undefined) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 15));
    }
  }

  async powerState(i = 0): Promise<string> {
    const r = await this.as(i, 'GET', `/redfish/v1/Systems/${this.sys(i)}`);
    return r.body.PowerState as string;
  }

  async waitPower(i: number, state: string): Promise<void> {
    await this.until(`power ${state}`, async () => ((await this.powerState(i)) === state ? true : undefined));
  }

  async stop(opts: { keepData?: boolean } = {}): Promise<void> {
    this.#agent.destroy();
    await this.lab.close();
    if (!opts.keepData) await rm(this.dataDir, { recursive: true, force: true });
  }
}
