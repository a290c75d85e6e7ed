// The few Ingot API calls the end-to-end tests make over real HTTP, bound to one server and
// token: raw requests, host patches and polling a host until a condition holds.
import { expect } from 'vitest';
import type { Host } from '../../src/model/host.js';

export interface HostApi {
  api<T>(method: string, path: string, body?: unknown, contentType?: string): Promise<{ status: number; body: T }>;
  getHost(name: string): Promise<Host | undefined>;
  patchHost(name: string, patch: unknown): Promise<void>;
  /** Polls the host until `check` passes; the failure message shows where the host was. */
  waitForHost(name: string, what: string, check: (h: Host) => boolean, timeoutMs?: number): Promise<Host>;
}

/** `target` is read on every call, so tests may bind it before their server has started. */
export function hostApi(target: () => { apiUrl: string; token: string }): HostApi {
  async function api<T>(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<{ status: number; body: T }> {
    const { apiUrl, token } = target();
    const res = await fetch(`${apiUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, accept: 'application/json', ...(body !== undefined ? { 'content-type': contentType } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
  }
  async function getHost(name: string): Promise<Host | undefined> {
    const r = await api<Host>('GET', `/api/v1/hosts/${name}`);
    if (r.status === 404) return undefined;
    expect(r.status).toBe(200);
    return r.body;
  }
  async function patchHost(name: string, patch: unknown): Promise<void> {
    const r = await api('PATCH', `/api/v1/hosts/${name}`, patch, 'application/merge-patch+json');
    expect(r.status, JSON.stringify(r.body)).toBe(200);
  }
  async function waitForHost(name: string, what: string, check: (h: Host) => boolean, timeoutMs = 90_000): Promise<Host> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const last = await getHost(name);
      if (last && check(last)) return last;
      if (Date.now() > deadline) {
        const s = last?.status;
        throw new Error(`host ${name} did not reach "${what}": state ${s?.provisioning.state}, errorType "${s?.errorType}", errorMessage "${s?.errorMessage}", waitingFor "${s?.waitingFor}"`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return { api, getHost, patchHost, waitForHost };
}

export const inState = (state: string) => (h: Host) => h.status.provisioning.state === state;
