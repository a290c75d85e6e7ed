import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseBmcAddress } from '../model/bmc-address.js';
import { enrollLab } from './enroll.js';
import { LabHarness } from './lab-test-harness.js';

// A stand-in for Ingot's REST API that records what it is sent (the real server is tested
// against the lab in test/). It answers 401 without the right bearer token.
describe('enrollLab', () => {
  let h: LabHarness;
  let server: Server;
  let base: string;
  const seen: Array<{ method: string; url: string; auth: string | undefined; body: any }> = [];
  /** Requests still to answer with 429 (the server's rate limit), to prove enrollment waits them out. */
  let rateLimited = 0;
  beforeAll(async () => {
    h = await LabHarness.start({ hosts: 3 });
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (req.headers.authorization !== 'Bearer tok-123') {
          res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ code: 'INGOT_ERR_UNAUTHENTICATED', message: 'authentication required' }));
          return;
        }
        if (rateLimited > 0) {
          rateLimited -= 1;
          res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '1' }).end(JSON.stringify({ code: 'INGOT_ERR_RATE_LIMITED', message: 'rate limit reached' }));
          return;
        }
        seen.push({ method: req.method!, url: req.url!, auth: req.headers.authorization, body: JSON.parse(Buffer.concat(chunks).toString()) });
        res.writeHead(201, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
    await h.stop();
  });

  it('creates the CA secret, then a credentials secret and a host per system', async () => {
    const result = await enrollLab({ dataDir: h.dataDir, server: base, token: 'tok-123' });
    expect(result.hosts.map((x) => x.name)).toEqual([h.sys(0), h.sys(1), h.sys(2)]);
    expect(seen[0]).toMatchObject({ method: 'PUT', url: '/api/v1/secrets/lab-ca' });
    expect(seen[0]!.body.stringData['ca.crt']).toBe(h.ca);
    const port = new URL(h.lab.url).port;
    for (const [i, sys] of h.lab.systems.entries()) {
      const secret = seen.find((s) => s.url === `/api/v1/secrets/${sys.id}-bmc`)!;
      expect(secret.body).toMatchObject({ kind: 'Secret', metadata: { name: `${sys.id}-bmc` }, stringData: { username: 'admin', password: sys.password } });
      const host = seen.find((s) => s.url === `/api/v1/hosts/${sys.id}`)!;
      expect(host.body.spec).toEqual({
        bmc: { address: `redfish-virtualmedia://127.0.0.1:${port}/redfish/v1/Systems/${sys.id}`, credentialsName: `${sys.id}-bmc`, caBundleName: 'lab-ca' },
        bootMACAddress: sys.bootMac,
        online: false,
      });
      // The address must be one Ingot accepts, pointing back at this lab system.
      const addr = parseBmcAddress(host.body.spec.bmc.address);
      expect(addr).toMatchObject({ driver: 'redfish', virtualMedia: true, port: Number(port), path: `/redfish/v1/Systems/${sys.id}` });
      // And the credentials in the secret work against that system over verified TLS.
      expect((await h.request('GET', addr.path, { auth: secret.body.stringData })).status).toBe(200);
      expect(i).toBeLessThan(3);
    }
  });

  it('reports a refusal without leaking the token', async () => {
    const err = await enrollLab({ dataDir: h.dataDir, server: base, token: 'wrong' }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/HTTP 401: authentication required/);
    expect((err as Error).message).not.toContain('wrong');
  });

  it('waits out HTTP 429 as Retry-After says and still enrolls every system', async () => {
    seen.length = 0;
    rateLimited = 2;
    const result = await enrollLab({ dataDir: h.dataDir, server: base, token: 'tok-123', systems: [h.sys(0)] });
    expect(result.hosts.map((x) => x.name)).toEqual([h.sys(0)]);
    expect(rateLimited).toBe(0);
    expect(seen.map((s) => s.url)).toEqual(['/api/v1/secrets/lab-ca', `/api/v1/secrets/${h.sys(0)}-bmc`, `/api/v1/hosts/${h.sys(0)}`]);
  });
});
