// Network bring-up for the agent on its ramdisk, before it can reach the agent API. What init
// did is kept: an interface that already has a global IPv4 address (DHCP by init, `ip=` on the
// kernel command line) is used as it is. Otherwise every Ethernet link is set up (so the
// inventory reports real link state), and DHCP runs on one interface at a time: first those
// whose MAC is the host's boot MAC (the boot configuration names it), then those with a
// carrier, then the rest, in interface index order; the first lease wins.
//
// DHCP is busybox's udhcpc (`udhcpc`, or the `busybox udhcpc` applet) with a lease script
// of our own, so the ramdisk needs no /usr/share/udhcpc: the script sets the address, the
// default route and the resolvers with `ip`. Nothing here runs when the network is up already.
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { findOnPath } from '../images/qemu-img.js';

const execFileAsync = promisify(execFile);
/** ARPHRD_ETHER in /sys/class/net/NAME/type (linux/if_arp.h). */
const ARPHRD_ETHER = '1';

/**
 * The lease script udhcpc runs with $1 = deconfig | bound | renew | leasefail | nak and the
 * lease in the environment (busybox networking/udhcp/dhcpc.c: ip, mask as a prefix length,
 * subnet, router, dns). RESOLV_CONF says where resolvers go.
 */
const LEASE_SCRIPT = `#!/bin/sh
IP="\${INGOT_IP:-ip}"
case "$1" in
  deconfig)
    $IP -4 addr flush dev "$interface"
    $IP link set dev "$interface" up
    ;;
  bound|renew)
    $IP -4 addr flush dev "$interface"
    $IP addr add "$ip/\${mask:-$subnet}" dev "$interface"
    for r in $router; do
      $IP route replace default via "$r" dev "$interface"
      break
    done
    if [ -n "$dns" ] && [ -n "$RESOLV_CONF" ]; then
      : > "$RESOLV_CONF"
      for d in $dns; do echo "nameserver $d" >> "$RESOLV_CONF"; done
    fi
    ;;
esac
exit 0
`;

export interface NetworkInterface {
  name: string;
  mac: string;
  index: number;
  carrier: boolean;
}

export interface NetworkUp {
  interface: string;
  mac: string;
  /** CIDR, e.g. 10.0.2.15/24. */
  address: string;
  /** existing: init (or the kernel) had configured it; dhcp: udhcpc got a lease now. */
  via: 'existing' | 'dhcp';
}

export interface NetworkUpOptions {
  /** MACs to try first (the host's spec.bootMACAddress); compared case-insensitively. */
  preferMacs?: string[];
  /** Seconds to wait for a carrier on a link that was down (default 10). */
  carrierWaitSeconds?: number;
  /** DISCOVER attempts per interface, 3 s apart (default 4). */
  dhcpAttempts?: number;
  /** Where the lease script writes nameservers (default /etc/resolv.conf; tests give a temp file). */
  resolvConf?: string;
  log?: (message: string, fields?: Record<string, unknown>) => void;
}

async function readTrimmed(path: string): Promise<string | undefined> {
  return (await readFile(path, 'utf8').catch(() => undefined))?.trim() || undefined;
}

/** Ethernet interfaces from /sys/class/net, in index order. */
export async function listEthernet(): Promise<NetworkInterface[]> {
  const found: NetworkInterface[] = [];
  for (const name of await readdir('/sys/class/net').catch(() => [] as string[])) {
    const base = `/sys/class/net/${name}`;
    if ((await readTrimmed(`${base}/type`)) !== ARPHRD_ETHER) continue;
    const mac = (await readTrimmed(`${base}/address`))?.toLowerCase();
    if (!mac || mac === '00:00:00:00:00:00') continue;
    found.push({ name, mac, index: Number(await readTrimmed(`${base}/ifindex`)) || Number.MAX_SAFE_INTEGER, carrier: (await readTrimmed(`${base}/carrier`)) === '1' });
  }
  return found.sort((a, b) => a.index - b.index);
}

/** A tool on PATH, or the busybox applet of that name; undefined when neither exists. */
async function tool(name: string): Promise<string[] | undefined> {
  const direct = await findOnPath(name);
  if (direct) return [direct];
  const busybox = await findOnPath('busybox');
  return busybox ? [busybox, name] : undefined;
}

async function runTool(argv: string[], args: string[], timeoutMs: number, env?: NodeJS.ProcessEnv): Promise<string> {
  const { stdout } = await execFileAsync(argv[0]!, [...argv.slice(1), ...args], { timeout: timeoutMs, maxBuffer: 1024 * 1024, ...(env ? { env } : {}) });
  return stdout;
}

/** Global IPv4 addresses of `name` as CIDR (`ip -4 -o addr show dev NAME`, which busybox ip also prints). */
async function ipv4Of(ip: string[], name: string): Promise<string[]> {
  const out = await runTool(ip, ['-4', '-o', 'addr', 'show', 'dev', name], 10_000).catch(() => '');
  return [...out.matchAll(/\binet\s+(\d+\.\d+\.\d+\.\d+\/\d+)\b(?:(?!\n).)*?\bscope\s+global\b/g)].map((m) => m[1]!);
}

/**
 * Makes sure the host has a configured Ethernet interface; returns which, or throws an Error
 * saying what was tried and what to check. Safe to call when the network is already up.
 */
export async function bringUpNetwork(opts: NetworkUpOptions = {}): Promise<NetworkUp> {
  const log = opts.log ?? (() => {});
  const ip = await tool('ip');
  if (!ip) throw new Error('no `ip` command (iproute2 or busybox) on PATH: the ramdisk cannot configure its network');
  const links = await listEthernet();
  if (links.length === 0) throw new Error('no Ethernet interface in /sys/class/net: the ramdisk may lack the driver for this NIC (see the module list in docs/agent.md)');

  for (const link of links) {
    const address = (await ipv4Of(ip, link.name))[0];
    if (address) {
      log('network already configured', { interface: link.name, address });
      return { interface: link.name, mac: link.mac, address, via: 'existing' };
    }
  }

  for (const link of links) await runTool(ip, ['link', 'set', 'dev', link.name, 'up'], 10_000).catch((err: Error) => log('could not set a link up', { interface: link.name, error: err.message }));
  const preferred = new Set((opts.preferMacs ?? []).map((m) => m.toLowerCase()));
  const waitUntil = Date.now() + (opts.carrierWaitSeconds ?? 10) * 1000;
  let ordered = links;
  // Carriers take a moment after link up; wait (bounded) until the preferred link, or any, has one.
  for (;;) {
    const now = await listEthernet();
    const carrier = new Set(now.filter((l) => l.carrier).map((l) => l.name));
    ordered = [...links].sort((a, b) => rank(a) - rank(b) || a.index - b.index);
    function rank(l: NetworkInterface) {
      return (preferred.has(l.mac) ? 0 : 2) + (carrier.has(l.name) ? 0 : 1);
    }
    const wanted = links.filter((l) => preferred.has(l.mac));
    const ready = wanted.length > 0 ? wanted.some((l) => carrier.has(l.name)) : carrier.size > 0;
    if (ready || Date.now() >= waitUntil) break;
    await sleep(250);
  }

  const udhcpc = await tool('udhcpc');
  if (!udhcpc) throw new Error(`no interface has an address and there is no udhcpc (busybox) on PATH to ask DHCP; links: ${links.map((l) => l.name).join(', ')}`);
  const dir = await mkdtemp(join(tmpdir(), 'ingot-dhcp-'));
  const script = join(dir, 'lease.sh');
  await writeFile(script, LEASE_SCRIPT, { mode: 0o700 });
  const attempts = opts.dhcpAttempts ?? 4;
  const tried: string[] = [];
  try {
    for (const link of ordered) {
      log('asking DHCP', { interface: link.name, mac: link.mac });
      try {
        // -f foreground, -q quit once bound, -n fail instead of retrying forever, -t/-T attempts and spacing.
        await runTool(udhcpc, ['-f', '-q', '-n', '-i', link.name, '-t', String(attempts), '-T', '3', '-s', script], (attempts * 3 + 10) * 1000, {
          ...process.env,
          INGOT_IP: ip.join(' '),
          RESOLV_CONF: opts.resolvConf ?? '/etc/resolv.conf',
        });
      } catch (err) {
        tried.push(`${link.name} (${link.mac}): no lease`);
        log('no DHCP lease', { interface: link.name, error: (err as Error).message.split('\n')[0] });
        continue;
      }
      const address = (await ipv4Of(ip, link.name))[0];
      if (address) {
        log('network up', { interface: link.name, address });
        return { interface: link.name, mac: link.mac, address, via: 'dhcp' };
      }
      tried.push(`${link.name} (${link.mac}): lease without an address`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  throw new Error(`no DHCP lease on any Ethernet interface (${tried.join('; ')}): check that the host's NICs are cabled to a network with a DHCP server that answers them`);
}
