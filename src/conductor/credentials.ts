// Resolving a host's BMC credentials (and user data) from Secrets, fresh for every reconcile, so
// a rotated secret takes effect on the next BMC call without touching the host (DESIGN.md,
// "Security, by design"). Hosts are platform-scoped: their references resolve only among
// platform secrets (project ''), never a tenant's.
//
// Values returned here go to the driver and the agent only: never into status, events or logs.
import type { BmcCredentials } from '../drivers/driver.js';
import type { Host } from '../model/host.js';
import type { SecretBox } from '../store/secret-box.js';
import { readSecretValues } from '../store/secret-reader.js';
import type { Store } from '../store/store.js';

export interface ResolvedCredentials {
  credentials: BmcCredentials;
  /** PEM bundle from spec.bmc.caBundleName (key `ca.crt`), when set. */
  caBundle?: string;
  secretName: string;
  /** The credentials secret's version: status.goodCredentials records the one that worked. */
  version: number;
}

/** A problem only an admin can fix (missing secret, missing key): a registration error naming the fix. */
export class CredentialsProblem extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CredentialsProblem';
  }
}

export interface CredentialsResolver {
  /** Reads the credentials named by spec.bmc. Throws CredentialsProblem when they cannot be used. */
  resolve(host: Host): Promise<ResolvedCredentials>;
  /** The `userData` value of spec.userDataName, or undefined when unset. Throws CredentialsProblem when named but missing. */
  userData(host: Host): Promise<string | undefined>;
  /**
   * A resolver that also reports every secret it hands out (for the audit trail: DESIGN.md
   * "every secret use"). Optional: resolvers that read no Secrets have nothing to report.
   */
  observe?(listener: SecretUseListener): CredentialsResolver;
}

/** Why the conductor read a secret. */
export type SecretUsePurpose = 'bmc-credentials' | 'ca-bundle' | 'user-data';

/** One use of a secret for one host: names and versions only, never a value. */
export interface SecretUseEvent {
  secretName: string;
  /**
   * The project the secret lives in; absent means the platform ('') as for every secret the
   * resolver reads. Set for secrets a ConfigDriveSource reports (a claim's project).
   */
  secretProject?: string;
  secretVersion: number;
  hostName: string;
  hostUid: string;
  purpose: SecretUsePurpose;
  /** The host's state when it was used (provisioning, registering…). */
  hostState?: string;
}

export type SecretUseListener = (event: SecretUseEvent) => void;

/** What the secret reader (src/store/secret-reader.ts `readSecretValues(store, box, ref)`) returns. */
export interface SecretValues {
  values: Record<string, string>;
  version: number;
  uid: string;
}

export type ReadSecret = (ref: { project: string; name: string }) => Promise<SecretValues | undefined>;

/** The default resolver over decrypted Secrets. */
export function createSecretCredentialsResolver(readSecret: ReadSecret, onUse?: SecretUseListener): CredentialsResolver {
  async function required(name: string, field: string, keys: string[], host: Host, purpose: SecretUsePurpose): Promise<SecretValues> {
    const secret = await readOnly(name, field, keys);
    if (onUse) {
      try {
        onUse({ secretName: name, secretVersion: secret.version, hostName: host.metadata.name, hostUid: host.metadata.uid, purpose, hostState: host.status.provisioning.state });
      } catch {
        // A listener must not break the BMC call it observes; it reports its own failures.
      }
    }
    return secret;
  }
  async function readOnly(name: string, field: string, keys: string[]): Promise<SecretValues> {
    const secret = await readSecret({ project: '', name });
    if (!secret) {
      throw new CredentialsProblem(
        `secret ${name} (${field}) does not exist; create it with \`ingot secret create ${name} ${keys.map((k) => `--from-literal ${k}=…`).join(' ')}\``,
      );
    }
    const missing = keys.filter((k) => typeof secret.values[k] !== 'string' || secret.values[k] === '');
    if (missing.length > 0) {
      throw new CredentialsProblem(`secret ${name} (${field}) has no ${missing.join(', ')}; update it with \`ingot secret create ${name} …\` including ${missing.join(', ')}`);
    }
    return secret;
  }
  return {
    observe: (listener) => createSecretCredentialsResolver(readSecret, onUse ? (e) => (onUse(e), listener(e)) : listener),
    async resolve(host) {
      const bmc = host.spec.bmc;
      if (!bmc) throw new CredentialsProblem(`host ${host.metadata.name} has no spec.bmc; set spec.bmc.address and spec.bmc.credentialsName`);
      const secret = await required(bmc.credentialsName, 'spec.bmc.credentialsName', ['username', 'password'], host, 'bmc-credentials');
      const resolved: ResolvedCredentials = {
        credentials: { username: secret.values.username!, password: secret.values.password! },
        secretName: bmc.credentialsName,
        version: secret.version,
      };
      if (bmc.caBundleName) {
        const ca = await required(bmc.caBundleName, 'spec.bmc.caBundleName', ['ca.crt'], host, 'ca-bundle');
        resolved.caBundle = ca.values['ca.crt']!;
      }
      return resolved;
    },
    async userData(host) {
      if (!host.spec.userDataName) return undefined;
      const secret = await required(host.spec.userDataName, 'spec.userDataName', ['userData'], host, 'user-data');
      return secret.values.userData;
    },
  };
}

/** The resolver the server uses: Secrets decrypted from the store with the installation's key. */
export function storeCredentialsResolver(store: Store, box: SecretBox, onUse?: SecretUseListener): CredentialsResolver {
  return createSecretCredentialsResolver((ref) => readSecretValues(store, box, ref), onUse);
}
