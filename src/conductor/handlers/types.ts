// The handler contract: one function per state (handlers/index.ts), given a fresh copy of the
// host and everything it may talk to; it returns an Outcome and never writes the database. It
// may change `ctx.host.status` (progress, stepState, hardware…): the engine persists the copy
// for every outcome but `wait` and `terminal`, so a handler that changed status returns `save`.
//
// Every handler must be safe to run again from the top at any time: a conductor may die after
// any await, and the next one re-reads the host and calls the same handler.
import type { AgentPort } from '../agent-port.js';
import type { BmcDriver, BmcTarget } from '../../drivers/driver.js';
import type { Host, ImageSpec, InspectionMode } from '../../model/host.js';
import type { Clock } from '../clock.js';
import type { ConfigDriveSource } from '../config-drive-source.js';
import type { CredentialsResolver, ResolvedCredentials, SecretUseListener } from '../credentials.js';
import type { Outcome } from '../outcome.js';
import type { ApprovedFirmware } from './firmware-check.js';

export interface HandlerConfig {
  /** How often to read power back after asking for a change. */
  powerPollMs: number;
  /** How long a soft power-off may take before it is escalated, once, to a hard one (Metal3: 3 min). */
  softPowerOffTimeoutMs: number;
  /** How long a hard power change may take to read back before it is a power-management error. */
  powerChangeTimeoutMs: number;
  /** How often to poll a running agent operation. */
  agentPollMs: number;
  /** How long to wait for the agent to answer after booting it before failing the step. */
  agentBootTimeoutMs: number;
  /** How hosts without spec.inspection are inspected. */
  defaultInspection: InspectionMode;
  /** Failed inspections retried with backoff before the host stays in error until its spec changes. */
  inspectionAttempts: number;
  /** How often a resting host (available, provisioned…) is checked against its spec. */
  idleRecheckMs: number;
  /** Failed power-off attempts before a delete proceeds anyway (with a Warning event). */
  deletePowerOffAttempts: number;
  /** Cleaning resets BIOS settings to the BMC's defaults (the baseline), when the driver can. */
  resetBiosOnClean: boolean;
  /** Cleaning fails when a listed firmware component runs a version not in its list. */
  approvedFirmware: ApprovedFirmware;
  /**
   * How long after powering on into the new OS the BMC may take to report that the running boot
   * has secure boot on (Redfish SecureBootCurrentBoot is updated by the firmware during POST)
   * before provisioning fails as "secure boot did not take effect".
   */
  secureBootVerifyTimeoutMs: number;
}

export const DEFAULT_HANDLER_CONFIG: HandlerConfig = {
  powerPollMs: 2_000,
  softPowerOffTimeoutMs: 3 * 60_000,
  powerChangeTimeoutMs: 2 * 60_000,
  agentPollMs: 2_000,
  agentBootTimeoutMs: 15 * 60_000,
  idleRecheckMs: 60_000,
  defaultInspection: 'agent',
  inspectionAttempts: 5,
  deletePowerOffAttempts: 5,
  resetBiosOnClean: true,
  approvedFirmware: {},
  secureBootVerifyTimeoutMs: 5 * 60_000,
};

export interface HandlerLog {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export interface BmcAccess {
  driver: BmcDriver;
  target: BmcTarget;
  resolved: ResolvedCredentials;
}

/** What the image proxy answers about one image; polled until ready or failed. */
export type ImagePrepare =
  | { state: 'ready'; /** Where the agent fetches it (the agent listener's image route). */ url: string }
  | { state: 'downloading'; percent?: number }
  | { state: 'failed'; message: string };

/**
 * The conductor's caching proxy (images.downloadSource: local): downloads, verifies and
 * inspects an image once, then serves it to agents from the agent listener.
 */
export interface ImageProxy {
  prepare(image: ImageSpec): Promise<ImagePrepare>;
}

export interface HandlerContext {
  /** A copy of the host as just read from the store; the handler may edit its status. */
  host: Host;
  /** The driver and a fresh target (credentials read now). Throws CredentialsProblem or BmcRefused (bad address). */
  bmc(): Promise<BmcAccess>;
  agent: AgentPort;
  credentials: CredentialsResolver;
  clock: Clock;
  config: HandlerConfig;
  log: HandlerLog;
  /**
   * Whether an agent can be booted on this host (DriverRegistry.hasAgent). Without one,
   * inspection is out-of-band and deploying or cleaning fails with a clear error.
   */
  hasAgent(): boolean;
  /** A new, unique id for an agent operation (saved in stepState before the operation starts). */
  newOperationId(): string;
  /** Set when images go through the conductor's cache; absent: agents download spec.image.url themselves. */
  images?: ImageProxy;
  /** Asked first for a deploy's user data, network data and meta data (config-drive-source.ts). */
  configDriveSource?: ConfigDriveSource;
  /** Reports a secret use the conductor did not resolve itself (a ConfigDriveSource's); absent: not audited. */
  reportSecretUse?: SecretUseListener;
}

export type Handler = (ctx: HandlerContext) => Promise<Outcome>;
