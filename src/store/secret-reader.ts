// Resolving a Secret's values for code that must use them (the conductor's BMC credentials,
// config drives). Values stay in memory only as long as the caller holds them.
import type { SecretBox } from './secret-box.js';
import type { Store } from './store.js';

export interface SecretValues {
  values: Record<string, string>;
  /** Increases with every change of the values (the stored ciphertext's version). */
  version: number;
  uid: string;
}

/**
 * Reads and decrypts the Secret `name` in scope `project` ('' or absent: platform scope).
 * Returns undefined when the Secret or its values do not exist. Throws IngotError
 * INGOT_ERR_INTERNAL when the values cannot be decrypted (wrong key, tampering).
 * Scope rules (a host may only use a platform secret) are the caller's to apply by
 * choosing `project`; this function never looks outside the scope it is given.
 */
export async function readSecretValues(
  store: Store,
  box: SecretBox,
  ref: { project?: string; name: string },
): Promise<SecretValues | undefined> {
  const secret = await store.get({ kind: 'Secret', project: ref.project ?? '', name: ref.name });
  if (secret === undefined) return undefined;
  const row = await store.getSecretCiphertext(secret.uid);
  if (row === undefined) return undefined;
  return { values: box.open(row.ciphertext, secret.uid), version: row.version, uid: secret.uid };
}
