import fc from 'fast-check';
import { isIP } from 'node:net';
import { describe, expect, it } from 'vitest';
import { canonicalIp, compareIp, formatIp, incrementIp, inSubnet, ipv4Netmask, networkOf, parseIp } from './ip-address.js';

describe('IP addresses', () => {
  it.each([
    ['192.0.2.1', '192.0.2.1'],
    ['0.0.0.0', '0.0.0.0'],
    ['255.255.255.255', '255.255.255.255'],
    ['2001:DB8::1', '2001:db8::1'],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['::', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // RFC 5952 4.2.3: first of equal runs
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'], // RFC 5952 4.2.3: longest run
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // RFC 5952 4.2.2: one zero group is not compressed
    ['::ffff:192.0.2.1', '::ffff:192.0.2.1'], // RFC 5952 section 5
    ['::ffff:c000:0201', '::ffff:192.0.2.1'],
    ['64:ff9b::192.0.2.33', '64:ff9b::c000:221'],
    ['1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:102:304'],
  ])('canonical form of %s is %s', (input, canonical) => {
    expect(canonicalIp(input)).toBe(canonical);
  });

  it.each(['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1.2.3.-1', ' 1.2.3.4', '1:2:3:4:5:6:7:8:9', '1::2::3', ':1::', '12345::', 'g::1', '::1%eth0', '1:2:3:4:5:6:7::8', '1.2.3.4::', '::1.2.3', '1:2:3:4:5:6:7:1.2.3.4', 'x'.repeat(100)])(
    'refuses %j',
    (input) => {
      expect(parseIp(input)).toBeUndefined();
    },
  );

  it('property: IPv6 canonical text matches the WHATWG URL serializer (RFC 5952 compression) and round-trips', () => {
    const group = fc.integer({ min: 0, max: 0xffff });
    fc.assert(
      fc.property(fc.array(fc.oneof(group, fc.constant(0)), { minLength: 8, maxLength: 8 }), (groups) => {
        const value = groups.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n);
        const text = formatIp({ family: 6, value });
        expect(isIP(text)).toBe(6);
        expect(parseIp(text)).toEqual({ family: 6, value });
        // WHATWG writes IPv4-mapped addresses in hex; RFC 5952 section 5 prefers dotted.
        if (value >> 32n !== 0xffffn) expect(text).toBe(new URL(`http://[${groups.map((g) => g.toString(16)).join(':')}]/`).hostname.slice(1, -1));
      }),
    );
  });

  it('property: IPv4 round-trips and orders numerically', () => {
    fc.assert(
      fc.property(fc.ipV4(), fc.ipV4(), (a, b) => {
        const pa = parseIp(a);
        const pb = parseIp(b);
        expect(pa && formatIp(pa)).toBe(a);
        const numeric = (s: string) => s.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
        expect(Math.sign(compareIp(pa!, pb!))).toBe(Math.sign(numeric(a) - numeric(b)));
      }),
    );
  });

  it('steps, stops at the ends of the family, and does subnet arithmetic', () => {
    expect(formatIp(incrementIp(parseIp('192.0.2.255')!)!)).toBe('192.0.3.0');
    expect(incrementIp(parseIp('255.255.255.255')!)).toBeUndefined();
    expect(incrementIp(parseIp('::')!, -1n)).toBeUndefined();
    expect(formatIp(incrementIp(parseIp('2001:db8::ffff')!)!)).toBe('2001:db8::1:0');
    expect(compareIp(parseIp('255.255.255.255')!, parseIp('::')!)).toBeLessThan(0);
    expect(formatIp({ family: 4, value: networkOf(parseIp('192.0.2.77')!, 26) })).toBe('192.0.2.64');
    expect(inSubnet(parseIp('2001:db8::1:1')!, parseIp('2001:db8::')!, 112)).toBe(false);
    expect(inSubnet(parseIp('2001:db8::1:1')!, parseIp('2001:db8::')!, 64)).toBe(true);
    expect([0, 8, 24, 25, 31, 32].map(ipv4Netmask)).toEqual(['0.0.0.0', '255.0.0.0', '255.255.255.0', '255.255.255.128', '255.255.255.254', '255.255.255.255']);
  });
});
