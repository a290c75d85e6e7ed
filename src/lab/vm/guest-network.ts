// The one network a lab VM has: QEMU user-mode networking with `restrict=on` (the guest reaches
// nothing: not the host, not the outside) plus explicit forwards from one fixed in-guest
// address, GUEST_SERVICE_ADDRESS, to ports on the host's loopback. Those forwards are the only
// ways out: the Ingot agent API and image server the lab is told about, nothing else.
//
// The guest gets 10.0.2.15/24 by DHCP from QEMU (gateway 10.0.2.2, which `restrict=on` leaves
// unreachable). Each connection to GUEST_SERVICE_ADDRESS:guestPort runs `socat` on the host,
// connected to 127.0.0.1:hostPort (QEMU's `guestfwd=…-cmd:` form: one relay per connection;
// the chardev form would carry a single connection for the life of the VM).
//
// The BMC of a lab VM sits on the same provisioning network, so a virtual media URL naming
// GUEST_SERVICE_ADDRESS:guestPort is fetched from 127.0.0.1:hostPort: the server's
// `agent.apiUrl` can then be http(s)://10.0.2.100:PORT for both the agent and the BMC.

/** The address lab VMs reach the host's forwarded services at. */
export const GUEST_SERVICE_ADDRESS = '10.0.2.100';

/** The Ingot agent listener's default port: forwarded when no forwards are given. */
export const DEFAULT_FORWARD_PORTS = [7386] as const;

export interface PortForward {
  /** Port on GUEST_SERVICE_ADDRESS inside the VM. */
  guestPort: number;
  /** Port on 127.0.0.1 of the host. */
  hostPort: number;
}

const MAX_FORWARDS = 16;

function port(text: string, spec: string): number {
  const n = Number(text);
  if (!/^\d{1,5}$/.test(text) || !Number.isInteger(n) || n < 1 || n > 65535) {
    throw new Error(`--vm-forward ${spec}: ports are whole numbers from 1 to 65535`);
  }
  return n;
}

/**
 * Parses forwards: `PORT` (same port inside and out) or `GUESTPORT:HOSTPORT`, comma-separated,
 * e.g. `7386,8080:41234`.
 */
export function parseForwards(spec: string): PortForward[] {
  const out: PortForward[] = [];
  for (const part of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const [g, h, extra] = part.split(':');
    if (extra !== undefined || g === undefined) throw new Error(`--vm-forward ${part}: write PORT or GUESTPORT:HOSTPORT, e.g. 7386 or 7386:41234`);
    out.push({ guestPort: port(g, part), hostPort: port(h ?? g, part) });
  }
  checkForwards(out);
  return out;
}

export function checkForwards(forwards: readonly PortForward[]): void {
  if (forwards.length === 0) throw new Error('lab VMs need at least one forward (the agent API port), e.g. --vm-forward 7386');
  if (forwards.length > MAX_FORWARDS) throw new Error(`at most ${MAX_FORWARDS} forwards; got ${forwards.length}`);
  const seen = new Set<number>();
  for (const f of forwards) {
    for (const p of [f.guestPort, f.hostPort]) {
      if (!Number.isInteger(p) || p < 1 || p > 65535) throw new Error(`forward ${f.guestPort}:${f.hostPort}: ports are whole numbers from 1 to 65535`);
    }
    if (seen.has(f.guestPort)) throw new Error(`guest port ${f.guestPort} is forwarded twice`);
    seen.add(f.guestPort);
  }
}

/** The `-netdev user,…` value: DHCP for the guest, no route anywhere, one relay per forward. */
export function userNetdev(id: string, forwards: readonly PortForward[], socat: string): string {
  checkForwards(forwards);
  if (!/^\/[A-Za-z0-9._/+-]+$/.test(socat)) throw new Error(`socat path ${socat} has characters the QEMU option syntax cannot carry`);
  // QEMU gives the relay the guest connection as stdin, stdout and stderr: -lf keeps socat's
  // own messages (which name host addresses) out of the guest's stream.
  const rules = forwards.map((f) => `guestfwd=tcp:${GUEST_SERVICE_ADDRESS}:${f.guestPort}-cmd:${socat} -lf /dev/null - TCP:127.0.0.1:${f.hostPort}`);
  return [`user`, `id=${id}`, 'restrict=on', ...rules].join(',');
}

/**
 * Where the BMC connects for `url`: a URL on GUEST_SERVICE_ADDRESS and a forwarded port is
 * reached on 127.0.0.1:hostPort (TLS still verifies the name in the URL); any other URL is
 * returned as is (the caller decides whether the BMC may go there).
 */
export function bmcConnectTarget(url: URL, forwards: readonly PortForward[]): { host: string; port: number; viaForward: boolean } {
  const defaultPort = url.protocol === 'https:' ? 443 : 80;
  const urlPort = url.port ? Number(url.port) : defaultPort;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (host === GUEST_SERVICE_ADDRESS) {
    const forward = forwards.find((f) => f.guestPort === urlPort);
    if (forward) return { host: '127.0.0.1', port: forward.hostPort, viaForward: true };
  }
  return { host, port: urlPort, viaForward: false };
}
