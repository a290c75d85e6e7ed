// Which hosts can serve a node type, in which order, and why none can.
//
// Order ("smallest sufficient host first"): ascending by RAM, then CPUs, then total disk
// bytes, then name, then uid. Giving the smallest host that satisfies the selector keeps the
// big machines free for the claims that need them, and a total order on fields that do not
// change while a host waits makes the choice the same in every process and on every run.
//
// A host is a candidate only while it is `available`, not being deleted, and not bound: it has
// no `ingot.dev/claim` label and its uid is not in `bound` (the store's host_bindings, which
// are the authority: the label may lag behind a binding made a moment ago by another process).
import type { Host, HardwareDetails } from '../model/host.js';
import { CLAIM_LABEL, type HostSelector, type NodeTypeSpec } from '../model/node-type.js';

export type MatchableHost = Pick<Host, 'metadata' | 'status'>;

export interface MatchOptions {
  /** uids of hosts bound to a claim already (Store.listHostBindings). */
  bound?: ReadonlySet<string>;
}

/** The numbers a host is ordered by and compared against a selector. */
export interface HostMeasures {
  cpus: number;
  ramMebibytes: number;
  /** Largest single disk, in GB (10^9 bytes), as root device hints count. */
  largestDiskGigabytes: number;
  totalDiskBytes: number;
}

export function measureHost(hardware: HardwareDetails | undefined): HostMeasures {
  const disks = hardware?.storage ?? [];
  return {
    cpus: hardware?.cpu?.threads ?? hardware?.cpu?.cores ?? hardware?.cpu?.count ?? 0,
    ramMebibytes: hardware?.ramMebibytes ?? 0,
    largestDiskGigabytes: Math.floor(disks.reduce((max, d) => Math.max(max, d.sizeBytes), 0) / 1e9),
    totalDiskBytes: disks.reduce((sum, d) => sum + d.sizeBytes, 0),
  };
}

/** One requirement of a selector: its headline, and a check that says what a host lacks. */
interface Requirement {
  /** "with secureBoot", "with >= 65536 MiB memory". */
  headline: string;
  /** undefined when the host meets it; otherwise the shortfall, phrased for `count` hosts. */
  check(host: MatchableHost, measures: HostMeasures): ((count: number) => string) | undefined;
}

const has = (n: number) => (n === 1 ? 'has' : 'have');
const lacks = (n: number) => (n === 1 ? 'lacks' : 'lack');

/** The selector's requirements in the fixed order a host's first shortfall is reported in. */
function requirements(selector: HostSelector): Requirement[] {
  const list: Requirement[] = [];
  for (const [key, value] of Object.entries(selector.matchLabels ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    list.push({
      headline: `with label ${key}=${value}`,
      check: (host) => {
        const actual = host.metadata.labels?.[key];
        if (actual === value) return undefined;
        return actual === undefined ? (n) => `${lacks(n)} label ${key}` : (n) => `${has(n)} label ${key}=${actual}, not ${value}`;
      },
    });
  }
  const minCpus = selector.minCpus;
  if (minCpus !== undefined) {
    list.push({ headline: `with >= ${minCpus} CPUs`, check: (_, m) => (m.cpus >= minCpus ? undefined : (n) => `${has(n)} ${m.cpus} CPUs < ${minCpus}`) });
  }
  const minMemory = selector.minMemoryMebibytes;
  if (minMemory !== undefined) {
    list.push({
      headline: `with >= ${minMemory} MiB memory`,
      check: (_, m) => (m.ramMebibytes >= minMemory ? undefined : (n) => `${has(n)} ${m.ramMebibytes} MiB < ${minMemory} MiB memory`),
    });
  }
  const minDisk = selector.minDiskGigabytes;
  if (minDisk !== undefined) {
    list.push({
      headline: `with a disk >= ${minDisk} GB`,
      check: (_, m) => (m.largestDiskGigabytes >= minDisk ? undefined : (n) => `${has(n)} largest disk ${m.largestDiskGigabytes} GB < ${minDisk} GB`),
    });
  }
  const capabilities = selector.capabilities ?? {};
  if (capabilities.secureBoot === true) {
    list.push({ headline: 'with secureBoot', check: (host) => (host.status.hardware?.secureBootCapable === true ? undefined : (n) => `${lacks(n)} secure boot`) });
  }
  const gpu = capabilities.gpu;
  if (gpu !== undefined) {
    const count = gpu.count ?? 1;
    const model = gpu.model?.toLowerCase();
    const what = model === undefined ? `${count} GPU${count === 1 ? '' : 's'}` : `${count} GPU${count === 1 ? '' : 's'} "${gpu.model}"`;
    list.push({
      headline: `with ${what}`,
      check: (host) => {
        const found = (host.status.hardware?.gpus ?? []).filter((g) => model === undefined || g.model.toLowerCase().includes(model)).length;
        return found >= count ? undefined : (n) => `${has(n)} ${found} of ${what}`;
      },
    });
  }
  const minNic = capabilities.minNicSpeedGbps;
  if (minNic !== undefined) {
    list.push({
      headline: `with a NIC >= ${minNic} Gbps`,
      check: (host) => {
        const fastest = (host.status.hardware?.nics ?? []).reduce((max, nic) => Math.max(max, nic.speedGbps ?? 0), 0);
        return fastest >= minNic ? undefined : (n) => `${has(n)} fastest NIC ${fastest} Gbps < ${minNic} Gbps`;
      },
    });
  }
  return list;
}

/** Why a host is not a candidate at all (before the selector is looked at), or undefined. */
function unavailability(host: MatchableHost, bound: ReadonlySet<string>): string | undefined {
  if (host.metadata.labels?.[CLAIM_LABEL] !== undefined || bound.has(host.metadata.uid)) return 'bound to a claim';
  if (host.metadata.deletionTimestamp !== undefined) return 'being deleted';
  const state = host.status?.provisioning?.state;
  return state === 'available' ? undefined : state ?? 'unknown';
}

const byteOrder = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** The deterministic "smallest sufficient first" order (see the file comment). */
export function compareHosts(a: MatchableHost, b: MatchableHost): number {
  const ma = measureHost(a.status.hardware);
  const mb = measureHost(b.status.hardware);
  return (
    ma.ramMebibytes - mb.ramMebibytes ||
    ma.cpus - mb.cpus ||
    ma.totalDiskBytes - mb.totalDiskBytes ||
    byteOrder(a.metadata.name, b.metadata.name) ||
    byteOrder(a.metadata.uid, b.metadata.uid)
  );
}

/** Available, unbound hosts that satisfy the node type's selector, smallest sufficient first. */
export function matchHosts<H extends MatchableHost>(nodeType: Pick<NodeTypeSpec, 'selector'>, hosts: readonly H[], options: MatchOptions = {}): H[] {
  const bound = options.bound ?? new Set<string>();
  const reqs = requirements(nodeType.selector);
  return hosts
    .filter((host) => {
      if (unavailability(host, bound) !== undefined) return false;
      const measures = measureHost(host.status.hardware);
      return reqs.every((r) => r.check(host, measures) === undefined);
    })
    .sort(compareHosts);
}

/**
 * Says what is missing when matchHosts finds nothing, for a pending claim's status, e.g.
 * `no available host matches: 0 hosts with secureBoot (3 available hosts checked: 2 lack
 * secure boot, 1 has 32768 MiB < 65536 MiB memory)`. The headline names the requirement the
 * fewest available hosts meet; each host is then counted under its first shortfall (labels,
 * CPUs, memory, disk, secure boot, GPUs, NIC speed). Returns undefined when a host matches.
 */
export function explainNoMatch(nodeType: Pick<NodeTypeSpec, 'selector'>, hosts: readonly MatchableHost[], options: MatchOptions = {}): string | undefined {
  const bound = options.bound ?? new Set<string>();
  const reqs = requirements(nodeType.selector);
  const available: MatchableHost[] = [];
  const elsewhere = new Map<string, number>();
  for (const host of hosts) {
    const why = unavailability(host, bound);
    if (why === undefined) available.push(host);
    else elsewhere.set(why, (elsewhere.get(why) ?? 0) + 1);
  }
  const others = [...elsewhere.entries()].sort(([a, x], [b, y]) => y - x || byteOrder(a, b)).map(([why, n]) => `${n} ${why}`);
  const notAvailable = others.length === 0 ? '' : `; not available: ${others.join(', ')}`;
  if (available.length === 0) return `no available host matches: 0 available hosts${hosts.length === 0 ? ' (no hosts enrolled)' : ` (${hosts.length} host${hosts.length === 1 ? '' : 's'} checked${notAvailable})`}`;

  const meeting = reqs.map(() => 0);
  const shortfalls = new Map<string, number>();
  const phrasing = new Map<string, (count: number) => string>();
  let matched = 0;
  for (const host of available) {
    const measures = measureHost(host.status.hardware);
    let first: ((count: number) => string) | undefined;
    reqs.forEach((r, i) => {
      const shortfall = r.check(host, measures);
      if (shortfall === undefined) meeting[i] = (meeting[i] ?? 0) + 1;
      else first ??= shortfall;
    });
    if (first === undefined) {
      matched++;
      continue;
    }
    // Group hosts whose shortfall reads the same (same numbers), keyed by the singular phrase.
    const key = first(1);
    shortfalls.set(key, (shortfalls.get(key) ?? 0) + 1);
    phrasing.set(key, first);
  }
  if (matched > 0) return undefined;

  let headline = 'no single host meets every requirement';
  let fewest = Infinity;
  reqs.forEach((r, i) => {
    const n = meeting[i] ?? 0;
    if (n < fewest) {
      fewest = n;
      headline = `${n} host${n === 1 ? '' : 's'} ${r.headline}`;
    }
  });
  if (fewest > 0) headline = `no single host meets every requirement (fewest: ${headline})`;
  const details = [...shortfalls.entries()]
    .sort(([a, x], [b, y]) => y - x || byteOrder(a, b))
    .map(([key, n]) => `${n} ${(phrasing.get(key) as (count: number) => string)(n)}`);
  return `no available host matches: ${headline} (${available.length} available host${available.length === 1 ? '' : 's'} checked: ${details.join(', ')}${notAvailable})`;
}
