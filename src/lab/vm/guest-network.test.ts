import { describe, expect, it } from 'vitest';
import { bmcConnectTarget, GUEST_SERVICE_ADDRESS, parseForwards, userNetdev } from './guest-network.js';

describe('VM network forwards', () => {
  it('parses PORT and GUESTPORT:HOSTPORT lists', () => {
    expect(parseForwards('7386, 8080:41234')).toEqual([
      { guestPort: 7386, hostPort: 7386 },
      { guestPort: 8080, hostPort: 41234 },
    ]);
  });

  it.each([
    ['', 'at least one forward'],
    ['0', 'from 1 to 65535'],
    ['70000', 'from 1 to 65535'],
    ['1:2:3', 'PORT or GUESTPORT:HOSTPORT'],
    ['80,80:81', 'forwarded twice'],
    ['abc', 'from 1 to 65535'],
  ])('refuses %j', (spec, message) => {
    expect(() => parseForwards(spec)).toThrow(message);
  });

  it('restricts the user network and allows only the explicit forwards', () => {
    const netdev = userNetdev('nic0-net', [{ guestPort: 7386, hostPort: 41000 }], '/usr/bin/socat');
    const parts = netdev.split(',');
    expect(parts).toContain('restrict=on');
    // No host forwards into the guest, no other guest forwards, no SMB/TFTP/boot file.
    expect(parts.filter((p) => p.startsWith('guestfwd='))).toEqual([`guestfwd=tcp:${GUEST_SERVICE_ADDRESS}:7386-cmd:/usr/bin/socat -lf /dev/null - TCP:127.0.0.1:41000`]);
    expect(parts.some((p) => /^(hostfwd|smb|tftp|bootfile)=/.test(p))).toBe(false);
  });

  it('refuses a relay path QEMU option syntax would split', () => {
    expect(() => userNetdev('n', [{ guestPort: 1, hostPort: 1 }], '/opt/my,socat')).toThrow('cannot carry');
  });

  it('maps URLs on the forwarded address to the host loopback, others not', () => {
    const forwards = [{ guestPort: 7386, hostPort: 41000 }];
    expect(bmcConnectTarget(new URL(`http://${GUEST_SERVICE_ADDRESS}:7386/agent/v1/boot/x`), forwards)).toEqual({ host: '127.0.0.1', port: 41000, viaForward: true });
    expect(bmcConnectTarget(new URL(`https://${GUEST_SERVICE_ADDRESS}/x`), forwards)).toEqual({ host: GUEST_SERVICE_ADDRESS, port: 443, viaForward: false });
    expect(bmcConnectTarget(new URL('http://127.0.0.1:7386/x'), forwards)).toEqual({ host: '127.0.0.1', port: 7386, viaForward: false });
  });
});
