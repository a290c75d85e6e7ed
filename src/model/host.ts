// Host: one physical server. Field names follow Metal3's BareMetalHost where they overlap.
import { Type, type Static } from 'typebox';
import { API_VERSION, InputMetadata, type Resource } from './envelope.js';
import { Name } from './envelope.js';
import type { HostCapabilities } from './capabilities.js';

export const HOST_STATES = [
  'registering',
  'inspecting',
  'preparing',
  'available',
  'provisioning',
  'provisioned',
  'deprovisioning',
  'powering-off-before-delete',
  'deleting',
  'externally-provisioned',
  'unmanaged',
  'error',
] as const;
export type HostState = (typeof HOST_STATES)[number];

/** Which step an error state came from (status.errorType). */
export const ERROR_TYPES = [
  'registration',
  'inspection',
  'preparation',
  'provisioning',
  'deprovisioning',
  'power-management',
] as const;
export type ErrorType = (typeof ERROR_TYPES)[number];

/**
 * Set on a host by the force-delete route only (never by a spec or metadata write): the delete
 * goes ahead although a claim holds the host, and after one failed cleaning attempt.
 */
export const FORCE_DELETE_ANNOTATION = 'ingot.dev/force-delete';

export const BOOT_MODES = ['UEFI', 'UEFISecureBoot', 'legacy'] as const;
export const CLEANING_MODES = ['metadata', 'full', 'disabled'] as const;
export const CHECKSUM_TYPES = ['sha256', 'sha512', 'md5'] as const;
export const IMAGE_FORMATS = ['raw', 'qcow2'] as const;

export const BmcSpec = Type.Object(
  {
    address: Type.String({
      minLength: 1,
      maxLength: 2048,
      description: 'e.g. redfish-virtualmedia://10.0.0.7/redfish/v1/Systems/1, redfish://…, ipmi://…, fake://NAME',
    }),
    credentialsName: Name,
    caBundleName: Type.Optional(Name),
    disableCertificateVerification: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

export const ImageSpec = Type.Object(
  {
    url: Type.String({ minLength: 1, maxLength: 4096 }),
    checksum: Type.String({ pattern: '^[0-9a-fA-F]{32,128}$', description: 'hex digest of the image' }),
    checksumType: Type.Optional(Type.Enum(CHECKSUM_TYPES)),
    format: Type.Optional(Type.Enum(IMAGE_FORMATS)),
  },
  { additionalProperties: false },
);
export type ImageSpec = Static<typeof ImageSpec>;

export const RootDeviceHints = Type.Object(
  {
    deviceName: Type.Optional(Type.String({ maxLength: 256 })),
    serialNumber: Type.Optional(Type.String({ maxLength: 256 })),
    wwn: Type.Optional(Type.String({ maxLength: 256 })),
    minSizeGigabytes: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000 })),
    rotational: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

/** How a host is inspected (Metal3's inspect annotation, Ironic's inspect interface). */
export const INSPECTION_MODES = ['agent', 'bmc', 'disabled'] as const;
export type InspectionMode = (typeof INSPECTION_MODES)[number];

export const HostSpec = Type.Object(
  {
    bmc: Type.Optional(BmcSpec),
    bootMACAddress: Type.Optional(Type.String({ pattern: '^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$', description: 'six colon-separated hex octets' })),
    bootMode: Type.Optional(Type.Enum(BOOT_MODES)),
    online: Type.Optional(Type.Boolean({ description: 'desired power state; default false' })),
    rootDeviceHints: Type.Optional(RootDeviceHints),
    automatedCleaningMode: Type.Optional(Type.Enum(CLEANING_MODES)),
    image: Type.Optional(ImageSpec),
    userDataName: Type.Optional(Name),
    externallyProvisioned: Type.Optional(Type.Boolean({ description: 'the host already runs an OS Ingot did not write; do not inspect or provision' })),
    inspection: Type.Optional(
      Type.Enum(INSPECTION_MODES, { description: 'agent: boot the agent to inspect; bmc: read the inventory out-of-band over the BMC; disabled: skip inspection. Default: the server config' }),
    ),
  },
  { additionalProperties: false },
);
export type HostSpec = Static<typeof HostSpec>;

export interface OperationRecord {
  start?: string;
  end?: string;
}

export interface HostCondition {
  type: string;
  status: 'True' | 'False';
  reason: string;
  message: string;
  lastTransitionTime: string;
}

export interface HardwareDetails {
  systemVendor?: { manufacturer?: string; productName?: string; serialNumber?: string };
  cpu?: { arch?: string; model?: string; count?: number; cores?: number; threads?: number; speedMHz?: number };
  ramMebibytes?: number;
  storage?: Array<{ name: string; sizeBytes: number; rotational?: boolean; serialNumber?: string; wwn?: string; model?: string; type?: string }>;
  nics?: Array<{ name: string; mac: string; speedGbps?: number; linkUp?: boolean; ip?: string }>;
  firmware?: { bios?: { vendor?: string; version?: string; date?: string }; bmc?: { version?: string } };
  secureBootCapable?: boolean;
  /** GPUs found by inspection (one entry per device); node types may require a model and count. */
  gpus?: Array<{ model: string; vendor?: string }>;
}

export interface HostStatus {
  provisioning: {
    state: HostState;
    /** For transient states, the stable state they lead to (Ironic's `target`). */
    target?: HostState;
    image?: ImageSpec;
    bootMode?: string;
    /**
     * True when provisioning verified, after booting the new OS, that the running boot has UEFI
     * secure boot on (spec.bootMode UEFISecureBoot; Redfish SecureBootCurrentBoot). Absent when
     * secure boot was not asked for, or when the host was left powered off so no boot could be
     * checked. Cleared by deprovisioning, which resets secure boot to the disabled baseline.
     */
    secureBoot?: boolean;
  };
  poweredOn: boolean;
  errorType: ErrorType | '';
  errorMessage: string;
  /** Consecutive failures of the current step; drives backoff and resets on success. */
  errorCount: number;
  hardware?: HardwareDetails;
  /** Derived from `hardware` after inspection (model/capabilities.ts). */
  capabilities?: HostCapabilities;
  operationHistory: {
    register?: OperationRecord;
    inspect?: OperationRecord;
    provision?: OperationRecord;
    deprovision?: OperationRecord;
  };
  conditions: HostCondition[];
  /** Version of the credentials secret last verified good against the BMC. */
  goodCredentials?: { name: string; version: number };
  /** Set when the host awaits something outside its control (a concurrency cap, backoff). */
  waitingFor?: string;
  /** Progress of the current long step, 0-100, for CLI progress bars; `message` is the agent's current sub-step (e.g. "erasing the metadata of 3 partitions and containers on sda"). */
  progress?: { step: string; percent: number; message?: string };
  /** When the conductor should look again (backoff). */
  nextAttemptAt?: string;
  /** Step-internal bookkeeping that must survive a conductor restart (e.g. which sub-step is done). */
  stepState?: Record<string, unknown>;
}

export type Host = Resource<HostSpec, HostStatus> & { kind: 'Host' };

export const HostInput = Type.Object(
  {
    apiVersion: Type.Optional(Type.Literal(API_VERSION)),
    kind: Type.Optional(Type.Literal('Host')),
    metadata: InputMetadata,
    spec: HostSpec,
    status: Type.Optional(Type.Unknown({ description: 'ignored: status is owned by the conductor' })),
  },
  { additionalProperties: false },
);
export type HostInput = Static<typeof HostInput>;

export function initialHostStatus(spec: HostSpec): HostStatus {
  return {
    provisioning: { state: !spec.bmc ? 'unmanaged' : spec.externallyProvisioned ? 'externally-provisioned' : 'registering' },
    poweredOn: false,
    errorType: '',
    errorMessage: '',
    errorCount: 0,
    operationHistory: {},
    conditions: [],
  };
}
