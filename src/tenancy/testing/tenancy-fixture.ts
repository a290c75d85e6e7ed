// Store fixtures for the tenancy controller tests: platform resources written straight into a
// real store, and a scripted stand-in for the conductor that moves host states one step per
// call the way the real one does (available -> provisioning -> provisioned, and back through
// deprovisioning when spec.image goes away).
import type { HostSpec, HostStatus } from '../../model/host.js';
import type { Store, StoredResource } from '../../store/store.js';
import { listAll } from '../reconcile-loop.js';
import { testHost, type TestHostOptions } from './host-builder.js';

export const SHA256 = 'a'.repeat(64);

export async function createHost(store: Store, name: string, options: TestHostOptions & { spec?: HostSpec } = {}): Promise<StoredResource> {
  const { status } = testHost(name, options);
  const nic = status.hardware?.nics?.[0]?.mac;
  return store.create({
    kind: 'Host',
    name,
    labels: options.labels ?? {},
    spec: (options.spec ?? { bmc: { address: `fake://${name}`, credentialsName: 'bmc' }, ...(nic ? { bootMACAddress: nic } : {}), bootMode: 'UEFI', online: false }) as Record<string, unknown>,
    status: status as unknown as Record<string, unknown>,
  });
}

export async function createPlatform(
  store: Store,
  opts: {
    project?: string;
    projectSpec?: Record<string, unknown>;
    nodeTypes?: Record<string, Record<string, unknown>>;
    pool?: { name: string; spec: Record<string, unknown> };
    imageSecureBoot?: boolean;
  } = {},
): Promise<void> {
  await store.create({ kind: 'Project', name: opts.project ?? 'red', spec: opts.projectSpec ?? {}, status: {} });
  await store.create({
    kind: 'OSImage',
    name: 'ubuntu',
    spec: { url: 'https://images.example/ubuntu.raw', checksum: SHA256, checksumType: 'sha256', format: 'raw', ...(opts.imageSecureBoot ? { secureBoot: true } : {}) },
    status: {},
  });
  for (const [name, spec] of Object.entries(opts.nodeTypes ?? { standard: { selector: {}, osImageName: 'ubuntu' } })) {
    await store.create({ kind: 'NodeType', name, spec, status: {} });
  }
  if (opts.pool) await store.create({ kind: 'IPPool', name: opts.pool.name, spec: opts.pool.spec, status: {} });
}

export async function createClaim(store: Store, name: string, spec: Record<string, unknown>, project = 'red'): Promise<StoredResource> {
  return store.create({ kind: 'Claim', project, name, spec, status: { state: 'pending' } });
}

export async function deleteClaim(store: Store, project: string, name: string): Promise<void> {
  const claim = await store.get({ kind: 'Claim', project, name });
  if (claim === undefined) throw new Error(`no claim ${project}/${name}`);
  await store.replace({ ...claim, deletionTimestamp: new Date().toISOString() });
}

export interface FakeConductorOptions {
  /** Host names whose cleaning fails (deprovisioning -> error, errorType deprovisioning). */
  failCleaning?: ReadonlySet<string>;
  /** Host names whose deploy fails (provisioning -> error, errorType provisioning). */
  failDeploy?: ReadonlySet<string>;
}

/** Moves every host one step, as the conductor would; returns how many hosts it moved. */
export async function stepConductor(store: Store, options: FakeConductorOptions = {}): Promise<number> {
  let moved = 0;
  for (const host of await listAll(store, 'Host', '')) {
    const spec = host.spec as HostSpec;
    const status = structuredClone(host.status) as unknown as HostStatus;
    const state = status.provisioning.state;
    let next: HostStatus['provisioning']['state'] | undefined;
    let errorType: HostStatus['errorType'] = '';
    if (state === 'available' && spec.image) next = 'provisioning';
    else if (state === 'provisioning' && !spec.image) next = 'deprovisioning';
    else if (state === 'provisioning') {
      next = options.failDeploy?.has(host.name) ? 'error' : 'provisioned';
      if (next === 'error') errorType = 'provisioning';
    } else if (state === 'provisioned' && !spec.image) next = 'deprovisioning';
    else if (state === 'error' && status.errorType === 'provisioning' && !spec.image) next = 'deprovisioning';
    else if (state === 'deprovisioning') {
      next = options.failCleaning?.has(host.name) ? 'error' : 'available';
      if (next === 'error') errorType = 'deprovisioning';
    }
    if (next === undefined) continue;
    status.provisioning = { state: next, ...(next === 'provisioned' && spec.image ? { image: spec.image } : {}) };
    status.errorType = errorType;
    status.errorMessage = errorType === '' ? '' : `step failed talking to BMC at https://10.9.8.7/redfish/v1 (secret-looking detail)`;
    await store.replace({ ...host, status: status as unknown as Record<string, unknown> });
    moved++;
  }
  return moved;
}

export async function hostNamed(store: Store, name: string): Promise<StoredResource> {
  const host = await store.get({ kind: 'Host', name });
  if (host === undefined) throw new Error(`no host ${name}`);
  return host;
}

export async function claimNamed(store: Store, name: string, project = 'red'): Promise<StoredResource | undefined> {
  return store.get({ kind: 'Claim', project, name });
}
