import { describe, expect, it } from 'vitest';
import { IngotError } from './errors.js';
import { formatIp, parseIp } from './ip-address.js';
import { inPoolRanges, parseIpPoolSpec, poolSize, type IpPoolSpec } from './ip-pool.js';

function problems(spec: IpPoolSpec): string[] {
  try {
    parseIpPoolSpec(spec);
  } catch (error) {
    expect(error).toBeInstanceOf(IngotError);
    return (error as IngotError).details.map((d) => `${d.field}: ${d.message}`);
  }
  return [];
}

describe('IPPool spec', () => {
  it('parses a non-contiguous IPv4 pool, sorts ranges and reserves gateway, network and broadcast', () => {
    const pool = parseIpPoolSpec({ ranges: [{ start: '192.0.2.100', end: '192.0.2.255' }, { start: '192.0.2.0', end: '192.0.2.9' }], prefix: 24, gateway: '192.0.2.1', dnsServers: ['192.0.2.53'] });
    expect(pool.family).toBe(4);
    expect(pool.ranges.map((r) => `${formatIp(r.start)}-${formatIp(r.end)}`)).toEqual(['192.0.2.0-192.0.2.9', '192.0.2.100-192.0.2.255']);
    expect(pool.reserved.map(formatIp)).toEqual(['192.0.2.1', '192.0.2.0', '192.0.2.255']);
    expect(poolSize(pool)).toBe(166n);
    expect(inPoolRanges(pool, parseIp('192.0.2.50')!)).toBe(false);
    expect(inPoolRanges(pool, parseIp('192.0.2.100')!)).toBe(true);
  });

  it('reserves no network/broadcast in IPv4 /31 (RFC 3021) nor in IPv6', () => {
    expect(parseIpPoolSpec({ ranges: [{ start: '192.0.2.0', end: '192.0.2.1' }], prefix: 31 }).reserved).toEqual([]);
    expect(parseIpPoolSpec({ ranges: [{ start: '2001:db8::10', end: '2001:db8::ff' }], prefix: 64, gateway: '2001:db8::1' }).reserved.map(formatIp)).toEqual(['2001:db8::1']);
  });

  it.each<[string, IpPoolSpec, string]>([
    ['a bad address', { ranges: [{ start: '192.0.2.300', end: '192.0.2.4' }], prefix: 24 }, 'spec.ranges[0].start: "192.0.2.300" is not an IPv4 or IPv6 address'],
    ['mixed families in a range', { ranges: [{ start: '192.0.2.1', end: '2001:db8::1' }], prefix: 24 }, 'spec.ranges[0]: start is IPv4 but end is IPv6'],
    ['start after end', { ranges: [{ start: '192.0.2.9', end: '192.0.2.1' }], prefix: 24 }, 'spec.ranges[0]: start 192.0.2.9 is after end 192.0.2.1'],
    ['mixed families across ranges', { ranges: [{ start: '192.0.2.1', end: '192.0.2.2' }, { start: '2001:db8::1', end: '2001:db8::2' }], prefix: 24 }, 'spec.ranges[1]: is IPv6 but earlier ranges are IPv4'],
    ['overlap', { ranges: [{ start: '192.0.2.1', end: '192.0.2.20' }, { start: '192.0.2.20', end: '192.0.2.30' }], prefix: 24 }, 'spec.ranges[1]: overlaps ranges[0] (192.0.2.1-192.0.2.20)'],
    ['a prefix too long for IPv4', { ranges: [{ start: '192.0.2.1', end: '192.0.2.2' }], prefix: 33 }, 'spec.prefix: 33 is not a valid IPv4 prefix length'],
    ['a range outside the subnet', { ranges: [{ start: '192.0.2.1', end: '192.0.3.2' }], prefix: 24 }, 'not inside the subnet 192.0.2.0/24'],
    ['a gateway outside the subnet', { ranges: [{ start: '192.0.2.10', end: '192.0.2.20' }], prefix: 24, gateway: '198.51.100.1' }, 'spec.gateway: 198.51.100.1 is not inside the pool\'s subnet 192.0.2.0/24'],
    ['a v6 gateway for a v4 pool', { ranges: [{ start: '192.0.2.10', end: '192.0.2.20' }], prefix: 24, gateway: '2001:db8::1' }, 'spec.gateway: 2001:db8::1 is not inside'],
    ['a bad DNS server', { ranges: [{ start: '192.0.2.10', end: '192.0.2.20' }], prefix: 24, dnsServers: ['dns.example'] }, 'spec.dnsServers[0]: "dns.example" is not an IPv4 or IPv6 address'],
  ])('refuses %s, naming the field', (_, spec, expected) => {
    expect(problems(spec).join('\n')).toContain(expected);
  });
});
