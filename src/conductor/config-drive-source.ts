// Where a deploy's config drive comes from when something other than the host owns it.
//
// By default provisioning builds the config drive (cloud-init ConfigDrive: openstack/latest/
// meta_data.json, user_data, network_data.json) from the host itself: meta data from its
// uid and name, user data from the platform Secret named by spec.userDataName. A claim binds a
// tenant's project to a host, and the tenant's user data and network data belong to the claim,
// not to the host. The conductor must not know about claims (tenancy code depends on the
// conductor, never the reverse), so whoever builds the conductor passes a ConfigDriveSource
// (createConductor's `configDriveSource` option) and provisioning asks it first.
import { CredentialsProblem } from './credentials.js';
import { IngotError } from '../model/errors.js';
import type { Host } from '../model/host.js';

/** What a source supplies for one host's config drive. Every field is optional. */
export interface ConfigDriveContent {
  /** The user_data file, as is (cloud-config, a script…). Secret: never logged, stored in status, or put in events. */
  userData?: string;
  /** The network_data.json document (OpenStack network_data format: links, networks, services). */
  networkData?: Record<string, unknown>;
  /** Keys merged over the defaults (uuid, name, hostname) of meta_data.json. */
  metaData?: Record<string, unknown>;
  /**
   * The Secret the user data was read from, reported so the conductor audits the use like every
   * other secret it hands out (SecretUseListener, purpose 'user-data'). Names and version only.
   */
  secretUse?: { secretName: string; secretProject: string; secretVersion: number };
}

/**
 * Called when provisioning builds the deploy request for `host` (once per deploy operation; again
 * when a conductor restarted before the agent took the request, or when a failed deploy is
 * retried), so it must be a read with no side effects and may be called any number of times.
 *
 * - Returns undefined when the host has no external source: provisioning then uses
 *   spec.userDataName as it always did.
 * - Throws IngotError or CredentialsProblem for a problem only a person can fix (the claim's
 *   user data Secret is missing, its network cannot be allocated): the message, which must name
 *   what to fix and hold no secret value, becomes the host's provisioning error, retried with
 *   backoff like any failed step.
 * - Any other error is treated as a bug: the conductor logs it and retries the step.
 */
export type ConfigDriveSource = (host: Host) => Promise<ConfigDriveContent | undefined>;

/** Bounds on what a source may hand over; the whole drive must fit a small ISO partition. */
export const CONFIG_DRIVE_LIMITS = {
  userDataBytes: 512 * 1024,
  networkDataBytes: 256 * 1024,
  metaDataBytes: 64 * 1024,
} as const;

/** A source failed in a way a person must fix; its message becomes the provisioning error. */
export class ConfigDriveProblem extends Error {
  constructor(message: string, opts?: { cause?: unknown }) {
    super(message, opts);
    this.name = 'ConfigDriveProblem';
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function jsonBytes(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value), 'utf8');
}

/**
 * Asks `source` for `host`'s content and checks it. Throws ConfigDriveProblem when the source
 * reported a problem for a person (IngotError, CredentialsProblem) or handed back content that
 * cannot go on a config drive; other errors propagate.
 */
export async function readConfigDriveSource(source: ConfigDriveSource, host: Host): Promise<ConfigDriveContent | undefined> {
  let content: ConfigDriveContent | undefined;
  try {
    content = await source(host);
  } catch (error) {
    if (error instanceof IngotError || error instanceof CredentialsProblem) {
      throw new ConfigDriveProblem(`the config drive for this host could not be prepared: ${error.message}`, { cause: error });
    }
    throw error;
  }
  if (content === undefined) return undefined;
  const problems: string[] = [];
  if (!isPlainObject(content)) {
    problems.push('the source returned something other than an object');
  } else {
    const { userData, networkData, metaData, secretUse } = content;
    if (userData !== undefined) {
      if (typeof userData !== 'string') problems.push('userData must be a string');
      else if (Buffer.byteLength(userData, 'utf8') > CONFIG_DRIVE_LIMITS.userDataBytes) problems.push(`userData is larger than ${CONFIG_DRIVE_LIMITS.userDataBytes} bytes`);
    }
    for (const [field, value, limit] of [
      ['networkData', networkData, CONFIG_DRIVE_LIMITS.networkDataBytes],
      ['metaData', metaData, CONFIG_DRIVE_LIMITS.metaDataBytes],
    ] as const) {
      if (value === undefined) continue;
      if (!isPlainObject(value)) problems.push(`${field} must be a JSON object`);
      else if (jsonBytes(value) > limit) problems.push(`${field} is larger than ${limit} bytes of JSON`);
    }
    if (secretUse !== undefined) {
      const ok =
        isPlainObject(secretUse) &&
        typeof secretUse.secretName === 'string' &&
        secretUse.secretName.length > 0 &&
        secretUse.secretName.length <= 253 &&
        typeof secretUse.secretProject === 'string' &&
        secretUse.secretProject.length <= 253 &&
        typeof secretUse.secretVersion === 'number' &&
        Number.isSafeInteger(secretUse.secretVersion) &&
        secretUse.secretVersion >= 0;
      if (!ok) problems.push('secretUse needs secretName, secretProject and an integer secretVersion');
    }
  }
  if (problems.length > 0) throw new ConfigDriveProblem(`the config drive source gave content that cannot be written: ${problems.join('; ')}`);
  return content;
}
