// IPPool: a static address pool for one subnet. A pool has one address family; a
// dual-stack claim uses one IPv4 pool and one IPv6 pool. Ranges may be non-contiguous
// (operators carve out addresses used by switches, VIPs, …) but must not overlap and must all
// lie in the pool's subnet. Metal3's IPPool (ip-address-manager) has the same shape.
import { Type, type Static } from 'typebox';
import { validationError, type FieldProblem } from './errors.js';
import { compareIp, formatIp, inSubnet, IP_BITS, lastOfSubnet, networkOf, parseIp, type IpAddress, type IpFamily } from './ip-address.js';

export const MAX_POOL_RANGES = 64;
export const MAX_DNS_SERVERS = 8;

const AddressText = Type.String({ minLength: 2, maxLength: 45, description: 'an IPv4 (192.0.2.10) or IPv6 (2001:db8::10) address' });

export const IpRange = Type.Object(
  {
    start: AddressText,
    end: AddressText,
  },
  { additionalProperties: false, description: 'inclusive; start and end of the same family, start <= end' },
);
export type IpRange = Static<typeof IpRange>;

export const IpPoolSpec = Type.Object(
  {
    ranges: Type.Array(IpRange, { minItems: 1, maxItems: MAX_POOL_RANGES }),
    prefix: Type.Integer({ minimum: 0, maximum: 128, description: 'prefix length of the subnet: at most 32 for IPv4, 128 for IPv6' }),
    gateway: Type.Optional(AddressText),
    dnsServers: Type.Optional(Type.Array(AddressText, { maxItems: MAX_DNS_SERVERS })),
  },
  { additionalProperties: false },
);
export type IpPoolSpec = Static<typeof IpPoolSpec>;

/** A pool spec after validation: parsed, sorted ranges and the addresses never handed out. */
export interface ParsedIpPool {
  family: IpFamily;
  prefix: number;
  /** Sorted by start, non-overlapping. */
  ranges: Array<{ start: IpAddress; end: IpAddress }>;
  gateway?: IpAddress;
  dnsServers: IpAddress[];
  /**
   * Addresses inside the ranges that allocation skips: the gateway, and for IPv4 subnets with
   * more than two addresses the network and broadcast addresses (RFC 919/922; /31 and /32 have
   * neither, RFC 3021).
   */
  reserved: IpAddress[];
}

/**
 * Checks the rules a schema cannot express and returns the parsed pool; throws one
 * INGOT_ERR_VALIDATION naming every bad field (prefixed with `field`, e.g. `spec`).
 */
export function parseIpPoolSpec(spec: IpPoolSpec, field = 'spec'): ParsedIpPool {
  const problems: FieldProblem[] = [];
  const ranges: Array<{ start: IpAddress; end: IpAddress; index: number }> = [];
  let family: IpFamily | undefined;
  spec.ranges.forEach((range, index) => {
    const at = `${field}.ranges[${index}]`;
    const start = parseIp(range.start);
    const end = parseIp(range.end);
    if (start === undefined) problems.push({ field: `${at}.start`, message: `"${range.start}" is not an IPv4 or IPv6 address` });
    if (end === undefined) problems.push({ field: `${at}.end`, message: `"${range.end}" is not an IPv4 or IPv6 address` });
    if (start === undefined || end === undefined) return;
    if (start.family !== end.family) {
      problems.push({ field: at, message: `start is IPv${start.family} but end is IPv${end.family}; a range has one address family` });
      return;
    }
    if (compareIp(start, end) > 0) {
      problems.push({ field: at, message: `start ${range.start} is after end ${range.end}; swap them` });
      return;
    }
    if (family === undefined) family = start.family;
    else if (family !== start.family) {
      problems.push({ field: at, message: `is IPv${start.family} but earlier ranges are IPv${family}; use one pool per address family` });
      return;
    }
    ranges.push({ start, end, index });
  });
  if (family === undefined) throw validationError(problems.length > 0 ? problems : [{ field: `${field}.ranges`, message: 'needs at least one range' }]);

  const bits = IP_BITS[family];
  if (!Number.isInteger(spec.prefix) || spec.prefix < 0 || spec.prefix > bits) {
    problems.push({ field: `${field}.prefix`, message: `${spec.prefix} is not a valid IPv${family} prefix length; use 0 to ${bits}` });
    throw validationError(problems);
  }
  const prefix = spec.prefix;

  ranges.sort((a, b) => compareIp(a.start, b.start));
  const base = ranges[0] as { start: IpAddress };
  for (const range of ranges) {
    const at = `${field}.ranges[${range.index}]`;
    if (!inSubnet(range.start, base.start, prefix) || !inSubnet(range.end, base.start, prefix)) {
      problems.push({
        field: at,
        message: `${formatIp(range.start)}-${formatIp(range.end)} is not inside the subnet ${formatIp({ family, value: networkOf(base.start, prefix) })}/${prefix}; all ranges share the pool's subnet`,
      });
    }
  }
  for (let i = 1; i < ranges.length; i++) {
    const previous = ranges[i - 1] as (typeof ranges)[number];
    const current = ranges[i] as (typeof ranges)[number];
    if (compareIp(current.start, previous.end) <= 0) {
      problems.push({
        field: `${field}.ranges[${current.index}]`,
        message: `overlaps ranges[${previous.index}] (${formatIp(previous.start)}-${formatIp(previous.end)}); ranges must not overlap`,
      });
    }
  }

  let gateway: IpAddress | undefined;
  if (spec.gateway !== undefined) {
    gateway = parseIp(spec.gateway);
    if (gateway === undefined) problems.push({ field: `${field}.gateway`, message: `"${spec.gateway}" is not an IPv4 or IPv6 address` });
    else if (!inSubnet(gateway, base.start, prefix)) {
      problems.push({
        field: `${field}.gateway`,
        message: `${spec.gateway} is not inside the pool's subnet ${formatIp({ family, value: networkOf(base.start, prefix) })}/${prefix}; a gateway must be on-link`,
      });
    }
  }
  const dnsServers: IpAddress[] = [];
  (spec.dnsServers ?? []).forEach((text, index) => {
    const dns = parseIp(text);
    if (dns === undefined) problems.push({ field: `${field}.dnsServers[${index}]`, message: `"${text}" is not an IPv4 or IPv6 address` });
    else dnsServers.push(dns);
  });
  if (problems.length > 0) throw validationError(problems);

  const reserved: IpAddress[] = [];
  if (gateway !== undefined) reserved.push(gateway);
  if (family === 4 && prefix <= 30) {
    reserved.push({ family, value: networkOf(base.start, prefix) }, { family, value: lastOfSubnet(base.start, prefix) });
  }
  return {
    family,
    prefix,
    ranges: ranges.map(({ start, end }) => ({ start, end })),
    ...(gateway !== undefined ? { gateway } : {}),
    dnsServers,
    reserved,
  };
}

/** How many addresses the ranges hold (reserved ones included). */
export function poolSize(pool: Pick<ParsedIpPool, 'ranges'>): bigint {
  return pool.ranges.reduce((sum, r) => sum + (r.end.value - r.start.value + 1n), 0n);
}

/** Whether `address` lies inside one of the pool's ranges. */
export function inPoolRanges(pool: Pick<ParsedIpPool, 'ranges'>, address: IpAddress): boolean {
  return pool.ranges.some((r) => compareIp(r.start, address) <= 0 && compareIp(address, r.end) <= 0);
}
