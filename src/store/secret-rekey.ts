// `ingot secrets rekey`: envelope rotation without downtime. A new key becomes current (every
// new seal uses it at once), then every stored secret value is re-sealed under it in small
// transactions while the server keeps serving: until a row is moved, readers open it with the
// previous key, which stays in the ring. A row is replaced only if it still has the version
// and key id it was read with, so a value set meanwhile (already under the new key) is never
// overwritten by the re-sealed old one. Old keys are deleted only on request (retireOld) and
// only when no row references them any more.
//
// Other sealed data: agent session tokens and queued deploy commands (user data) are sealed
// under the key current when they were made and live minutes to hours; retiring a key while
// a deploy made before the rekey is still running breaks that deploy. Retire after in-flight
// deploys end (docs/server-config.md "Rotating the secret key").
import { randomBytes } from 'node:crypto';
import { IngotError } from '../model/errors.js';
import type { SecretBox } from './secret-box.js';
import type { Store } from './store.js';

export interface RekeyOptions {
  /** Rows re-sealed per transaction; default 50. */
  batchSize?: number;
  /** Delete previous keys that no secret row references once every row is moved. */
  retireOld?: boolean;
  /** Instead of rotating, only retire previous keys no row references (after an earlier rekey). */
  retireOnly?: boolean;
  now?: () => number;
}

export interface RekeyReport {
  /** The current key after the operation. */
  keyId: string;
  /** The key that was current before (undefined for retireOnly). */
  previousKeyId?: string;
  /** Secret rows seen. */
  rows: number;
  /** Rows re-sealed under the new key by this run. */
  moved: number;
  /** Rows still under an older key (changed meanwhile and moved on the next run, or unreadable). */
  remaining: number;
  /** Previous keys still on disk. */
  previousKeyIds: string[];
  /** Keys deleted by this run. */
  retiredKeyIds: string[];
  /** What the operator can do next, in words. */
  message: string;
}

const REKEY_LEASE = 'secrets/rekey';
const REKEY_LEASE_TTL_MS = 15 * 60_000;

export async function rekeySecrets(store: Store, box: SecretBox, options: RekeyOptions = {}): Promise<RekeyReport> {
  const batchSize = options.batchSize ?? 50;
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 1000) throw new RangeError(`batchSize must be 1..1000, got ${batchSize}`);
  const now = options.now ?? Date.now;
  const holder = `rekey-${process.pid}-${randomBytes(4).toString('hex')}`;
  // One rotation at a time across every server sharing the database.
  if (!(await store.acquireLease(REKEY_LEASE, holder, 'secret rekey', REKEY_LEASE_TTL_MS, now()))) {
    throw new IngotError('INGOT_ERR_CONFLICT', 'a secret rekey is already running on this installation; wait for it to finish and run `ingot secrets rekey` again if needed');
  }
  try {
    let previousKeyId: string | undefined;
    let moved = 0;
    let rows = 0;
    if (!options.retireOnly) {
      const rotated = box.rotate();
      previousKeyId = rotated.oldKeyId;
      const keyId = rotated.newKeyId;
      const pending = (await store.listSecretCiphertexts()).filter((r) => r.keyId !== keyId);
      rows = pending.length;
      for (let i = 0; i < pending.length; i += batchSize) {
        const batch = pending.slice(i, i + batchSize);
        moved += await store.transaction(async (tx) => {
          let n = 0;
          for (const listed of batch) {
            const row = await tx.getSecretCiphertext(listed.uid);
            if (!row || row.keyId === keyId) continue;
            const sealed = box.seal(box.open(row.ciphertext, row.uid), row.uid);
            if (await tx.replaceSecretCiphertextIf({ uid: row.uid, version: row.version, keyId, ciphertext: sealed }, { version: row.version, keyId: row.keyId })) n += 1;
          }
          return n;
        });
        // Let requests run between batches.
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
    const keyId = box.keyId;
    const all = await store.listSecretCiphertexts();
    if (options.retireOnly) rows = all.length;
    const remaining = all.filter((r) => r.keyId !== keyId).length;
    const referenced = new Set(all.map((r) => r.keyId));
    let retiredKeyIds: string[] = [];
    if ((options.retireOld || options.retireOnly) && remaining === 0) {
      retiredKeyIds = box.retire(box.keyIds().filter((id) => id !== keyId && !referenced.has(id)));
    }
    const previousKeyIds = box.keyIds().filter((id) => id !== keyId);
    let message: string;
    if (remaining > 0) {
      message = `${remaining} secret value(s) are still under an older key (changed meanwhile or unreadable); run \`ingot secrets rekey --retire-only\` again later, and keep the previous keys until it reports 0`;
    } else if (previousKeyIds.length > 0) {
      message = `every secret value is under key ${keyId}; the previous key(s) ${previousKeyIds.join(', ')} are no longer needed by secrets: remove them with \`ingot secrets rekey --retire-only\` once deploys started before this rekey have finished`;
    } else {
      message = `every secret value is under key ${keyId}; no previous key is kept`;
    }
    return { keyId, ...(previousKeyId ? { previousKeyId } : {}), rows, moved, remaining, previousKeyIds, retiredKeyIds, message };
  } finally {
    await store.releaseLease(REKEY_LEASE, holder);
  }
}
