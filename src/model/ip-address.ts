// IP addresses as numbers: parse, format canonically, compare and step, for IPv4 and IPv6.
// BigInt throughout so one code path serves 32- and 128-bit addresses. The canonical text
// (what the store keeps and the API returns) is dotted-quad for IPv4 and RFC 5952 for IPv6
// (lower case, no leading zeros, the longest run of two or more zero groups as "::", the first
// such run on a tie; IPv4-mapped addresses as ::ffff:a.b.c.d per RFC 5952 section 5), so the
// same address always has one spelling and the database's UNIQUE(pool, address) is exact.

export type IpFamily = 4 | 6;

export interface IpAddress {
  family: IpFamily;
  value: bigint;
}

export const IP_BITS: Record<IpFamily, number> = { 4: 32, 6: 128 };
const MAX_VALUE: Record<IpFamily, bigint> = { 4: (1n << 32n) - 1n, 6: (1n << 128n) - 1n };
/** Longest textual IPv6 form (with an embedded IPv4 tail) is 45 characters; refuse more before parsing. */
const MAX_TEXT_LENGTH = 45;

function parseIpv4(text: string): bigint | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let value = 0n;
  for (const part of parts) {
    // No leading zeros: "010" is octal to inet_aton and decimal to others; refuse the ambiguity.
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part)) return undefined;
    const octet = Number(part);
    if (octet > 255) return undefined;
    value = (value << 8n) | BigInt(octet);
  }
  return value;
}

function parseGroups(text: string): number[] | undefined {
  if (text === '') return [];
  const groups: number[] = [];
  for (const group of text.split(':')) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(group)) return undefined;
    groups.push(parseInt(group, 16));
  }
  return groups;
}

function parseIpv6(text: string): bigint | undefined {
  let body = text;
  let tail: number[] = [];
  // RFC 4291 section 2.2 form 3: the last 32 bits may be written as dotted IPv4.
  const lastColon = body.lastIndexOf(':');
  if (body.includes('.', lastColon)) {
    const v4 = parseIpv4(body.slice(lastColon + 1));
    if (v4 === undefined) return undefined;
    tail = [Number(v4 >> 16n), Number(v4 & 0xffffn)];
    body = body.slice(0, lastColon + 1);
    // "::1.2.3.4" leaves "::"; "64:ff9b::1.2.3.4" leaves "64:ff9b::"; "1:2:3:4:5:6:1.2.3.4" leaves a trailing ':'.
    if (body.endsWith(':') && !body.endsWith('::')) body = body.slice(0, -1);
  }
  const halves = body.split('::');
  if (halves.length > 2) return undefined;
  let groups: number[];
  if (halves.length === 2) {
    const head = parseGroups(halves[0] as string);
    const rest = parseGroups(halves[1] as string);
    if (head === undefined || rest === undefined) return undefined;
    const missing = 8 - head.length - rest.length - tail.length;
    // "::" stands for at least one zero group (RFC 4291 section 2.2 form 2).
    if (missing < 1) return undefined;
    groups = [...head, ...new Array<number>(missing).fill(0), ...rest, ...tail];
  } else {
    const all = parseGroups(body);
    if (all === undefined) return undefined;
    groups = [...all, ...tail];
    if (groups.length !== 8) return undefined;
  }
  let value = 0n;
  for (const group of groups) value = (value << 16n) | BigInt(group);
  return value;
}

/** Parses an IPv4 or IPv6 address (no zone id, no prefix length); undefined if it is not one. */
export function parseIp(text: string): IpAddress | undefined {
  if (typeof text !== 'string' || text.length === 0 || text.length > MAX_TEXT_LENGTH) return undefined;
  if (text.includes(':')) {
    const value = parseIpv6(text);
    return value === undefined ? undefined : { family: 6, value };
  }
  const value = parseIpv4(text);
  return value === undefined ? undefined : { family: 4, value };
}

function formatIpv4(value: bigint): string {
  return [24n, 16n, 8n, 0n].map((shift) => String((value >> shift) & 0xffn)).join('.');
}

function formatIpv6(value: bigint): string {
  if (value >> 32n === 0xffffn) return `::ffff:${formatIpv4(value & 0xffffffffn)}`;
  const groups: number[] = [];
  for (let shift = 112n; shift >= 0n; shift -= 16n) groups.push(Number((value >> shift) & 0xffffn));
  // RFC 5952 section 4.2: compress the longest run of zero groups (length >= 2), the first on a tie.
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

/** The canonical text of an address (dotted quad; RFC 5952 for IPv6). */
export function formatIp(address: IpAddress): string {
  if (address.value < 0n || address.value > MAX_VALUE[address.family]) throw new RangeError(`not an IPv${address.family} address value: ${address.value}`);
  return address.family === 4 ? formatIpv4(address.value) : formatIpv6(address.value);
}

/** The canonical text of `text`, or undefined when it is not an address. */
export function canonicalIp(text: string): string | undefined {
  const parsed = parseIp(text);
  return parsed === undefined ? undefined : formatIp(parsed);
}

/** Orders addresses: IPv4 before IPv6, then numerically. */
export function compareIp(a: IpAddress, b: IpAddress): number {
  if (a.family !== b.family) return a.family - b.family;
  return a.value < b.value ? -1 : a.value > b.value ? 1 : 0;
}

/** The address `by` steps after `address` (negative steps back); undefined past either end of the family. */
export function incrementIp(address: IpAddress, by: bigint = 1n): IpAddress | undefined {
  const value = address.value + by;
  if (value < 0n || value > MAX_VALUE[address.family]) return undefined;
  return { family: address.family, value };
}

/** The network address of `address` under a prefix length (host bits cleared). */
export function networkOf(address: IpAddress, prefix: number): bigint {
  const hostBits = BigInt(IP_BITS[address.family] - prefix);
  return (address.value >> hostBits) << hostBits;
}

/** The highest address of the subnet (the IPv4 broadcast address). */
export function lastOfSubnet(address: IpAddress, prefix: number): bigint {
  const hostBits = BigInt(IP_BITS[address.family] - prefix);
  return networkOf(address, prefix) | ((1n << hostBits) - 1n);
}

/** Whether `address` lies in the subnet of `base`/`prefix`. */
export function inSubnet(address: IpAddress, base: IpAddress, prefix: number): boolean {
  return address.family === base.family && networkOf(address, prefix) === networkOf(base, prefix);
}

/** Dotted-quad netmask of an IPv4 prefix length (network_data.json wants it this way). */
export function ipv4Netmask(prefix: number): string {
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > 32) throw new RangeError(`not an IPv4 prefix length: ${prefix}`);
  const mask = prefix === 0 ? 0n : ((1n << 32n) - 1n) ^ ((1n << BigInt(32 - prefix)) - 1n);
  return formatIpv4(mask);
}
