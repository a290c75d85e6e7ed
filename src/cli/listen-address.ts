// HOST:PORT as given to --listen / --agent-listen.
import { CliError } from './cli-error.js';

export interface ListenAddress {
  host: string;
  port: number;
}

export function parseListen(text: string, flag: string): ListenAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]+)):([0-9]{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new CliError(`${flag} "${text}" is not HOST:PORT; use for example 127.0.0.1:7080 (port 0 picks a free port)`);
  return { host: (m[1] ?? m[2])!, port };
}

/** Formats a host for a URL (IPv6 in brackets; the any-address as loopback, for copy-paste). */
export function urlHost(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}
