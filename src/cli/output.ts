// How resources are shown: `-o table` (default, for people), `-o json` and `-o yaml` (for
// scripts: the API's own objects, unchanged).
import YAML from 'yaml';
import type { Host } from '../model/host.js';
import type { Secret } from '../model/secret.js';
import type { HostEvent } from '../client/index.js';
import { CliError } from './cli-error.js';

export const OUTPUT_FORMATS = ['table', 'json', 'yaml'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export function parseOutputFormat(value: string | undefined): OutputFormat {
  const v = (value ?? 'table').toLowerCase();
  if ((OUTPUT_FORMATS as readonly string[]).includes(v)) return v as OutputFormat;
  throw new CliError(`-o ${value}: unknown output format; use one of ${OUTPUT_FORMATS.join(', ')}`);
}

/** Columns padded to the widest cell, separated by three spaces, like kubectl. */
export function renderTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('   ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}

/** Age in the largest whole unit: 42s, 7m, 3h, 12d. */
export function formatAge(since: string | undefined, now: number = Date.now()): string {
  if (!since) return '';
  const t = Date.parse(since);
  if (Number.isNaN(t)) return '';
  const s = Math.max(0, Math.floor((now - t) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

export function hostState(host: Host): string {
  const state = host.status?.provisioning?.state ?? 'unknown';
  return host.metadata.deletionTimestamp && state !== 'deleting' && state !== 'powering-off-before-delete' ? `${state} (deleting)` : state;
}

export function hostPower(host: Host): string {
  return host.status?.poweredOn ? 'on' : 'off';
}

export function hostError(host: Host): string {
  return host.status?.errorType ?? '';
}

export function hostsTable(hosts: Host[], now = Date.now()): string {
  return renderTable(
    ['NAME', 'STATE', 'POWER', 'ERROR', 'AGE'],
    hosts.map((h) => [h.metadata.name, hostState(h), hostPower(h), hostError(h), formatAge(h.metadata.createdAt, now)]),
  );
}

export function secretsTable(secrets: Secret[], now = Date.now()): string {
  return renderTable(
    ['NAME', 'KEYS', 'VERSION', 'AGE'],
    secrets.map((s) => [s.metadata.name, (s.status?.keys ?? []).join(','), String(s.status?.version ?? ''), formatAge(s.metadata.createdAt, now)]),
  );
}

export function eventsTable(events: HostEvent[], now = Date.now()): string {
  return renderTable(
    ['AGE', 'TYPE', 'REASON', 'TRANSITION', 'MESSAGE'],
    events.map((e) => [
      formatAge(e.createdAt, now),
      e.type,
      e.reason,
      e.fromState || e.toState ? `${e.fromState ?? ''} -> ${e.toState ?? ''}` : '',
      oneLine(e.message),
    ]),
  );
}

/** A person-readable description of one host (the `table` view of `host show`). */
export function describeHost(host: Host, now = Date.now()): string {
  const s = host.status ?? ({} as Host['status']);
  const spec = host.spec ?? {};
  const lines: Array<[string, string | undefined]> = [
    ['Name', host.metadata.name],
    ['State', hostState(host)],
    ['Target', s.provisioning?.target],
    ['Power', `${hostPower(host)} (desired: ${spec.online ? 'on' : 'off'})`],
    ['Error', s.errorType ? `${s.errorType}: ${s.errorMessage}` : undefined],
    ['Progress', s.progress ? `${s.progress.step} ${s.progress.percent}%${s.progress.message ? `: ${s.progress.message}` : ''}` : undefined],
    ['Waiting for', s.waitingFor],
    ['BMC', spec.bmc ? `${spec.bmc.address} (credentials: ${spec.bmc.credentialsName})` : 'none (unmanaged)'],
    ['Boot MAC', spec.bootMACAddress],
    ['Boot mode', spec.bootMode],
    ['Image', spec.image ? `${spec.image.url} (${spec.image.checksumType ?? 'sha256'} ${spec.image.checksum.slice(0, 12)}…, ${spec.image.format ?? 'raw'})` : undefined],
    ['Provisioned image', s.provisioning?.image?.url],
    ['Labels', formatMap(host.metadata.labels)],
    ['Hardware', describeHardware(s.hardware)],
    ['Created', `${host.metadata.createdAt} (${formatAge(host.metadata.createdAt, now)} ago)`],
    ['Resource version', host.metadata.resourceVersion],
  ];
  const out = lines.filter(([, v]) => v !== undefined && v !== '').map(([k, v]) => `${(k + ':').padEnd(19)}${v}`);
  const history = Object.entries(s.operationHistory ?? {}).filter(([, r]) => r && (r.start || r.end));
  if (history.length > 0) {
    out.push('Operations:');
    for (const [op, r] of history) out.push(`  ${op.padEnd(12)} ${r?.start ?? '?'} -> ${r?.end ?? '(running)'}`);
  }
  if ((s.conditions ?? []).length > 0) {
    out.push('Conditions:');
    for (const c of s.conditions) out.push(`  ${c.type}=${c.status} ${c.reason}: ${oneLine(c.message)}`);
  }
  return out.join('\n') + '\n';
}

export function describeSecret(secret: Secret, now = Date.now()): string {
  return (
    [
      ['Name', secret.metadata.name],
      ['Type', secret.spec?.type ?? ''],
      ['Keys', (secret.status?.keys ?? []).join(', ')],
      ['Version', String(secret.status?.version ?? '')],
      ['Created', `${secret.metadata.createdAt} (${formatAge(secret.metadata.createdAt, now)} ago)`],
    ]
      .map(([k, v]) => `${(k + ':').padEnd(10)}${v}`)
      .join('\n') + '\n'
  );
}

function describeHardware(hw: Host['status']['hardware']): string | undefined {
  if (!hw) return undefined;
  const parts: string[] = [];
  if (hw.cpu) parts.push(`${hw.cpu.count ?? '?'}x ${hw.cpu.model ?? hw.cpu.arch ?? 'cpu'}`);
  if (hw.ramMebibytes) parts.push(`${Math.round(hw.ramMebibytes / 1024)} GiB RAM`);
  if (hw.storage?.length) parts.push(`${hw.storage.length} disk(s)`);
  if (hw.nics?.length) parts.push(`${hw.nics.length} NIC(s)`);
  return parts.join(', ') || undefined;
}

function formatMap(m: Record<string, string> | undefined): string | undefined {
  const e = Object.entries(m ?? {});
  return e.length ? e.map(([k, v]) => `${k}=${v}`).join(',') : undefined;
}

function oneLine(s: string | undefined): string {
  return (s ?? '').replace(/\s*\n\s*/g, ' ');
}

/** Prints a value as JSON or YAML, or as `table` text produced by `table()`. */
export function render(value: unknown, format: OutputFormat, table: () => string): string {
  switch (format) {
    case 'json':
      return JSON.stringify(value, null, 2) + '\n';
    case 'yaml':
      return YAML.stringify(value, { aliasDuplicateObjects: false });
    default:
      return table();
  }
}
