import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueServerCert, makeCa } from '../../../test/support/test-pki.js';
import { GUEST_SERVICE_ADDRESS } from './guest-network.js';
import { fetchMediaImage, MediaFetchError } from './media-fetch.js';

const ca = makeCa('media-fetch');
const dir = mkdtempSync(join(tmpdir(), 'ingot-media-fetch-'));
const body = Buffer.alloc(64 * 1024, 7);
let server: Server;
let port = 0;

beforeAll(async () => {
  // The certificate names only the in-guest service address: fetching it through the forward must verify that name.
  const tls = issueServerCert(ca, 'svc', `IP:${GUEST_SERVICE_ADDRESS}`);
  server = createServer({ key: tls.key, cert: tls.cert }, (req, res) => {
    const path = new URL(req.url ?? '/', 'https://x').pathname;
    if (path === '/agent.iso') return void res.writeHead(200, { 'content-length': String(body.length) }).end(body);
    if (path === '/moved') return void res.writeHead(302, { location: '/agent.iso' }).end();
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
  rmSync(ca.dir, { recursive: true, force: true });
});

const forwards = () => [{ guestPort: 7386, hostPort: port }];

describe('fetchMediaImage', () => {
  it('fetches through the forward, verifying the certificate against the in-guest address', async () => {
    const got = await fetchMediaImage(`https://${GUEST_SERVICE_ADDRESS}:7386/agent.iso?token=x`, dir, { forwards: forwards(), caPem: ca.certPem });
    expect(got.bytes).toBe(body.length);
    expect(readFileSync(got.path).equals(body)).toBe(true);
  });

  it('refuses a certificate that does not name the host in the URL', async () => {
    // 127.0.0.1 reaches the same server, but its certificate names only the in-guest address.
    const err = await fetchMediaImage(`https://127.0.0.1:${port}/agent.iso`, dir, { forwards: forwards(), caPem: ca.certPem }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MediaFetchError);
    expect((err as Error).message).toMatch(/cannot fetch https:\/\/127\.0\.0\.1:\d+\/agent\.iso: .*(altnames|IP)/i);
  });

  it('refuses an untrusted CA, a body over the limit, redirects and errors, leaving no file', async () => {
    const untrusted = await fetchMediaImage(`https://${GUEST_SERVICE_ADDRESS}:7386/agent.iso`, dir, { forwards: forwards() }).catch((e: unknown) => e);
    expect((untrusted as Error).message).toMatch(/certificate/i);
    const big = await fetchMediaImage(`https://${GUEST_SERVICE_ADDRESS}:7386/agent.iso`, dir, { forwards: forwards(), caPem: ca.certPem, maxBytes: 1000 }).catch((e: unknown) => e);
    expect((big as MediaFetchError).badRequest).toBe(true);
    expect((big as Error).message).toContain('up to 1000 bytes');
    const moved = await fetchMediaImage(`https://${GUEST_SERVICE_ADDRESS}:7386/moved`, dir, { forwards: forwards(), caPem: ca.certPem }).catch((e: unknown) => e);
    expect((moved as Error).message).toContain('HTTP 302');
    const missing = await fetchMediaImage(`https://${GUEST_SERVICE_ADDRESS}:7386/nope`, dir, { forwards: forwards(), caPem: ca.certPem }).catch((e: unknown) => e);
    expect((missing as Error).message).toContain('HTTP 404');
    expect(readdirSync(dir).filter((f) => f.endsWith('.part'))).toEqual([]);
  });

  it('goes nowhere but loopback, its own address and the forwards', async () => {
    for (const url of ['http://192.0.2.10/x.iso', `http://${GUEST_SERVICE_ADDRESS}:9999/x.iso`, 'ftp://127.0.0.1/x.iso', 'http://user:pw@127.0.0.1/x.iso']) {
      const err = await fetchMediaImage(url, join(dir, 'never'), { forwards: forwards() }).catch((e: unknown) => e);
      expect(err, url).toBeInstanceOf(MediaFetchError);
      expect((err as MediaFetchError).badRequest, url).toBe(true);
    }
    expect(existsSync(join(dir, 'never'))).toBe(false);
  });
});
