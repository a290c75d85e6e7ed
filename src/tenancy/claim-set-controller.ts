// The claim set controller: keeps `spec.replicas` claims of a ClaimSet alive, like a
// Cluster API MachineSet. Its claims are the Claims of its project labelled
// `ingot.dev/claimset: <set name>`; scaling up creates claims named `<set>-<5 random
// characters>` from the template, scaling down deletes the NEWEST claims first (the oldest have
// been serving longest and are the ones a tenant expects to keep). Deleting a set deletes its
// claims and removes the set once none is left. The claim controller does the rest.
//
// Unlike binding, creating claims has no UNIQUE constraint to settle a race (two processes
// would both create the missing claims), so one process at a time works on a set: the one
// holding the lease `claimset/<uid>`. Another process takes over when the lease expires.
import { randomInt, randomUUID } from 'node:crypto';
import { CLAIM_SET_LABEL, type ClaimSpec, type ClaimStatus } from '../model/claim.js';
import type { ClaimSetSpec, ClaimSetStatus } from '../model/claim-set.js';
import { IngotError } from '../model/errors.js';
import type { SecretBox } from '../store/secret-box.js';
import type { Store, StoredResource } from '../store/store.js';
import { SEALED_USER_DATA } from './claim-controller.js';
import { byCreation, createReconcileLoop, DEFAULT_POLL_MS, isConflict, isNotFound, listAll, sameJson, SILENT_CONTROLLER_LOG, type ControllerLog, type TenancyController } from './reconcile-loop.js';

const SUFFIX_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
const SUFFIX_LENGTH = 5;
/** Claim names are DNS labels (63 characters): room for "-" and the suffix. */
const MAX_PREFIX_LENGTH = 63 - 1 - SUFFIX_LENGTH;
const NAME_ATTEMPTS = 5;
/** Created per set per pass at most, so one huge scale-up does not hold a pass for long. */
const MAX_CREATES_PER_PASS = 100;

export interface ClaimSetControllerOptions {
  store: Store;
  secretBox: SecretBox;
  log?: ControllerLog;
  pollMs?: number;
  now?: () => Date;
  /** Random suffix source (tests); default crypto.randomInt. */
  randomSuffix?: () => string;
}

export interface ClaimSetStatusWithReason extends ClaimSetStatus {
  /** Why the set cannot create claims (its sealed template user data is missing). */
  reason?: string;
}

export function createClaimSetController(opts: ClaimSetControllerOptions): TenancyController {
  const log = opts.log ?? SILENT_CONTROLLER_LOG;
  const now = opts.now ?? (() => new Date());
  const pollMs = opts.pollMs ?? DEFAULT_POLL_MS;
  const holder = `claimset-controller-${randomUUID()}`;
  const leaseMs = Math.max(30_000, pollMs * 10);
  const suffix = opts.randomSuffix ?? randomSuffix;
  const { store, secretBox } = opts;

  async function pass(): Promise<void> {
    const sets = (await listAll(store, 'ClaimSet')).sort(byCreation);
    for (const set of sets) {
      try {
        if (!(await store.acquireLease(`claimset/${set.uid}`, holder, 'claimset', leaseMs, now().getTime()))) continue;
        await reconcileSet(set);
      } catch (error) {
        if (isConflict(error) || isNotFound(error)) continue;
        log.warn('claim set reconcile failed; retrying next pass', { claimSet: `${set.project}/${set.name}`, error: String(error) });
      }
    }
  }

  async function reconcileSet(set: StoredResource): Promise<void> {
    const all = (await listAll(store, 'Claim', set.project)).filter((c) => c.labels[CLAIM_SET_LABEL] === set.name).sort(byCreation);
    const live = all.filter((c) => c.deletionTimestamp === undefined);

    if (set.deletionTimestamp !== undefined) {
      for (const claim of live) await markDeleted(claim);
      if (all.length === 0) {
        await store.deleteSecretCiphertext(set.uid);
        await store.remove({ kind: 'ClaimSet', project: set.project, name: set.name }, set.resourceVersion);
        await store.releaseLease(`claimset/${set.uid}`, holder);
      }
      return;
    }

    const spec = set.spec as ClaimSetSpec;
    let reason: string | undefined;
    const kept = [...live];
    if (live.length < spec.replicas) {
      const template = await templateUserData(set);
      if ('reason' in template) {
        reason = template.reason;
      } else {
        const created: string[] = [];
        const wanted = Math.min(spec.replicas - live.length, MAX_CREATES_PER_PASS);
        for (let i = 0; i < wanted; i++) {
          const claim = await createClaim(set, spec, template.userData);
          kept.push(claim);
          created.push(claim.name);
        }
        await event(set, 'Normal', 'ScaledUp', `created ${created.length} claim${created.length === 1 ? '' : 's'}: ${created.join(', ')}`);
      }
    } else if (live.length > spec.replicas) {
      // Newest first (live is oldest first).
      const doomed = live.slice(spec.replicas).reverse();
      for (const claim of doomed) await markDeleted(claim);
      kept.splice(spec.replicas);
      await event(set, 'Normal', 'ScaledDown', `deleting ${doomed.length} claim${doomed.length === 1 ? '' : 's'}, newest first: ${doomed.map((c) => c.name).join(', ')}`);
    }

    const stateOf = (c: StoredResource) => (c.status as Partial<ClaimStatus>).state ?? 'pending';
    const ready = kept.filter((c) => stateOf(c) === 'ready').length;
    const failed = kept.filter((c) => stateOf(c) === 'failed').length;
    const status: ClaimSetStatusWithReason = { replicas: kept.length, ready, pending: kept.length - ready - failed, failed, ...(reason !== undefined ? { reason } : {}) };
    if (!sameJson(set.status, status)) {
      // The set row may have changed since we listed (spec edit): next pass writes then.
      await store.replace({ ...set, status: status as unknown as Record<string, unknown> });
    }
  }

  /** The template's inline user data, opened (sealed under the SET's uid by the API). */
  async function templateUserData(set: StoredResource): Promise<{ userData: string | undefined } | { reason: string }> {
    const template = (set.spec as ClaimSetSpec).template.spec;
    if (template.userData === undefined) return { userData: undefined };
    const row = await store.getSecretCiphertext(set.uid);
    const userData = row === undefined ? undefined : secretBox.open(row.ciphertext, set.uid).userData;
    if (userData === undefined) return { reason: 'the template\'s inline user data is missing from the database; set spec.template.spec.userData again' };
    return { userData };
  }

  async function createClaim(set: StoredResource, spec: ClaimSetSpec, userData: string | undefined): Promise<StoredResource> {
    const prefix = set.name.slice(0, MAX_PREFIX_LENGTH).replace(/-+$/, '');
    const claimSpec: ClaimSpec = { ...spec.template.spec };
    if (userData !== undefined) claimSpec.userData = SEALED_USER_DATA;
    for (let attempt = 1; ; attempt++) {
      const name = `${prefix}-${suffix()}`;
      try {
        // One transaction: a claim never exists without its sealed user data.
        return await store.transaction(async (tx) => {
          const claim = await tx.create({
            kind: 'Claim',
            project: set.project,
            name,
            labels: { ...(spec.template.metadata?.labels ?? {}), [CLAIM_SET_LABEL]: set.name },
            spec: claimSpec as Record<string, unknown>,
            status: { state: 'pending' },
          });
          // Re-sealed under the claim's own uid: the claim controller opens it with that aad.
          if (userData !== undefined) await tx.putSecretCiphertext({ uid: claim.uid, version: 1, keyId: secretBox.keyId, ciphertext: secretBox.seal({ userData }, claim.uid) });
          return claim;
        });
      } catch (error) {
        if (error instanceof IngotError && error.code === 'INGOT_ERR_ALREADY_EXISTS' && attempt < NAME_ATTEMPTS) continue;
        throw error;
      }
    }
  }

  async function markDeleted(claim: StoredResource): Promise<void> {
    try {
      await store.replace({ ...claim, deletionTimestamp: now().toISOString() });
    } catch (error) {
      if (!isConflict(error) && !isNotFound(error)) throw error;
    }
  }

  async function event(set: StoredResource, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    try {
      await store.appendEvent({ kind: 'ClaimSet', project: set.project, name: set.name, uid: set.uid, type, reason, message: message.slice(0, 1000) });
    } catch (error) {
      log.warn('could not append a claim set event', { claimSet: `${set.project}/${set.name}`, error: String(error) });
    }
  }

  return createReconcileLoop({ store, pollMs, log, name: 'claim set controller', pass });
}

function randomSuffix(): string {
  let out = '';
  for (let i = 0; i < SUFFIX_LENGTH; i++) out += SUFFIX_ALPHABET[randomInt(SUFFIX_ALPHABET.length)];
  return out;
}
