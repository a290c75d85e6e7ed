// The agent protocol's wire shapes (DESIGN.md "The agent protocol"), shared by the agent API
// (src/server/agent-server.ts) and the on-host agent (src/agent/), which may depend on nothing
// but src/model and src/images. Every shape is bounded: the agent API is an input from hosts
// that may be hostile (a tenant had root on the machine until it was cleaned).
import { Type, type Static } from 'typebox';

/** One-boot agent tokens: `ingotagent_` + 32 random bytes in base64url. */
export const AGENT_TOKEN_PREFIX = 'ingotagent_';
export const AGENT_TOKEN_PATTERN = /^ingotagent_[A-Za-z0-9_-]{43}$/;

const Id = Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9._:-]+$' });
const Mac = Type.String({ pattern: '^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$' });
const Short = (max = 256) => Type.String({ maxLength: max });

/** What the boot medium carries (one JSON file on an ISO 9660 image, see boot-config-iso.ts). */
export const BootConfig = Type.Object(
  {
    apiUrl: Type.String({ minLength: 1, maxLength: 2048, pattern: '^https?://' }),
    /** PEM CA bundle the agent trusts for the agent API and HTTPS image downloads; absent: system CAs. */
    caPem: Type.Optional(Type.String({ maxLength: 256 * 1024 })),
    token: Type.String({ pattern: AGENT_TOKEN_PATTERN.source }),
    hostUid: Id,
    bootId: Id,
    /** The host's spec.bootMACAddress when it has one: the NIC the agent asks DHCP on first. */
    bootMacAddress: Type.Optional(Mac),
  },
  { additionalProperties: false },
);
export type BootConfig = Static<typeof BootConfig>;

const Disk = Type.Object({
  name: Short(),
  sizeBytes: Type.Integer({ minimum: 0 }),
  rotational: Type.Optional(Type.Boolean()),
  serialNumber: Type.Optional(Short()),
  wwn: Type.Optional(Short()),
  model: Type.Optional(Short()),
  type: Type.Optional(Short(32)),
});
const Nic = Type.Object({ name: Short(64), mac: Mac, speedGbps: Type.Optional(Type.Number({ minimum: 0 })), linkUp: Type.Optional(Type.Boolean()), ip: Type.Optional(Short(64)) });

/** HardwareDetails (src/model/host.ts) as an agent may report it, bounded. */
export const InventoryReport = Type.Object({
  systemVendor: Type.Optional(Type.Object({ manufacturer: Type.Optional(Short()), productName: Type.Optional(Short()), serialNumber: Type.Optional(Short()) })),
  cpu: Type.Optional(
    Type.Object({
      arch: Type.Optional(Short(32)),
      model: Type.Optional(Short()),
      count: Type.Optional(Type.Integer({ minimum: 0, maximum: 65536 })),
      cores: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000 })),
      threads: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000 })),
      speedMHz: Type.Optional(Type.Number({ minimum: 0 })),
    }),
  ),
  ramMebibytes: Type.Optional(Type.Integer({ minimum: 0 })),
  storage: Type.Optional(Type.Array(Disk, { maxItems: 256 })),
  nics: Type.Optional(Type.Array(Nic, { maxItems: 256 })),
  firmware: Type.Optional(
    Type.Object({
      bios: Type.Optional(Type.Object({ vendor: Type.Optional(Short()), version: Type.Optional(Short()), date: Type.Optional(Short(64)) })),
      bmc: Type.Optional(Type.Object({ version: Type.Optional(Short()) })),
    }),
  ),
  secureBootCapable: Type.Optional(Type.Boolean()),
});
export type InventoryReport = Static<typeof InventoryReport>;

export const LookupRequest = Type.Object(
  {
    /** From the boot configuration; must be the token's host. */
    hostUid: Id,
    bootId: Id,
    /** The MAC addresses the agent sees; one must be the host's spec.bootMACAddress when it has one. */
    macs: Type.Array(Mac, { maxItems: 256 }),
    inventory: Type.Optional(InventoryReport),
    agentVersion: Type.Optional(Short(64)),
  },
  { additionalProperties: false },
);
export type LookupRequest = Static<typeof LookupRequest>;

export const LookupResponse = Type.Object({
  hostUid: Type.String(),
  hostName: Type.String(),
  heartbeatIntervalMs: Type.Integer(),
  commandWaitSeconds: Type.Integer(),
});
export type LookupResponse = Static<typeof LookupResponse>;

export const HeartbeatRequest = Type.Object({ bootId: Id, busyCommandId: Type.Optional(Id) }, { additionalProperties: false });
export type HeartbeatRequest = Static<typeof HeartbeatRequest>;

/** Root device hints as the agent applies them (src/agent/root-disk.ts). */
export const WireRootDeviceHints = Type.Object({
  deviceName: Type.Optional(Short()),
  serialNumber: Type.Optional(Short()),
  wwn: Type.Optional(Short()),
  minSizeGigabytes: Type.Optional(Type.Integer({ minimum: 0 })),
  rotational: Type.Optional(Type.Boolean()),
});
export type WireRootDeviceHints = Static<typeof WireRootDeviceHints>;

export interface WireDeploy {
  image: { url: string; checksum: string; checksumType?: 'sha256' | 'sha512' | 'md5'; format?: 'raw' | 'qcow2' };
  configDrive?: { metaData: Record<string, unknown>; userData?: string; networkData?: Record<string, unknown> };
  rootDeviceHints?: WireRootDeviceHints;
  /** Zero the root disk's first and last MiB before writing (a retry after a failed deploy). */
  eraseFirst?: boolean;
  /** What the platform's policy allows; the agent refuses anything else. */
  policy: { allowMd5: boolean; requireHttps: boolean };
}

export type WireCommand =
  | { id: string; hostUid: string; operationId: string; kind: 'inspect' }
  | { id: string; hostUid: string; operationId: string; kind: 'deploy'; deploy: WireDeploy }
  | { id: string; hostUid: string; operationId: string; kind: 'clean'; clean: { mode: 'metadata' | 'full'; rootDeviceHints?: WireRootDeviceHints } };

export interface CommandsResponse {
  command: WireCommand | null;
}

export const ResultRequest = Type.Object(
  {
    commandId: Id,
    state: Type.Enum(['running', 'done', 'failed']),
    percent: Type.Optional(Type.Number({ minimum: 0, maximum: 100 })),
    message: Type.Optional(Type.String({ maxLength: 4096 })),
    inventory: Type.Optional(InventoryReport),
    rootDevice: Type.Optional(Short()),
  },
  { additionalProperties: false },
);
export type ResultRequest = Static<typeof ResultRequest>;

/** Additional authenticated data binding sealed user data to its command row (SecretBox aad). */
export const commandSealAad = (commandId: string): string => `agent-command/${commandId}`;
/** Additional authenticated data binding a sealed one-boot token to its session row. */
export const sessionSealAad = (sessionId: string): string => `agent-session/${sessionId}`;
