// waitForClaim against a scripted API on 127.0.0.1: the claim's state is advanced by the test.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createClient } from './client.js';
import { ClaimFailedError, ClaimWaitTimeoutError, waitForClaim } from './wait-for-claim.js';

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

/** Serves GET /api/v1/projects/red/claims/c1 from `script`, one entry per read (the last one repeats). */
async function scriptedApi(script: Array<Record<string, unknown> | undefined>): Promise<string> {
  let i = 0;
  const server = createServer((req, res) => {
    if (req.url !== '/api/v1/projects/red/claims/c1') return res.writeHead(404).end();
    const status = script[Math.min(i++, script.length - 1)];
    if (!status) {
      res.writeHead(404, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ code: 'INGOT_ERR_NOT_FOUND', message: 'Claim "c1" does not exist' }));
    }
    const { deletionTimestamp, ...rest } = status;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ apiVersion: 'ingot.dev/v1', kind: 'Claim', metadata: { name: 'c1', project: 'red', ...(deletionTimestamp ? { deletionTimestamp } : {}) }, spec: { nodeTypeName: 'metal.small' }, status: rest }));
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('waitForClaim', () => {
  it('reports each change (reason, host) and resolves when ready', async () => {
    const url = await scriptedApi([
      { state: 'pending', reason: 'no available host matches' },
      { state: 'pending', reason: 'no available host matches' },
      { state: 'binding', hostName: 'r1-n07' },
      { state: 'provisioning', hostName: 'r1-n07' },
      { state: 'ready', hostName: 'r1-n07', addresses: [{ ipPoolName: 'rack1', address: '192.0.2.10', prefix: 24 }] },
    ]);
    const seen: string[] = [];
    const claim = await waitForClaim(createClient({ server: url, token: 't' }), 'red', 'c1', 'ready', {
      pollIntervalMs: 5,
      onProgress: (c) => seen.push(`${c?.status.state}:${c?.status.hostName ?? c?.status.reason ?? ''}`),
    });
    expect(claim?.status.addresses?.[0]?.address).toBe('192.0.2.10');
    expect(seen).toEqual(['pending:no available host matches', 'binding:r1-n07', 'provisioning:r1-n07', 'ready:r1-n07']);
  });

  it('rejects with the reason when the claim fails', async () => {
    const url = await scriptedApi([{ state: 'binding', hostName: 'h1' }, { state: 'failed', reason: 'provisioning failed: image checksum mismatch' }]);
    const err = await waitForClaim(createClient({ server: url, token: 't' }), 'red', 'c1', 'ready', { pollIntervalMs: 5 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ClaimFailedError);
    expect((err as Error).message).toBe('claim c1 failed: provisioning failed: image checksum mismatch');
  });

  it('for deleted, keeps waiting through releasing and resolves once the claim is gone', async () => {
    const url = await scriptedApi([{ state: 'ready', deletionTimestamp: '2026-01-01T00:00:00Z' }, { state: 'releasing', hostName: 'h1' }, undefined]);
    const seen: string[] = [];
    await expect(waitForClaim(createClient({ server: url, token: 't' }), 'red', 'c1', 'deleted', { pollIntervalMs: 5, onProgress: (c) => seen.push(c?.status.state ?? 'gone') })).resolves.toBeUndefined();
    expect(seen).toEqual(['ready', 'releasing', 'gone']);
  });

  it('a timeout names the state and the pending reason', async () => {
    const url = await scriptedApi([{ state: 'pending', reason: 'project quota' }]);
    const err = await waitForClaim(createClient({ server: url, token: 't' }), 'red', 'c1', 'ready', { pollIntervalMs: 5, timeoutMs: 50 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ClaimWaitTimeoutError);
    expect((err as Error).message).toBe('claim c1 did not become ready within 0.1s; it is pending (project quota)');
  });
});
