// The image safety library: what the on-host agent and the conductor's caching proxy use to
// decide whether bytes may reach a disk, and to get them there verified. Depends only on
// src/model and Node built-ins, because the agent ships alone onto hosts.
export { bufferReader, openFileReader, type ByteReader, type FileReader } from './byte-reader.js';
export {
  baseFormat,
  DETECTED_FORMATS,
  inspectImage,
  type DetectedFormat,
  type DiskDetails,
  type Finding,
  type Inspection,
  type IsoDetails,
  type LuksDetails,
  type PartitionInfo,
  type Qcow2Details,
  type VhdDetails,
  type VmdkDetails,
  type VmdkExtent,
} from './format-inspector.js';
export { ImageRefused, REFUSAL_REASONS, type RefusalReason } from './image-refused.js';
export { checkImageSafety, DEFAULT_PERMITTED_FORMATS, qemuFormatName, type SafeImage, type SafetyOptions } from './safety.js';
export {
  createDigester,
  digestFromChecksumFile,
  isChecksumUrl,
  MAX_CHECKSUM_FILE_BYTES,
  parseChecksumSpec,
  verifyDigest,
  type ChecksumPolicy,
  type ChecksumSpec,
  type ChecksumType,
  type Digester,
} from './checksum.js';
export {
  availableMemoryBytes,
  convertToRaw,
  DEFAULT_MIN_FREE_MEMORY,
  DEFAULT_QEMU_IMG_MEMORY_LIMIT,
  qemuImgInfo,
  type ConvertResult,
  type ConvertToRawOptions,
  type QemuImgInfo,
  type QemuImgLimits,
} from './qemu-img.js';
export { streamToTarget, type StreamResult, type StreamToTargetOptions, type WriteTarget } from './stream-verify.js';
export { cacheKey, cacheKeyOfHex, ImageCache, type CacheStatus, type CachedImageSpec, type ImageCacheOptions } from './image-cache.js';
export { describeNetworkError } from './network-error.js';
