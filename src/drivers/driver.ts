// The BMC driver contract. A driver is a bundle of small interfaces (after Ironic's
// drivers/base.py): `power` and `boot` must work; the optional parts may be absent, which
// means "this driver cannot do that" and the conductor reports it rather than guessing.
//
// Every method:
// - may be called any number of times with the same arguments (the conductor retries after
//   crashes and timeouts), and must converge on the same hardware state;
// - is polled: it asks for a change and returns; the caller reads state back until it sees
//   the change (`power.get` after `power.set`);
// - throws BmcUnreachable when it could not ask (network, timeout, 5xx: the conductor retries
//   with backoff), BmcRefused when the BMC answered "no" (wrong credentials, unsupported value:
//   the host gets an error state with errorType), BmcCertificateError when TLS verification
//   failed (a registration error naming the CA to fix).
import type { BmcAddress, DriverName } from '../model/bmc-address.js';
import type { HardwareDetails } from '../model/host.js';

export interface BmcCredentials {
  username: string;
  password: string;
}

/** Everything a driver needs to reach one host's BMC. Built fresh by the conductor for each call. */
export interface BmcTarget {
  /** The Ingot host's name, for logs and error messages. */
  hostName: string;
  address: BmcAddress;
  credentials: BmcCredentials;
  /** The name of the Secret the credentials came from, so errors can say which one to fix (never its values). */
  credentialsName?: string;
  tls: {
    /** PEM bundle of CAs to trust for this BMC; absent means the system trust store. */
    caBundle?: string;
    /** False only when spec.bmc.disableCertificateVerification is set (and allowed by policy). */
    verify: boolean;
  };
}

export type PowerState = 'on' | 'off';
export type BootDevice = 'pxe' | 'cd' | 'hdd' | 'uefi-http';

export interface SystemIdentity {
  /** The Redfish system path / IPMI address / fake name actually used. */
  systemId: string;
  uuid?: string;
  manufacturer?: string;
  model?: string;
  serialNumber?: string;
  /** MAC addresses the BMC reports for the system's NICs (lower-case), to confirm bootMACAddress. */
  macAddresses?: string[];
  /**
   * Set when the driver had to authenticate otherwise than the BMC advertises (e.g. it offers
   * sessions but refused to create one, and HTTP Basic works): registration records it as an event.
   */
  authenticationNote?: string;
}

export interface PowerInterface {
  /** Reads the current power state. */
  get(target: BmcTarget): Promise<PowerState>;
  /** Asks for a power state. `soft` asks the OS to shut down; `hard` cuts power. Returns once asked. */
  set(target: BmcTarget, request: { state: PowerState; mode: 'soft' | 'hard' }): Promise<void>;
  /** Restarts the system (power cycles it if off: it ends up on). */
  reboot(target: BmcTarget, request: { mode: 'soft' | 'hard' }): Promise<void>;
}

export interface BootInterface {
  /** Sets the device the system boots from next; `persistent: false` means once. */
  setBootDevice(target: BmcTarget, request: { device: BootDevice; persistent: boolean; mode?: 'UEFI' | 'legacy' }): Promise<void>;
  getBootDevice(target: BmcTarget): Promise<{ device: BootDevice | 'none'; persistent: boolean }>;
}

export interface VirtualMediaInterface {
  /** Inserts the image at `url` as a virtual CD, ejecting whatever was there. */
  insert(target: BmcTarget, request: { url: string }): Promise<void>;
  eject(target: BmcTarget): Promise<void>;
}

export interface InventoryInterface {
  /** Out-of-band inspection: what the BMC knows of the hardware. */
  get(target: BmcTarget): Promise<HardwareDetails>;
}

export interface SecureBootInterface {
  /**
   * `enabled` is the setting (what the next boot gets); `currentBoot`, when the BMC reports it,
   * is whether the running boot actually has secure boot on (verify after provisioning).
   */
  get(target: BmcTarget): Promise<{ enabled: boolean; capable: boolean; currentBoot?: boolean }>;
  set(target: BmcTarget, request: { enabled: boolean }): Promise<void>;
}

export interface BiosInterface {
  get(target: BmcTarget): Promise<Record<string, string | number | boolean>>;
  /** Stages settings; they take effect on the next reset. */
  apply(target: BmcTarget, settings: Record<string, string | number | boolean>): Promise<void>;
  resetToDefaults(target: BmcTarget): Promise<void>;
}

export interface FirmwareComponent {
  id: string;
  name: string;
  version: string;
}

export interface FirmwareInterface {
  list(target: BmcTarget): Promise<FirmwareComponent[]>;
}

export interface BmcDriver {
  readonly name: DriverName;
  /** Cheap and local (runs inside API requests): throws BmcRefused if the target cannot work. */
  validate(target: BmcTarget): void;
  /** Connects, authenticates, verifies TLS, and identifies the system. Registration calls this. */
  identify(target: BmcTarget): Promise<SystemIdentity>;
  power: PowerInterface;
  boot: BootInterface;
  media?: VirtualMediaInterface;
  inventory?: InventoryInterface;
  secureBoot?: SecureBootInterface;
  bios?: BiosInterface;
  firmware?: FirmwareInterface;
  /** Releases pooled connections and sessions. */
  close?(): Promise<void>;
}

/** Base for every driver failure; `retryable` tells the conductor whether backoff-and-retry can help. */
export class BmcError extends Error {
  readonly retryable: boolean;
  constructor(message: string, retryable: boolean, opts?: { cause?: unknown }) {
    super(message, opts);
    this.retryable = retryable;
    this.name = new.target.name;
  }
}

/** Could not ask: network error, timeout, 5xx. Retry with backoff. */
export class BmcUnreachable extends BmcError {
  constructor(message: string, opts?: { cause?: unknown }) {
    super(message, true, opts);
  }
}

/** The BMC answered and said no (401/403, 400 for an unsupported value, missing system). */
export class BmcRefused extends BmcError {
  constructor(message: string, opts?: { cause?: unknown }) {
    super(message, false, opts);
  }
}

/** TLS verification failed; the message names the CA bundle to fix. */
export class BmcCertificateError extends BmcError {
  constructor(message: string, opts?: { cause?: unknown }) {
    super(message, false, opts);
  }
}

/** Wrong username or password: registration fails until the credentials secret is fixed. */
export class BmcAuthenticationError extends BmcRefused {}
