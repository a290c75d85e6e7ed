// Builds BmcTargets pointing at a MiniRedfish for the Redfish driver's tests.
import type { BmcTarget } from '../../src/drivers/driver.js';
import { parseBmcAddress } from '../../src/model/bmc-address.js';
import type { MiniRedfish } from './mini-redfish.js';

export function targetFor(
  mini: MiniRedfish,
  opts: { path?: string; scheme?: string; password?: string; username?: string; caBundle?: string; verify?: boolean } = {},
): BmcTarget {
  const https = mini.url.startsWith('https:');
  const scheme = opts.scheme ?? (https ? 'redfish' : 'redfish+http');
  const path = opts.path ?? '/redfish/v1/Systems/1';
  return {
    hostName: 'h1',
    address: parseBmcAddress(`${scheme}://127.0.0.1:${mini.port}${path}`),
    credentials: { username: opts.username ?? mini.username, password: opts.password ?? mini.password },
    tls: { verify: opts.verify ?? true, ...(opts.caBundle ? { caBundle: opts.caBundle } : {}) },
  };
}
