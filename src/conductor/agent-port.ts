// The conductor's view of the on-host agent: start an operation, then poll it. The real
// implementation queues commands for the agent API; the fake (src/drivers/fake/)
// simulates them. Operations are keyed by an id the conductor chooses and persists in
// status.stepState before starting, so a conductor that dies mid-step can poll the same
// operation after restart instead of starting a second one.
import type { HardwareDetails, Host, ImageSpec } from '../model/host.js';

export type AgentOperationKind = 'inspect' | 'deploy' | 'clean';

export interface DeployRequest {
  image: ImageSpec;
  /** Rendered config drive contents (openstack/latest/…); user data is secret and never logged. */
  configDrive?: { metaData: Record<string, unknown>; userData?: string; networkData?: Record<string, unknown> };
  rootDeviceHints?: Host['spec']['rootDeviceHints'];
  /**
   * Zero the root disk's first and last MiB before writing: set when this deploy retries one
   * that failed, which may have left part of an image (a partition table pointing at half a
   * filesystem) however it ended, even with the agent killed mid-write.
   */
  eraseFirst?: boolean;
}

export interface CleanRequest {
  mode: 'metadata' | 'full';
}

export type AgentStartRequest =
  | { kind: 'inspect' }
  | { kind: 'deploy'; deploy: DeployRequest }
  | { kind: 'clean'; clean: CleanRequest };

export type AgentPoll =
  | { state: 'running'; percent?: number; message?: string }
  | { state: 'done'; inventory?: HardwareDetails; rootDevice?: string; message?: string }
  | { state: 'failed'; message: string };

export interface AgentPort {
  /**
   * Starts `request` under `operationId` for `host`. Idempotent: starting an id that is already
   * running or finished does nothing. Throws AgentUnavailable when the agent cannot be reached yet.
   * The agent runs only once the host has booted it: the caller powers the host on (or reboots
   * it) from the network or the agent's virtual media first, then starts. Each agent session
   * serves until finish(), so a later operation needs a new boot.
   */
  start(host: Host, operationId: string, request: AgentStartRequest): Promise<void>;
  /** Reads progress. An id never started (e.g. lost with a rebooted agent) polls as failed. */
  poll(host: Host, operationId: string): Promise<AgentPoll>;
  /** Ends the host's agent session (revokes its boot token); safe to repeat. */
  finish(host: Host): Promise<void>;
  /**
   * Optional: opens a new agent session for `host` (ending any earlier one, which revokes its
   * token) and returns the URL of its boot medium, an ISO the BMC fetches as virtual CD. The URL
   * is a credential (it serves the one-boot token): never log it or store it in status. Ports
   * without it (the fake agent) serve only network-booted hosts.
   */
  prepareBoot?(host: Host): Promise<{ mediaUrl: string }>;
}

/** The agent has not booted or checked in yet: wait and poll again, it is not a failure. */
export class AgentUnavailable extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AgentUnavailable';
  }
}
