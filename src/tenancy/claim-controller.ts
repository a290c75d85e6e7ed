// The claim controller: turns Claims into bound, provisioned hosts and back.
// docs/tenancy.md ("The claim controller") describes the behaviour; in short, each pass takes
// every claim, oldest first (createdAt, then name), and moves it one step:
//
//   pending ──bind (scheduler)──▶ (addresses, host labelled + image set) provisioning ──▶ ready
//      ▲                                                              └──▶ failed (provisioning error)
//      └── quota / allowedNodeTypes / no matching host / pool exhausted: stays pending, with a reason
//   deleted: image removed from the host (the conductor cleans it) ── releasing ──▶ host available:
//            labels removed, unbound, addresses freed, sealed user data deleted, row removed
//
// Several processes may run it at once on one PostgreSQL: the store's UNIQUE host bindings and
// address allocations decide every race, resourceVersions guard every replace, and a conflict
// just means "look again next pass". Every step is idempotent, so a pass cut short anywhere
// is finished by the next one. Status is written only when it changed, and an event is
// appended only by the process whose status write made the transition.
import { IngotError } from '../model/errors.js';
import { API_VERSION } from '../model/envelope.js';
import { CLAIM_PROJECT_LABEL, type ClaimNetwork, type ClaimSpec, type ClaimState, type ClaimStatus } from '../model/claim.js';
import type { Host, HostSpec, HostStatus, ImageSpec } from '../model/host.js';
import { formatIp } from '../model/ip-address.js';
import { parseIpPoolSpec, type IpPoolSpec, type ParsedIpPool } from '../model/ip-pool.js';
import { CLAIM_LABEL, type NodeTypeSpec } from '../model/node-type.js';
import type { OSImageSpec } from '../model/os-image.js';
import { nodeTypeAllowed, type ProjectSpec } from '../model/project.js';
import { renderNetworkData, type NetworkAttachment } from '../ipam/network-data.js';
import type { ConfigDriveContent, ConfigDriveSource } from '../conductor/config-drive-source.js';
import type { SecretBox } from '../store/secret-box.js';
import { readSecretValues } from '../store/secret-reader.js';
import type { HostBinding, IpAllocation, Store, StoredResource } from '../store/store.js';
import { byCreation, createReconcileLoop, isConflict, isNotFound, listAll, sameJson, SILENT_CONTROLLER_LOG, type ControllerLog, type TenancyController } from './reconcile-loop.js';
import { scheduleClaims } from './scheduler.js';

/** Annotation on a bound host: `<project>/<claim name>`, for admins reading the host. */
export const CLAIM_NAME_ANNOTATION = 'ingot.dev/claim-name';
/**
 * Annotation on a bound host: its spec.bootMode before the claim ('' when unset), restored on
 * release so a secure-boot node type does not leave its boot mode to the next tenant.
 */
export const BOOT_MODE_BEFORE_CLAIM_ANNOTATION = 'ingot.dev/boot-mode-before-claim';
/** Inline user data is sealed away (under the claim's uid); the stored spec keeps this marker. */
export const SEALED_USER_DATA = '[sealed]';

/** Replacing a host races the conductor's status writes; a few quick retries usually win. */
const HOST_PATCH_ATTEMPTS = 5;

export interface ClaimControllerOptions {
  store: Store;
  secretBox: SecretBox;
  log?: ControllerLog;
  /** Poll interval (other processes' writes are seen by polling); default 1000 ms. */
  pollMs?: number;
  now?: () => Date;
}

export type ClaimAddress = NonNullable<ClaimStatus['addresses']>[number];

export function createClaimController(opts: ClaimControllerOptions): TenancyController {
  const log = opts.log ?? SILENT_CONTROLLER_LOG;
  const reconciler = new ClaimReconciler(opts.store, log, opts.now ?? (() => new Date()));
  return createReconcileLoop({ store: opts.store, ...(opts.pollMs !== undefined ? { pollMs: opts.pollMs } : {}), log, name: 'claim controller', pass: () => reconciler.pass() });
}

/** Everything one pass reads up front (level-based: decisions use this, writes re-check). */
interface Snapshot {
  claims: StoredResource[];
  hosts: Map<string, StoredResource>;
  nodeTypes: Map<string, StoredResource>;
  images: Map<string, StoredResource>;
  projects: Map<string, StoredResource>;
  pools: Map<string, StoredResource>;
  bindings: Map<string, HostBinding>;
  /** Every pool's allocations by claim uid, read once per pass (not once per claim). */
  allocations: Map<string, IpAllocation[]>;
  /** Pool specs parsed once per pass. */
  parsedPools: Map<string, ParsedIpPool | Error>;
}

type Freed = { kind: 'freed' } | { kind: 'waiting'; reason: string };

class ClaimReconciler {
  constructor(
    readonly store: Store,
    readonly log: ControllerLog,
    readonly now: () => Date,
  ) {}

  async pass(): Promise<void> {
    const { store } = this;
    const claims = (await listAll(store, 'Claim')).sort(byCreation);
    const [hostRows, nodeTypeRows, imageRows, projectRows, poolRows, bindingRows] = await Promise.all([
      listAll(store, 'Host', ''),
      listAll(store, 'NodeType', ''),
      listAll(store, 'OSImage', ''),
      listAll(store, 'Project', ''),
      listAll(store, 'IPPool', ''),
      store.listHostBindings(),
    ]);
    const snap: Snapshot = {
      claims,
      hosts: new Map(hostRows.map((h) => [h.uid, h])),
      nodeTypes: byName(nodeTypeRows),
      images: byName(imageRows),
      projects: byName(projectRows),
      pools: byName(poolRows),
      bindings: new Map(bindingRows.map((b) => [b.claimUid, b])),
      allocations: new Map(),
      parsedPools: new Map(),
    };
    for (const pool of poolRows) {
      for (const allocation of await store.listAllocations(pool.uid)) {
        const held = snap.allocations.get(allocation.claimUid);
        if (held === undefined) snap.allocations.set(allocation.claimUid, [allocation]);
        else held.push(allocation);
      }
    }

    // 1. Deleted claims first: what they free is bound again on the next pass.
    for (const claim of claims) {
      if (claim.deletionTimestamp !== undefined) await this.#guard(claim, () => this.#release(claim.uid, claim, snap.bindings.get(claim.uid)));
    }
    // 2. Bindings whose claim row is gone (a claim removed while another process was binding it).
    const listed = new Set(claims.map((c) => c.uid));
    for (const binding of bindingRows) {
      if (listed.has(binding.claimUid)) continue;
      // Not in our list may also mean "created after we listed": only a missing row is an orphan.
      if ((await store.getByUid(binding.claimUid)) !== undefined) continue;
      await this.#guard(undefined, () => this.#release(binding.claimUid, undefined, binding));
    }
    // 3. Pending claims: admission (project, node type, quotas), then the scheduler.
    await this.#schedule(snap);
    // 4. Bound claims: addresses, host set-up, and the host's progress.
    for (const claim of claims) {
      const binding = snap.bindings.get(claim.uid);
      if (claim.deletionTimestamp === undefined && binding !== undefined) await this.#guard(claim, () => this.#advanceBound(claim, binding, snap));
    }
  }

  async #guard(claim: StoredResource | undefined, step: () => Promise<void>): Promise<void> {
    try {
      await step();
    } catch (error) {
      // Someone else wrote first (another controller, the API, the conductor): next pass.
      if (isConflict(error) || isNotFound(error)) return;
      this.log.warn('claim reconcile step failed; retrying next pass', { claim: claim ? `${claim.project}/${claim.name}` : undefined, error: String(error) });
    }
  }

  // ------------------------------------------------------------------ scheduling

  async #schedule(snap: Snapshot): Promise<void> {
    const waiting = new Map<string, string>();
    const eligible: StoredResource[] = [];
    // Claims that count against quotas: alive, or being deleted but still holding a host.
    const counted = snap.claims.filter((c) => c.deletionTimestamp === undefined || snap.bindings.has(c.uid));
    const byProject = new Map<string, StoredResource[]>();
    for (const claim of counted) {
      const group = byProject.get(claim.project);
      if (group === undefined) byProject.set(claim.project, [claim]);
      else group.push(claim);
    }

    for (const [projectName, group] of byProject) {
      const project = snap.projects.get(projectName);
      const spec = (project?.spec ?? {}) as ProjectSpec;
      const hard = spec.quotas?.claims?.hard;
      // Three sweeps in creation order, so every process draws the same line: (a) what rules
      // the claim out whatever the quotas, (b) the node type's quota, counted among that type's
      // claims still in the running, (c) the project's quota, among all claims still in the
      // running. A claim ruled out earlier does not use up a later quota's place.
      const held = (c: StoredResource) => snap.bindings.has(c.uid);
      const blocked = new Map<string, string>();
      for (const claim of group) {
        if (held(claim) || claim.deletionTimestamp !== undefined) continue;
        const nodeType = nodeTypeOf(claim);
        const nodeTypeRow = snap.nodeTypes.get(nodeType);
        const imageName = (nodeTypeRow?.spec as NodeTypeSpec | undefined)?.osImageName;
        if (project === undefined) blocked.set(claim.uid, `project "${projectName}" does not exist; the claim cannot be scheduled`);
        else if (!nodeTypeAllowed(spec, nodeType)) blocked.set(claim.uid, `project ${projectName} may not claim node type "${nodeType}" (spec.allowedNodeTypes); ask a platform admin, or change spec.nodeTypeName`);
        else if (nodeTypeRow === undefined) blocked.set(claim.uid, `node type "${nodeType}" does not exist; ask a platform admin for one, or change spec.nodeTypeName`);
        else if (imageName === undefined || !snap.images.has(imageName)) blocked.set(claim.uid, `node type "${nodeType}" names an OS image that does not exist; a platform admin has to publish it`);
      }
      const rankOfType = new Map<string, number>();
      const heldOfType = new Map<string, number>();
      for (const c of group) if (held(c)) heldOfType.set(nodeTypeOf(c), (heldOfType.get(nodeTypeOf(c)) ?? 0) + 1);
      const admittedOfType = new Map<string, number>();
      for (const claim of group) {
        if (blocked.has(claim.uid)) continue;
        const nodeType = nodeTypeOf(claim);
        const typeRank = rankOfType.get(nodeType) ?? 0;
        rankOfType.set(nodeType, typeRank + 1);
        if (held(claim) || claim.deletionTimestamp !== undefined) continue;
        const typeHard = spec.quotas?.nodeTypes?.[nodeType]?.hard;
        if (typeHard !== undefined && (typeRank >= typeHard || (heldOfType.get(nodeType) ?? 0) + (admittedOfType.get(nodeType) ?? 0) >= typeHard)) {
          blocked.set(claim.uid, `quota of ${typeHard} claims of node type ${nodeType} reached in project ${projectName} (spec.quotas.nodeTypes.${nodeType}.hard)`);
          continue;
        }
        admittedOfType.set(nodeType, (admittedOfType.get(nodeType) ?? 0) + 1);
      }
      const boundTotal = group.filter(held).length;
      let rank = 0;
      let admitted = 0;
      for (const claim of group) {
        if (blocked.has(claim.uid)) continue;
        const myRank = rank++;
        if (held(claim) || claim.deletionTimestamp !== undefined) continue;
        if (hard !== undefined && (myRank >= hard || boundTotal + admitted >= hard)) {
          blocked.set(claim.uid, `quota of ${hard} claims reached in project ${projectName} (spec.quotas.claims.hard)`);
          continue;
        }
        admitted++;
        eligible.push(claim);
      }
      for (const [uid, reason] of blocked) waiting.set(uid, reason);
    }
    await this.#recordUsage(snap, byProject);
    // byProject groups lose the global creation order: restore it for the scheduler's fairness.
    eligible.sort(byCreation);

    if (eligible.length > 0) {
      const results = await scheduleClaims({
        store: this.store,
        pendingClaims: eligible.map((c) => ({ uid: c.uid, name: c.name, project: c.project, nodeTypeName: nodeTypeOf(c) })),
        hosts: [...snap.hosts.values()].map(toHost),
        nodeTypes: [...snap.nodeTypes.values()].map((t) => ({ name: t.name, spec: t.spec as NodeTypeSpec })),
      });
      const project = new Map(eligible.map((c) => [c.uid, c.project]));
      for (const result of results) {
        if (result.outcome === 'bound') {
          snap.bindings.set(result.claimUid, { hostUid: result.hostUid, claimUid: result.claimUid, project: project.get(result.claimUid) ?? '', createdAt: this.now().toISOString() });
        } else {
          waiting.set(result.claimUid, result.reason);
        }
      }
    }
    for (const claim of snap.claims) {
      const reason = waiting.get(claim.uid);
      if (reason !== undefined && !snap.bindings.has(claim.uid)) await this.#guard(claim, async () => void (await this.#setStatus(claim, { state: 'pending', reason })));
    }
  }

  /**
   * Project status.usage: the claims that count against its quotas, total and per node type,
   * for `ingot project show`. Written only when it changed; a conflict (an admin editing the
   * project) is retried next pass.
   */
  async #recordUsage(snap: Snapshot, byProject: Map<string, StoredResource[]>): Promise<void> {
    for (const project of snap.projects.values()) {
      const group = byProject.get(project.name) ?? [];
      const nodeTypes: Record<string, number> = {};
      for (const claim of group) nodeTypes[nodeTypeOf(claim)] = (nodeTypes[nodeTypeOf(claim)] ?? 0) + 1;
      const usage = { claims: group.length, nodeTypes };
      if (sameJson((project.status as { usage?: unknown }).usage, usage)) continue;
      await this.#guard(undefined, async () => void (await this.store.replace({ ...project, status: { ...project.status, usage } })));
    }
  }

  // ------------------------------------------------------------------ bound claims

  async #advanceBound(claim: StoredResource, binding: HostBinding, snap: Snapshot): Promise<void> {
    let host = snap.hosts.get(binding.hostUid);
    // The snapshot may predate this binding (made just now, here or by another process) or a
    // release that unlabelled the host: anything but "labelled for us" is read again.
    if (host === undefined || host.labels[CLAIM_LABEL] !== claim.uid) host = await this.store.getByUid(binding.hostUid);
    const ours = host !== undefined && host.labels[CLAIM_LABEL] === claim.uid;
    if (host === undefined || host.deletionTimestamp !== undefined) {
      if (ours || (host === undefined && hostNameOf(claim) !== undefined)) {
        await this.#setStatus(claim, { ...this.#keep(claim), state: 'failed', reason: 'the machine serving this claim was removed from the platform by a platform admin; delete the claim and create a new one' });
        return;
      }
      // Bound a moment before the host went away, never set up: give the binding back.
      await this.store.unbindHost(claim.uid);
      await this.store.releaseAddresses(claim.uid);
      await this.#setStatus(claim, { state: 'pending', reason: 'the host chosen for this claim was removed before it was set up; looking for another' });
      return;
    }
    if (!ours) {
      await this.#setUp(claim, binding, host, snap);
      return;
    }
    const addresses = await this.#addressesOf(claim, snap);
    const status = host.status as unknown as HostStatus;
    const state = status.provisioning?.state;
    const base = { hostName: host.name, ...(addresses.length > 0 ? { addresses } : {}) };
    if (state === 'provisioned') {
      await this.#setStatus(claim, { state: 'ready', ...base });
    } else if (state === 'error' && status.errorType === 'provisioning') {
      // Host error messages can name BMC addresses and image URLs: tenants get a fixed text.
      await this.#setStatus(claim, { state: 'failed', ...base, reason: 'the machine could not be provisioned (host error type: provisioning; platform admins see why in the host\'s events); delete this claim and claim again, or ask a platform admin' });
    } else {
      await this.#setStatus(claim, { state: 'provisioning', ...base });
    }
  }

  async #setUp(claim: StoredResource, binding: HostBinding, host: StoredResource, snap: Snapshot): Promise<void> {
    if (host.labels[CLAIM_LABEL] !== undefined) {
      // Bindings are the authority and a host is bound to one claim; a label naming another
      // claim means an interrupted release on a binding that was since removed by hand.
      this.log.error('host bound to this claim is labelled for another claim; a platform admin must check it', { claim: `${claim.project}/${claim.name}`, host: host.name });
      await this.#setStatus(claim, { state: 'pending', reason: 'the machine chosen for this claim is labelled for another claim; the server logged it for platform admins, who must check the host' });
      return;
    }
    const nodeTypeRow = snap.nodeTypes.get(nodeTypeOf(claim));
    const nodeType = nodeTypeRow?.spec as NodeTypeSpec | undefined;
    const imageRow = nodeType === undefined ? undefined : snap.images.get(nodeType.osImageName);
    if (nodeType === undefined || imageRow === undefined) {
      await this.#setStatus(claim, { state: 'pending', reason: `node type "${nodeTypeOf(claim)}" or its OS image no longer exists; ask a platform admin` });
      return;
    }
    const allocated = await this.#allocate(claim, snap);
    if ('reason' in allocated) {
      await this.#setStatus(claim, { state: 'pending', reason: allocated.reason });
      return;
    }
    const image = imageRow.spec as OSImageSpec;
    // Secure boot when the node type requires it (its selector only matches capable hosts), or
    // when the image is signed and this host can do it; a signed image on a host without secure
    // boot support still boots (UEFI), as the node type allowed that host.
    const nodeTypeRequiresSecureBoot = nodeType.selector.capabilities?.secureBoot === true;
    const patched = await this.#patchHost(binding.hostUid, async (current) => {
      if (current.deletionTimestamp !== undefined) return undefined;
      const label = current.labels[CLAIM_LABEL];
      if (label !== undefined && label !== claim.uid) return undefined;
      // Re-checked just before writing: a release by another process may have unbound us.
      if ((await this.store.getClaimBinding(claim.uid))?.hostUid !== current.uid) return undefined;
      const spec = current.spec as HostSpec;
      const secureBoot = nodeTypeRequiresSecureBoot || (image.secureBoot === true && (current.status as { hardware?: { secureBootCapable?: boolean } }).hardware?.secureBootCapable === true);
      const annotations: Record<string, string> = { ...current.annotations, [CLAIM_NAME_ANNOTATION]: `${claim.project}/${claim.name}` };
      if (annotations[BOOT_MODE_BEFORE_CLAIM_ANNOTATION] === undefined) annotations[BOOT_MODE_BEFORE_CLAIM_ANNOTATION] = spec.bootMode ?? '';
      const imageSpec: ImageSpec = { url: image.url, checksum: image.checksum, checksumType: image.checksumType, format: image.format };
      const nextSpec: HostSpec = {
        ...spec,
        image: imageSpec,
        automatedCleaningMode: nodeType.automatedCleaningMode ?? 'metadata',
        online: true,
        ...(secureBoot ? { bootMode: 'UEFISecureBoot' as const } : {}),
      };
      return {
        ...current,
        labels: { ...current.labels, [CLAIM_PROJECT_LABEL]: claim.project, [CLAIM_LABEL]: claim.uid },
        annotations,
        spec: nextSpec as Record<string, unknown>,
      };
    });
    if (patched === undefined) return; // the host changed hands or is going away: next pass sees why
    await this.#setStatus(claim, { state: 'provisioning', hostName: patched.name, ...(allocated.addresses.length > 0 ? { addresses: allocated.addresses } : {}) });
  }

  /** One address per spec.networks entry, or why not (the claim keeps its host and waits). */
  async #allocate(claim: StoredResource, snap: Snapshot): Promise<{ addresses: ClaimAddress[] } | { reason: string }> {
    const networks = (claim.spec as ClaimSpec).networks ?? [];
    const addresses: ClaimAddress[] = [];
    const seen = new Set<string>();
    for (const [index, network] of networks.entries()) {
      const field = `spec.networks[${index}]`;
      if (seen.has(network.ipPoolName)) return { reason: `${field}: IP pool "${network.ipPoolName}" is listed twice; a claim gets one address per pool` };
      seen.add(network.ipPoolName);
      const pool = snap.pools.get(network.ipPoolName);
      if (pool === undefined) return { reason: `${field}: IP pool "${network.ipPoolName}" does not exist; ask a platform admin, or change the claim` };
      const parsed = parsedPool(snap, pool);
      if (parsed instanceof IngotError) return { reason: `${field}: IP pool "${pool.name}" is not usable (${parsed.message}); a platform admin has to fix it` };
      if (parsed instanceof Error) throw parsed;
      try {
        const allocation = await this.store.allocateAddress({
          poolUid: pool.uid,
          poolName: pool.name,
          claimUid: claim.uid,
          ranges: parsed.ranges.map((r) => ({ start: formatIp(r.start), end: formatIp(r.end) })),
          reserved: parsed.reserved.map(formatIp),
          ...(network.address !== undefined ? { requested: network.address } : {}),
        });
        addresses.push(addressOf(pool.name, parsed, allocation.address));
      } catch (error) {
        // Exhausted pool, requested address taken or outside the pool: wait with the reason.
        if (error instanceof IngotError && error.code !== 'INGOT_ERR_INTERNAL') return { reason: `${field}: ${error.message}` };
        throw error;
      }
    }
    return { addresses };
  }

  async #addressesOf(claim: StoredResource, snap: Snapshot): Promise<ClaimAddress[]> {
    const networks = (claim.spec as ClaimSpec).networks ?? [];
    if (networks.length === 0) return [];
    // From the pass's snapshot; a claim set up by another process since then is read directly,
    // so its status never flaps to "no addresses" for a pass.
    let allocations = snap.allocations.get(claim.uid) ?? [];
    if (allocations.length < networks.length) allocations = await this.store.listClaimAllocations(claim.uid);
    const addresses: ClaimAddress[] = [];
    for (const network of networks) {
      const pool = snap.pools.get(network.ipPoolName);
      const allocation = pool === undefined ? undefined : allocations.find((a) => a.poolUid === pool.uid);
      if (pool === undefined || allocation === undefined) continue;
      const parsed = parsedPool(snap, pool);
      addresses.push(parsed instanceof Error ? { ipPoolName: pool.name, address: allocation.address, prefix: (pool.spec as IpPoolSpec).prefix } : addressOf(pool.name, parsed, allocation.address));
    }
    return addresses;
  }

  // ------------------------------------------------------------------ release

  /** Frees what a deleted (or vanished) claim holds; removes the claim row once all is free. */
  async #release(claimUid: string, claim: StoredResource | undefined, binding: HostBinding | undefined): Promise<void> {
    if (binding !== undefined) {
      const freed = await this.#freeHost(claimUid, binding);
      if (freed.kind === 'waiting') {
        if (claim !== undefined) await this.#setStatus(claim, { ...this.#keep(claim), state: 'releasing', reason: freed.reason });
        return;
      }
      await this.store.unbindHost(claimUid);
    }
    await this.store.releaseAddresses(claimUid);
    await this.store.deleteSecretCiphertext(claimUid);
    if (claim === undefined) return;
    // Removed by version: a stale pass must never remove a newer claim of the same name.
    const current = await this.store.getByUid(claimUid);
    if (current === undefined) return;
    await this.store.remove({ kind: 'Claim', project: current.project, name: current.name }, current.resourceVersion);
    await this.#event(current, 'Normal', 'Released', binding === undefined ? 'the claim was deleted' : 'the machine was cleaned and returned to the pool; the claim is gone', current.status.state as string | undefined, undefined);
  }

  /**
   * Steps a bound host towards free: image removed and power off (the conductor deprovisions,
   * i.e. cleans it), then, once it is `available` again, our labels and annotations removed.
   * A host whose cleaning failed stays bound and labelled: it must never reach another tenant.
   */
  async #freeHost(claimUid: string, binding: HostBinding): Promise<Freed> {
    let host = await this.store.getByUid(binding.hostUid);
    // Gone, or never set up for this claim (nothing of the tenant's was written on it).
    if (host === undefined || host.labels[CLAIM_LABEL] !== claimUid) return { kind: 'freed' };
    if (host.deletionTimestamp !== undefined) return { kind: 'waiting', reason: 'the machine is being removed from the platform' };
    const spec = host.spec as HostSpec;
    if (spec.image !== undefined || spec.online !== false) {
      const patched = await this.#patchHost(host.uid, async (current) => {
        if (current.labels[CLAIM_LABEL] !== claimUid) return undefined;
        const { image: _image, ...rest } = current.spec as HostSpec;
        return { ...current, spec: { ...rest, online: false } };
      });
      if (patched === undefined) return { kind: 'waiting', reason: 'the machine is being cleaned' };
      host = patched;
    }
    const status = host.status as unknown as HostStatus;
    const state = status.provisioning?.state;
    if (state === 'error' && status.errorType === 'deprovisioning') {
      return { kind: 'waiting', reason: 'cleaning the machine failed (host error type: deprovisioning); it stays out of service until a platform admin has fixed it' };
    }
    if (state !== 'available' || (host.spec as HostSpec).image !== undefined) return { kind: 'waiting', reason: 'the machine is being cleaned' };
    const unlabelled = await this.#patchHost(host.uid, async (current) => {
      if (current.labels[CLAIM_LABEL] !== claimUid) return undefined;
      const labels = { ...current.labels };
      delete labels[CLAIM_LABEL];
      delete labels[CLAIM_PROJECT_LABEL];
      const annotations = { ...current.annotations };
      const before = annotations[BOOT_MODE_BEFORE_CLAIM_ANNOTATION];
      delete annotations[CLAIM_NAME_ANNOTATION];
      delete annotations[BOOT_MODE_BEFORE_CLAIM_ANNOTATION];
      const nextSpec = { ...(current.spec as HostSpec) };
      if (before !== undefined) {
        if (before === '') delete nextSpec.bootMode;
        else nextSpec.bootMode = before as HostSpec['bootMode'];
      }
      return { ...current, labels, annotations, spec: nextSpec as Record<string, unknown> };
    });
    return unlabelled === undefined ? { kind: 'waiting', reason: 'the machine is being cleaned' } : { kind: 'freed' };
  }

  // ------------------------------------------------------------------ writes

  /**
   * Re-reads the host and applies `mutate` to the fresh row (undefined: leave it alone), retrying
   * a few times on conflict: the conductor writes host status often. Returns the stored row, or
   * undefined when the host is gone, `mutate` declined, or every attempt conflicted.
   */
  async #patchHost(hostUid: string, mutate: (current: StoredResource) => Promise<StoredResource | undefined>): Promise<StoredResource | undefined> {
    for (let attempt = 0; attempt < HOST_PATCH_ATTEMPTS; attempt++) {
      const current = await this.store.getByUid(hostUid);
      if (current === undefined) return undefined;
      const next = await mutate(structuredClone(current));
      if (next === undefined) return undefined;
      if (sameJson(next.labels, current.labels) && sameJson(next.annotations, current.annotations) && sameJson(next.spec, current.spec)) return current;
      try {
        return await this.store.replace(next);
      } catch (error) {
        if (!isConflict(error)) throw error;
      }
    }
    return undefined;
  }

  /** What a claim keeps showing while it fails or is released: its host name and addresses. */
  #keep(claim: StoredResource): Pick<ClaimStatus, 'hostName' | 'addresses'> {
    const status = claim.status as Partial<ClaimStatus>;
    return { ...(status.hostName !== undefined ? { hostName: status.hostName } : {}), ...(status.addresses !== undefined ? { addresses: status.addresses } : {}) };
  }

  async #setStatus(claim: StoredResource, next: ClaimStatus): Promise<StoredResource | undefined> {
    const previous = claim.status as Partial<ClaimStatus>;
    const readyAt = previous.readyAt ?? (next.state === 'ready' ? this.now().toISOString() : undefined);
    const status: ClaimStatus = { ...next, ...(readyAt !== undefined ? { readyAt } : {}) };
    if (sameJson(previous, status)) return claim;
    let stored: StoredResource;
    try {
      stored = await this.store.replace({ ...claim, status: status as unknown as Record<string, unknown> });
    } catch (error) {
      if (isConflict(error) || isNotFound(error)) return undefined;
      throw error;
    }
    const from = previous.state;
    if (from !== status.state || (status.state === 'pending' && previous.reason === undefined)) {
      const [type, reason, message] = transitionEvent(from, status);
      await this.#event(stored, type, reason, message, from, status.state);
    }
    return stored;
  }

  async #event(claim: StoredResource, type: 'Normal' | 'Warning', reason: string, message: string, fromState: string | undefined, toState: string | undefined): Promise<void> {
    try {
      await this.store.appendEvent({
        kind: 'Claim',
        project: claim.project,
        name: claim.name,
        uid: claim.uid,
        type,
        reason,
        message,
        ...(fromState !== undefined ? { fromState } : {}),
        ...(toState !== undefined ? { toState } : {}),
      });
    } catch (error) {
      this.log.warn('could not append a claim event', { claim: `${claim.project}/${claim.name}`, reason, error: String(error) });
    }
  }
}

function transitionEvent(from: ClaimState | undefined, to: ClaimStatus): ['Normal' | 'Warning', string, string] {
  switch (to.state) {
    case 'pending':
      return ['Normal', 'Pending', to.reason ?? 'waiting for a machine'];
    case 'binding':
    case 'provisioning':
      return from === 'pending' || from === undefined || from === 'binding'
        ? ['Normal', 'Bound', `bound to host ${to.hostName ?? '?'}; provisioning`]
        : ['Normal', 'Provisioning', `provisioning host ${to.hostName ?? '?'}`];
    case 'ready':
      return ['Normal', 'Ready', `host ${to.hostName ?? '?'} is provisioned`];
    case 'failed':
      return ['Warning', 'Failed', to.reason ?? 'the claim failed'];
    case 'releasing':
      return ['Normal', 'Releasing', to.reason ?? 'releasing the machine'];
  }
}

function byName(rows: StoredResource[]): Map<string, StoredResource> {
  return new Map(rows.map((r) => [r.name, r]));
}

function nodeTypeOf(claim: StoredResource): string {
  return String((claim.spec as Partial<ClaimSpec>).nodeTypeName ?? '');
}

function hostNameOf(claim: StoredResource): string | undefined {
  return (claim.status as Partial<ClaimStatus>).hostName;
}

function parsedPool(snap: Snapshot, pool: StoredResource): ParsedIpPool | Error {
  let parsed = snap.parsedPools.get(pool.name);
  if (parsed === undefined) {
    try {
      parsed = parseIpPoolSpec(pool.spec as IpPoolSpec, `IP pool "${pool.name}" spec`);
    } catch (error) {
      parsed = error instanceof Error ? error : new Error(String(error));
    }
    snap.parsedPools.set(pool.name, parsed);
  }
  return parsed;
}

function addressOf(poolName: string, pool: ParsedIpPool, address: string): ClaimAddress {
  return { ipPoolName: poolName, address, prefix: pool.prefix, ...(pool.gateway !== undefined ? { gateway: formatIp(pool.gateway) } : {}) };
}

/** A host row in the API's shape, which the matcher and the conductor's types read. */
export function toHost(row: StoredResource): Host {
  return {
    apiVersion: API_VERSION,
    kind: 'Host',
    metadata: {
      name: row.name,
      uid: row.uid,
      labels: row.labels,
      annotations: row.annotations,
      resourceVersion: String(row.resourceVersion),
      createdAt: row.createdAt,
      updatedAt: row.updatedAt,
      ...(row.deletionTimestamp !== undefined ? { deletionTimestamp: row.deletionTimestamp } : {}),
    },
    spec: row.spec as HostSpec,
    status: row.status as unknown as HostStatus,
  };
}

// ------------------------------------------------------------------ config drive

/**
 * The conductor's ConfigDriveSource for claimed hosts: user data (inline, sealed under the
 * claim's uid, or from a Secret of the claim's own project), network_data.json for the claim's
 * addresses, and meta data naming the claim with its SSH keys. Undefined for hosts without the
 * ingot.dev/claim label (the host's own spec.userDataName applies). Read-only: it may be called
 * any number of times. Throws IngotError (message for the admin, without any secret value)
 * when something only a person can fix is missing.
 */
export function claimConfigDriveSource(store: Store, secretBox: SecretBox): ConfigDriveSource {
  return async function claimConfigDrive(host: Host): Promise<ConfigDriveContent | undefined> {
    const claimUid = host.metadata.labels?.[CLAIM_LABEL];
    if (claimUid === undefined) return undefined;
    const claim = await store.getByUid(claimUid);
    if (claim === undefined || claim.kind !== 'Claim') {
      throw new IngotError('INGOT_ERR_UNPROCESSABLE', `host "${host.metadata.name}" is labelled ${CLAIM_LABEL}=${claimUid}, but that claim no longer exists; the claim controller releases the host`);
    }
    const where = `claim ${claim.project}/${claim.name}`;
    const binding = await store.getClaimBinding(claim.uid);
    if (binding?.hostUid !== host.metadata.uid) {
      throw new IngotError('INGOT_ERR_UNPROCESSABLE', `host "${host.metadata.name}" is labelled for ${where}, but that claim is not bound to it; remove the ${CLAIM_LABEL} label or let the claim controller finish`);
    }
    const spec = claim.spec as ClaimSpec;
    const content: ConfigDriveContent = {};

    if (spec.userDataSecretName !== undefined) {
      // A claim may only use its own project's secrets (DESIGN.md: references resolve inside the referrer's scope).
      const secret = await readSecretValues(store, secretBox, { project: claim.project, name: spec.userDataSecretName });
      if (secret === undefined) {
        throw new IngotError('INGOT_ERR_NOT_FOUND', `Secret "${spec.userDataSecretName}" of project ${claim.project}, named by ${where} spec.userDataSecretName, does not exist; create it with key userData, or change the claim`);
      }
      const userData = secret.values.userData;
      if (userData === undefined) {
        throw new IngotError('INGOT_ERR_UNPROCESSABLE', `Secret "${spec.userDataSecretName}" of project ${claim.project}, named by ${where} spec.userDataSecretName, has no key userData; set it`);
      }
      content.userData = userData;
      content.secretUse = { secretName: spec.userDataSecretName, secretProject: claim.project, secretVersion: secret.version };
    } else if (spec.userData !== undefined) {
      const row = await store.getSecretCiphertext(claim.uid);
      if (row === undefined) {
        throw new IngotError('INGOT_ERR_NOT_FOUND', `the inline user data of ${where} is missing from the database; set spec.userData on the claim again`);
      }
      const userData = secretBox.open(row.ciphertext, claim.uid).userData;
      if (userData === undefined) throw new IngotError('INGOT_ERR_UNPROCESSABLE', `the sealed user data of ${where} holds no userData; set spec.userData on the claim again`);
      content.userData = userData;
    }

    const networks = spec.networks ?? [];
    if (networks.length > 0) {
      const nics = host.status.hardware?.nics ?? [];
      const allocations = await store.listClaimAllocations(claim.uid);
      const attachments: NetworkAttachment[] = [];
      for (const [index, network] of networks.entries()) {
        const pool = await store.get({ kind: 'IPPool', project: '', name: network.ipPoolName });
        const allocation = pool === undefined ? undefined : allocations.find((a) => a.poolUid === pool.uid);
        if (pool === undefined || allocation === undefined) {
          throw new IngotError('INGOT_ERR_UNPROCESSABLE', `${where} spec.networks[${index}] (IP pool "${network.ipPoolName}") has no address allocated yet; the claim controller allocates it before provisioning`);
        }
        const mac = macFor(network, host);
        if (mac === undefined) throw new IngotError('INGOT_ERR_UNPROCESSABLE', `host "${host.metadata.name}" has no NICs found by inspection, so ${where} cannot be given its network; inspect the host again`);
        attachments.push({ mac, pool: { name: pool.name, spec: pool.spec as IpPoolSpec }, address: allocation.address });
      }
      content.networkData = renderNetworkData({ nics, attachments }) as unknown as Record<string, unknown>;
    }

    const keys = spec.sshKeys ?? [];
    content.metaData = {
      claim: claim.name,
      project: claim.project,
      ...(keys.length > 0 ? { public_keys: Object.fromEntries(keys.map((key, i) => [`key${i}`, key])) } : {}),
    };
    return content;
  };
}

/** The NIC an address goes on: the network's own MAC, else the host's boot NIC, else its first NIC. */
function macFor(network: ClaimNetwork, host: Host): string | undefined {
  return network.macAddress ?? host.spec.bootMACAddress ?? host.status.hardware?.nics?.[0]?.mac;
}
