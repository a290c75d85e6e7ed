// NodeType: what tenants ask for. A host selector (labels, hardware minimums,
// capabilities found by inspection) plus the OSImage to write and how to clean afterwards.
// Tenants name a node type; they never see or pick hosts, images or BMCs themselves.
import { Type, type Static } from 'typebox';
import { Labels, Name } from './envelope.js';
import { CLEANING_MODES } from './host.js';

export const GpuRequirement = Type.Object(
  {
    model: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'substring of the GPU model, case-insensitive (e.g. "A100")' })),
    count: Type.Optional(Type.Integer({ minimum: 1, maximum: 64, description: 'at least this many GPUs (of that model when one is given); default 1' })),
  },
  { additionalProperties: false },
);
export type GpuRequirement = Static<typeof GpuRequirement>;

export const NodeCapabilities = Type.Object(
  {
    secureBoot: Type.Optional(Type.Boolean({ description: 'true: only hosts whose firmware supports UEFI secure boot' })),
    gpu: Type.Optional(GpuRequirement),
    minNicSpeedGbps: Type.Optional(Type.Number({ minimum: 0, maximum: 100_000, description: 'at least one NIC at this speed or faster' })),
  },
  { additionalProperties: false },
);
export type NodeCapabilities = Static<typeof NodeCapabilities>;

export const HostSelector = Type.Object(
  {
    matchLabels: Type.Optional(Labels),
    minCpus: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000, description: 'hardware threads (falls back to cores, then CPU count)' })),
    minMemoryMebibytes: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000_000 })),
    minDiskGigabytes: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000_000, description: 'largest single disk, in GB (10^9 bytes), as rootDeviceHints.minSizeGigabytes' })),
    capabilities: Type.Optional(NodeCapabilities),
  },
  { additionalProperties: false },
);
export type HostSelector = Static<typeof HostSelector>;

export const NodeTypeSpec = Type.Object(
  {
    selector: HostSelector,
    osImageName: Name,
    automatedCleaningMode: Type.Optional(Type.Enum(CLEANING_MODES, { description: 'default metadata' })),
  },
  { additionalProperties: false },
);
export type NodeTypeSpec = Static<typeof NodeTypeSpec>;

/** The label a bound host carries: the uid of the claim it serves. Such a host never matches. */
export const CLAIM_LABEL = 'ingot.dev/claim';
