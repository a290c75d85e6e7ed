// `ingot lab enroll`: registers every lab system with an Ingot server through its public REST
// API, as an operator would with real hardware: a Secret with the lab CA, and per system a
// Secret with its BMC credentials and a Host pointing at its Redfish system over HTTPS.
// The lab talks to Ingot only over the network (DESIGN: lab depends on nothing but model).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { API_VERSION } from '../model/envelope.js';
import { readLabState } from './lab-fleet.js';


/** How many times one PUT is retried after HTTP 429 before enrollment gives up. */
const MAX_RATE_LIMITED_ATTEMPTS = 20;
export const LAB_CA_SECRET = 'lab-ca';

export interface EnrollLabOptions {
  /** https://HOST:PORT of the lab; default: the URL recorded in DATA_DIR by the running lab. */
  labUrl?: string;
  dataDir: string;
  /** Base URL of the Ingot API, e.g. http://127.0.0.1:8080. */
  server: string;
  /** A bearer token allowed to write secrets and hosts. */
  token: string;
  fetchImpl?: typeof fetch;
  /** Only these system ids (default: all). */
  systems?: string[];
  /** How many systems to enroll at once; default 8. */
  concurrency?: number;
  /** spec.inspection of the hosts created (agent | bmc | disabled); default: unset (the server's default). */
  inspection?: 'agent' | 'bmc' | 'disabled';
}

export interface EnrolledHost {
  name: string;
  secretName: string;
  address: string;
  bootMACAddress: string;
}

export interface EnrollResult {
  caSecretName: string;
  hosts: EnrolledHost[];
}

function labHostPort(labUrl: string): string {
  let u: URL;
  try {
    u = new URL(labUrl);
  } catch {
    throw new Error(`lab URL "${labUrl}" is not a URL; pass --lab-url https://HOST:PORT`);
  }
  if (u.protocol !== 'https:') throw new Error(`lab URL "${labUrl}" must be https://`);
  return u.host;
}

export async function enrollLab(opts: EnrollLabOptions): Promise<EnrollResult> {
  const doFetch = opts.fetchImpl ?? fetch;
  let server: URL;
  try {
    server = new URL(opts.server);
  } catch {
    throw new Error(`--server "${opts.server}" is not a URL; write e.g. http://127.0.0.1:8080`);
  }
  if (server.protocol !== 'http:' && server.protocol !== 'https:') throw new Error(`--server must be an http:// or https:// URL`);
  if (!opts.token) throw new Error('an API token is required (--token)');
  const base = server.toString().replace(/\/+$/, '');
  const state = await readLabState(opts.dataDir);
  const labUrl = opts.labUrl ?? state.url;
  if (!labUrl) throw new Error(`no lab URL recorded in ${opts.dataDir}; start the lab or pass --lab-url`);
  const hostPort = labHostPort(labUrl);
  const caPem = await readFile(join(opts.dataDir, 'ca', 'ca.crt'), 'utf8');

  const put = async (path: string, body: unknown): Promise<void> => {
    let res: Response;
    // PUT is idempotent, so a 429 (the server's per-identity rate limit, which a large lab
    // reaches) is waited out as its Retry-After says, a bounded number of times.
    for (let attempt = 1; ; attempt++) {
      res = await doFetch(`${base}${path}`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${opts.token}`, 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify(body),
      });
      if (res.status !== 429 || attempt >= MAX_RATE_LIMITED_ATTEMPTS) break;
      await res.arrayBuffer().catch(() => undefined);
      const retryAfter = Number(res.headers.get('retry-after'));
      await new Promise((r) => setTimeout(r, (Number.isFinite(retryAfter) && retryAfter > 0 ? Math.min(retryAfter, 30) : 1) * 1000 * (1 + Math.random() / 2)));
    }
    if (!res.ok) {
      const text = (await res.text().catch(() => '')).slice(0, 500);
      let msg = text;
      try {
        msg = (JSON.parse(text) as { message?: string; error?: { message?: string } }).message ?? (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? text;
      } catch {
        /* plain text */
      }
      throw new Error(`PUT ${path} failed with HTTP ${res.status}: ${msg}`);
    } else {
      await res.arrayBuffer().catch(() => undefined);
    }
  };

  await put(`/api/v1/secrets/${LAB_CA_SECRET}`, { apiVersion: API_VERSION, kind: 'Secret', metadata: { name: LAB_CA_SECRET }, stringData: { 'ca.crt': caPem } });

  const wanted = opts.systems ? new Set(opts.systems) : undefined;
  const systems = state.systems.filter((s) => !wanted || wanted.has(s.id));
  if (wanted && systems.length !== wanted.size) {
    const known = new Set(state.systems.map((s) => s.id));
    throw new Error(`unknown lab systems: ${[...wanted].filter((id) => !known.has(id)).join(', ')}`);
  }
  const hosts: EnrolledHost[] = [];
  const queue = [...systems];
  const worker = async () => {
    for (let s = queue.shift(); s; s = queue.shift()) {
      const name = s.id;
      const secretName = `${name}-bmc`;
      const address = `redfish-virtualmedia://${hostPort}/redfish/v1/Systems/${s.id}`;
      const bootMACAddress = s.hardware.nics[0]?.mac ?? '';
      await put(`/api/v1/secrets/${secretName}`, {
        apiVersion: API_VERSION,
        kind: 'Secret',
        metadata: { name: secretName, labels: { 'ingot.dev/lab': 'true' } },
        stringData: { username: s.credentials.username, password: s.credentials.password },
      });
      await put(`/api/v1/hosts/${name}`, {
        apiVersion: API_VERSION,
        kind: 'Host',
        metadata: { name, labels: { 'ingot.dev/lab': 'true' } },
        spec: { bmc: { address, credentialsName: secretName, caBundleName: LAB_CA_SECRET }, ...(bootMACAddress ? { bootMACAddress } : {}), online: false, ...(opts.inspection ? { inspection: opts.inspection } : {}) },
      });
      hosts.push({ name, secretName, address, bootMACAddress });
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.concurrency ?? 8, 32)) }, worker));
  hosts.sort((a, b) => a.name.localeCompare(b.name));
  return { caSecretName: LAB_CA_SECRET, hosts };
}
