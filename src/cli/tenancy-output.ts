// Tables and descriptions of the tenancy kinds (`-o table`); `-o json|yaml` print the API's
// objects unchanged (output.ts). User data is never shown: the API answers it as "[sealed]"
// and these views say only where it comes from.
import type { Claim, ClaimSet, IPAddressInfo, IPPool, NodeType, OSImage, Project } from '../client/index.js';
import type { ClaimSpec } from '../model/claim.js';
import type { QuotaLimit } from '../model/project.js';
import { formatAge, renderTable } from './output.js';

function describe(lines: Array<[string, string | undefined]>, width = 16): string {
  return lines.filter(([, v]) => v !== undefined && v !== '').map(([k, v]) => `${(k + ':').padEnd(width)}${v}`).join('\n') + '\n';
}

function formatMap(m: Record<string, string> | undefined): string | undefined {
  const e = Object.entries(m ?? {});
  return e.length ? e.map(([k, v]) => `${k}=${v}`).join(',') : undefined;
}

function created(meta: { createdAt: string }, now: number): string {
  return `${meta.createdAt} (${formatAge(meta.createdAt, now)} ago)`;
}

function oneLine(s: string | undefined): string {
  return (s ?? '').replace(/\s*\n\s*/g, ' ');
}

export function osImagesTable(images: OSImage[], now = Date.now()): string {
  return renderTable(
    ['NAME', 'FORMAT', 'CHECKSUM', 'SECURE BOOT', 'VERIFICATION', 'AGE'],
    images.map((i) => [
      i.metadata.name,
      i.spec.format,
      `${i.spec.checksumType}:${i.spec.checksum.slice(0, 12)}…`,
      i.spec.secureBoot ? 'yes' : 'no',
      i.status?.verification?.state ?? (i.spec.verifyOnCreate ? 'pending' : 'not asked'),
      formatAge(i.metadata.createdAt, now),
    ]),
  );
}

export function describeOSImage(i: OSImage, now = Date.now()): string {
  const v = i.status?.verification;
  return describe([
    ['Name', i.metadata.name],
    ['URL', i.spec.url],
    ['Checksum', `${i.spec.checksumType} ${i.spec.checksum}`],
    ['Format', i.spec.format],
    ['Secure boot', i.spec.secureBoot ? 'signed' : 'no'],
    ['Verification', v ? `${v.state}${v.message ? `: ${oneLine(v.message)}` : ''}${v.verifiedAt ? ` (at ${v.verifiedAt})` : ''}` : i.spec.verifyOnCreate ? 'pending' : 'not asked (spec.verifyOnCreate)'],
    ['Size', v?.sizeBytes !== undefined ? `${v.sizeBytes} bytes` : undefined],
    ['Labels', formatMap(i.metadata.labels)],
    ['Created', created(i.metadata, now)],
  ]);
}

function selectorSummary(t: NodeType): string {
  const s = t.spec.selector ?? {};
  const parts: string[] = [];
  if (s.minCpus) parts.push(`cpus>=${s.minCpus}`);
  if (s.minMemoryMebibytes) parts.push(`mem>=${s.minMemoryMebibytes}MiB`);
  if (s.minDiskGigabytes) parts.push(`disk>=${s.minDiskGigabytes}GB`);
  if (s.capabilities?.secureBoot) parts.push('secure-boot');
  if (s.capabilities?.gpu) parts.push(`gpu${s.capabilities.gpu.model ? ` ${s.capabilities.gpu.model}` : ''}x${s.capabilities.gpu.count ?? 1}`);
  if (s.capabilities?.minNicSpeedGbps) parts.push(`nic>=${s.capabilities.minNicSpeedGbps}Gbps`);
  const labels = formatMap(s.matchLabels);
  if (labels) parts.push(labels);
  return parts.join(' ') || 'any host';
}

export function nodeTypesTable(types: NodeType[], now = Date.now()): string {
  return renderTable(
    ['NAME', 'OS IMAGE', 'SELECTOR', 'AGE'],
    types.map((t) => [t.metadata.name, t.spec.osImageName, selectorSummary(t), formatAge(t.metadata.createdAt, now)]),
  );
}

export function describeNodeType(t: NodeType, now = Date.now()): string {
  return describe([
    ['Name', t.metadata.name],
    ['OS image', t.spec.osImageName],
    ['Selector', selectorSummary(t)],
    ['Cleaning', t.spec.automatedCleaningMode],
    ['Labels', formatMap(t.metadata.labels)],
    ['Created', created(t.metadata, now)],
  ]);
}

function quotaText(q: QuotaLimit | undefined): string {
  if (!q || (q.soft === undefined && q.hard === undefined)) return '';
  return [q.soft !== undefined ? `soft ${q.soft}` : '', q.hard !== undefined ? `hard ${q.hard}` : ''].filter(Boolean).join(', ');
}

function allowedText(p: Project): string {
  const a = p.spec.allowedNodeTypes;
  if (a === undefined) return 'all';
  if (a.length === 0) return 'none';
  return a.map((x) => (typeof x === 'string' ? x : x.name)).join(',');
}

export function projectsTable(projects: Project[], now = Date.now()): string {
  return renderTable(
    ['NAME', 'MEMBERS', 'NODE TYPES', 'CLAIMS', 'QUOTA', 'AGE'],
    projects.map((p) => [
      p.metadata.name,
      String(p.spec.members?.length ?? 0),
      allowedText(p),
      p.status?.usage ? String(p.status.usage.claims) : '',
      quotaText(p.spec.quotas?.claims),
      formatAge(p.metadata.createdAt, now),
    ]),
  );
}

export function describeProject(p: Project, now = Date.now()): string {
  const out = describe([
    ['Name', p.metadata.name],
    ['Description', p.spec.description],
    ['Node types', allowedText(p)],
    ['Claim quota', quotaText(p.spec.quotas?.claims) || 'none'],
    ['Claims', p.status?.usage ? String(p.status.usage.claims) : undefined],
    ['Labels', formatMap(p.metadata.labels)],
    ['Created', created(p.metadata, now)],
  ]);
  const lines: string[] = [];
  const perType = Object.entries(p.spec.quotas?.nodeTypes ?? {});
  if (perType.length > 0) {
    lines.push('Node type quotas:');
    for (const [t, q] of perType) lines.push(`  ${t}: ${quotaText(q)}${p.status?.usage?.nodeTypes?.[t] !== undefined ? ` (${p.status.usage.nodeTypes[t]} in use)` : ''}`);
  }
  if ((p.spec.members ?? []).length > 0) {
    lines.push('Members:');
    for (const m of p.spec.members ?? []) lines.push(`  ${m.subject} (${m.role})`);
  }
  return out + (lines.length ? lines.join('\n') + '\n' : '');
}

export function ipPoolsTable(pools: IPPool[], now = Date.now()): string {
  return renderTable(
    ['NAME', 'RANGES', 'PREFIX', 'GATEWAY', 'AGE'],
    pools.map((p) => [p.metadata.name, p.spec.ranges.map((r) => `${r.start}-${r.end}`).join(','), String(p.spec.prefix), p.spec.gateway ?? '', formatAge(p.metadata.createdAt, now)]),
  );
}

export function describeIPPool(p: IPPool, addresses: IPAddressInfo[], now = Date.now()): string {
  const out = describe([
    ['Name', p.metadata.name],
    ['Ranges', p.spec.ranges.map((r) => `${r.start}-${r.end}`).join(', ')],
    ['Prefix', `/${p.spec.prefix}`],
    ['Gateway', p.spec.gateway],
    ['DNS servers', (p.spec.dnsServers ?? []).join(', ')],
    ['Labels', formatMap(p.metadata.labels)],
    ['Created', created(p.metadata, now)],
    ['Allocated', String(addresses.length)],
  ]);
  if (addresses.length === 0) return out;
  return out + 'Addresses:\n' + indent(renderTable(['ADDRESS', 'PROJECT', 'CLAIM', 'AGE'], addresses.map((a) => [`${a.address}/${a.prefix}`, a.claim.project, a.claim.name, formatAge(a.createdAt, now)])));
}

export function claimState(c: Claim): string {
  const state = c.status?.state ?? 'unknown';
  return c.metadata.deletionTimestamp && state !== 'releasing' ? `${state} (deleting)` : state;
}

function claimAddresses(c: Claim): string {
  return (c.status?.addresses ?? []).map((a) => a.address).join(',');
}

/** NAME, NODE TYPE, STATE, HOST, ADDRESSES, AGE; REASON too when a claim is pending or failed; PROJECT for the all-projects list. */
export function claimsTable(claims: Claim[], options: { withProject?: boolean } = {}, now = Date.now()): string {
  const withReason = claims.some((c) => (c.status?.state === 'pending' || c.status?.state === 'failed') && c.status.reason);
  const headers = [...(options.withProject ? ['PROJECT'] : []), 'NAME', 'NODE TYPE', 'STATE', 'HOST', 'ADDRESSES', 'AGE', ...(withReason ? ['REASON'] : [])];
  return renderTable(
    headers,
    claims.map((c) => [
      ...(options.withProject ? [c.metadata.project ?? ''] : []),
      c.metadata.name,
      c.spec.nodeTypeName,
      claimState(c),
      c.status?.hostName ?? '',
      claimAddresses(c),
      formatAge(c.metadata.createdAt, now),
      ...(withReason ? [c.status?.state === 'pending' || c.status?.state === 'failed' ? oneLine(c.status.reason) : ''] : []),
    ]),
  );
}

/** Where the user data comes from, never what it says. */
export function userDataSource(spec: Pick<ClaimSpec, 'userData' | 'userDataSecretName'>): string {
  if (spec.userDataSecretName) return `from secret ${spec.userDataSecretName}`;
  if (spec.userData !== undefined) return 'inline (sealed; never shown)';
  return 'none';
}

export function describeClaim(c: Claim, now = Date.now()): string {
  const s = c.status ?? ({} as Claim['status']);
  const out = describe([
    ['Name', c.metadata.name],
    ['Project', c.metadata.project],
    ['Node type', c.spec.nodeTypeName],
    ['State', claimState(c)],
    ['Reason', s.reason ? oneLine(s.reason) : undefined],
    ['Host', s.hostName],
    ['Ready since', s.readyAt],
    ['User data', userDataSource(c.spec)],
    ['SSH keys', c.spec.sshKeys?.length ? `${c.spec.sshKeys.length} (${c.spec.sshKeys.map((k) => k.split(/\s+/)[0]).join(', ')})` : undefined],
    ['Networks', (c.spec.networks ?? []).map((n) => `${n.ipPoolName}${n.address ? `=${n.address}` : ''}${n.macAddress ? ` on ${n.macAddress}` : ''}`).join(', ')],
    ['Labels', formatMap(c.metadata.labels)],
    ['Created', created(c.metadata, now)],
    ['Deletion asked', c.metadata.deletionTimestamp],
  ]);
  const addresses = s.addresses ?? [];
  if (addresses.length === 0) return out;
  return out + 'Addresses:\n' + addresses.map((a) => `  ${a.address}/${a.prefix}${a.gateway ? ` via ${a.gateway}` : ''} (pool ${a.ipPoolName})`).join('\n') + '\n';
}

export function claimSetsTable(sets: ClaimSet[], now = Date.now()): string {
  return renderTable(
    ['NAME', 'NODE TYPE', 'REPLICAS', 'READY', 'PENDING', 'FAILED', 'AGE'],
    sets.map((s) => [
      s.metadata.name + (s.metadata.deletionTimestamp ? ' (deleting)' : ''),
      s.spec.template.spec.nodeTypeName,
      `${s.status?.replicas ?? 0}/${s.spec.replicas}`,
      String(s.status?.ready ?? 0),
      String(s.status?.pending ?? 0),
      String(s.status?.failed ?? 0),
      formatAge(s.metadata.createdAt, now),
    ]),
  );
}

export function describeClaimSet(s: ClaimSet, claims: Claim[] | undefined, now = Date.now()): string {
  const t = s.spec.template.spec;
  const out = describe([
    ['Name', s.metadata.name],
    ['Project', s.metadata.project],
    ['Node type', t.nodeTypeName],
    ['Replicas', `${s.spec.replicas} wanted, ${s.status?.replicas ?? 0} exist`],
    ['Ready', String(s.status?.ready ?? 0)],
    ['Pending', String(s.status?.pending ?? 0)],
    ['Failed', String(s.status?.failed ?? 0)],
    ['User data', userDataSource(t)],
    ['SSH keys', t.sshKeys?.length ? String(t.sshKeys.length) : undefined],
    ['Networks', (t.networks ?? []).map((n) => n.ipPoolName).join(', ')],
    ['Labels', formatMap(s.metadata.labels)],
    ['Created', created(s.metadata, now)],
    ['Deletion asked', s.metadata.deletionTimestamp],
  ]);
  if (!claims || claims.length === 0) return out;
  return out + 'Claims:\n' + indent(claimsTable(claims, {}, now));
}

function indent(table: string): string {
  return table.trimEnd().replace(/^/gm, '  ') + '\n';
}
