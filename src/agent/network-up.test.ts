// Network bring-up against a real DHCP server: two network namespaces joined by veth pairs,
// busybox udhcpd answering in one, and the agent's bringUpNetwork (the built dist/ module)
// running in the other under `ip netns exec`, as it would on a freshly booted ramdisk.
// Needs root (network namespaces), iproute2 and busybox; skipped with the reason otherwise.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const MODULE = resolve('dist/src/agent/network-up.js');

function canUseNetns(): boolean {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return false;
  try {
    execFileSync('busybox', ['udhcpd', '--help'], { stdio: 'ignore' });
  } catch (err) {
    // busybox prints applet help with exit status 1; ENOENT means it is missing.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
  }
  const probe = `ingot-probe-${randomBytes(3).toString('hex')}`;
  try {
    execFileSync('ip', ['netns', 'add', probe], { stdio: 'ignore' });
    execFileSync('ip', ['netns', 'del', probe], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const usable = canUseNetns();
const tag = randomBytes(3).toString('hex');
const SERVER_NS = `ingot-dhcps-${tag}`;
const CLIENT_NS = `ingot-dhcpc-${tag}`;
const LONELY_NS = `ingot-dhcpl-${tag}`;
const dir = mkdtempSync(join(tmpdir(), 'ingot-network-up-'));
const servers: ChildProcess[] = [];
const ipIn = (ns: string, ...args: string[]) => execFileSync('ip', ['netns', 'exec', ns, 'ip', ...args], { encoding: 'utf8' });
const macIn = (ns: string, dev: string) => (JSON.parse(ipIn(ns, '-j', 'link', 'show', 'dev', dev)) as Array<{ address: string }>)[0]!.address;

/** A veth pair with one end in each namespace. */
function wire(a: string, aNs: string, b: string, bNs: string) {
  execFileSync('ip', ['link', 'add', a, 'type', 'veth', 'peer', 'name', b]);
  execFileSync('ip', ['link', 'set', a, 'netns', aNs]);
  execFileSync('ip', ['link', 'set', b, 'netns', bNs]);
}

/** busybox udhcpd on `dev` in the server namespace, handing out 10.77.N.100-110/24. */
function dhcpServer(dev: string, n: number) {
  ipIn(SERVER_NS, 'addr', 'add', `10.77.${n}.1/24`, 'dev', dev);
  ipIn(SERVER_NS, 'link', 'set', 'dev', dev, 'up');
  const conf = join(dir, `udhcpd-${dev}.conf`);
  writeFileSync(join(dir, `leases-${dev}`), '');
  writeFileSync(
    conf,
    [`start 10.77.${n}.100`, `end 10.77.${n}.110`, `interface ${dev}`, `lease_file ${join(dir, `leases-${dev}`)}`, `pidfile ${join(dir, `udhcpd-${dev}.pid`)}`, 'option subnet 255.255.255.0', `option router 10.77.${n}.1`, `option dns 10.77.${n}.53`, 'option lease 600', ''].join('\n'),
  );
  servers.push(spawn('ip', ['netns', 'exec', SERVER_NS, 'busybox', 'udhcpd', '-f', conf], { stdio: 'ignore' }));
}

/** Runs bringUpNetwork in `ns`; resolves with its result or its error message. */
function bringUpIn(ns: string, options: Record<string, unknown>): { ok: true; value: Record<string, string> } | { ok: false; error: string } {
  const script = `import(${JSON.stringify(MODULE)}).then((m) => m.bringUpNetwork(${JSON.stringify(options)})).then((r) => console.log(JSON.stringify({ ok: true, value: r })), (e) => console.log(JSON.stringify({ ok: false, error: e.message })))`;
  const out = execFileSync('ip', ['netns', 'exec', ns, process.execPath, '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
  return JSON.parse(out.trim().split('\n').pop()!);
}

describe.skipIf(!usable)('bringUpNetwork against busybox udhcpd (network namespaces)', () => {
  beforeAll(() => {
    if (!existsSync(MODULE)) throw new Error(`${MODULE} is missing: the test setup builds dist/ (npm run build)`);
    for (const ns of [SERVER_NS, CLIENT_NS, LONELY_NS]) execFileSync('ip', ['netns', 'add', ns]);
    // Client: ca0 (lower index) on subnet 10.77.1.0/24, ca1 on 10.77.2.0/24. Lonely: one link, no server.
    wire(`sa0${tag}`.slice(0, 15), SERVER_NS, 'ca0', CLIENT_NS);
    wire(`sa1${tag}`.slice(0, 15), SERVER_NS, 'ca1', CLIENT_NS);
    wire(`sl0${tag}`.slice(0, 15), SERVER_NS, 'la0', LONELY_NS);
    ipIn(SERVER_NS, 'link', 'set', 'dev', `sl0${tag}`.slice(0, 15), 'up');
    dhcpServer(`sa0${tag}`.slice(0, 15), 1);
    dhcpServer(`sa1${tag}`.slice(0, 15), 2);
  });

  afterAll(() => {
    for (const s of servers) s.kill('SIGTERM');
    for (const ns of [SERVER_NS, CLIENT_NS, LONELY_NS]) {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      } catch {
        // already gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('1. gets a lease on the boot MAC first (though another NIC comes first), with route and resolvers; 2. a second call keeps it', () => {
    const bootMac = macIn(CLIENT_NS, 'ca1').toUpperCase();
    const resolvConf = join(dir, 'resolv.conf');
    const first = bringUpIn(CLIENT_NS, { preferMacs: [bootMac], resolvConf, dhcpAttempts: 3 });
    expect(first).toMatchObject({ ok: true, value: { interface: 'ca1', via: 'dhcp' } });
    if (!first.ok) return;
    expect(first.value.address).toMatch(/^10\.77\.2\.1(0\d|10)\/24$/);
    expect(first.value.mac).toBe(bootMac.toLowerCase());
    expect(ipIn(CLIENT_NS, '-4', 'route', 'show', 'default')).toMatch(/default via 10\.77\.2\.1 dev ca1/);
    expect(readFileSync(resolvConf, 'utf8')).toBe('nameserver 10.77.2.53\n');
    // Both links were set up, so the inventory reports their real state.
    expect(ipIn(CLIENT_NS, '-j', 'link', 'show', 'dev', 'ca0')).toMatch(/"UP"/);

    const again = bringUpIn(CLIENT_NS, { preferMacs: [bootMac], resolvConf });
    expect(again).toEqual({ ok: true, value: { interface: 'ca1', mac: bootMac.toLowerCase(), address: first.value.address, via: 'existing' } });
  });

  it('with no lease anywhere, fails saying which interfaces were tried and what to check', () => {
    const result = bringUpIn(LONELY_NS, { dhcpAttempts: 1, carrierWaitSeconds: 2, resolvConf: join(dir, 'lonely-resolv.conf') });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error).toMatch(/no DHCP lease on any Ethernet interface \(la0 \([0-9a-f:]{17}\): no lease\).*DHCP server/);
  });
});
