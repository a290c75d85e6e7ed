// OSImage: an image admins publish for node types to install. Tenants never supply
// image URLs (DESIGN.md "Security, by design"): they pick a node type, and the node type names
// an OSImage. The checksum is required and must be strong (sha256 or sha512; md5 is refused
// here even where hosts may use it), so the OSImage is the one place an image reference can be
// trusted or tampered with, and only platform admins may write it.
import { Type, type Static } from 'typebox';
import { IMAGE_FORMATS } from './host.js';

export const STRONG_CHECKSUM_TYPES = ['sha256', 'sha512'] as const;
export type StrongChecksumType = (typeof STRONG_CHECKSUM_TYPES)[number];
export const CHECKSUM_HEX_LENGTH: Record<StrongChecksumType, number> = { sha256: 64, sha512: 128 };

export const OSImageSpec = Type.Object(
  {
    url: Type.String({ minLength: 1, maxLength: 4096, pattern: '^https?://', description: 'http:// or https:// (what the conductor and agents download); never shown to tenants' }),
    checksum: Type.String({ pattern: '^[0-9a-fA-F]{64}([0-9a-fA-F]{64})?$', description: 'hex digest: 64 digits for sha256, 128 for sha512' }),
    checksumType: Type.Enum(STRONG_CHECKSUM_TYPES, { description: 'sha256 or sha512 (md5 is never accepted for published images)' }),
    format: Type.Enum(IMAGE_FORMATS),
    secureBoot: Type.Optional(Type.Boolean({ description: 'the image is signed for UEFI secure boot; node types requiring secure boot need such an image' })),
    verifyOnCreate: Type.Optional(Type.Boolean({ description: 'download, verify and inspect the image when it is created or changed; status records the result' })),
  },
  { additionalProperties: false },
);
export type OSImageSpec = Static<typeof OSImageSpec>;

export type OSImageVerificationState = 'pending' | 'verifying' | 'verified' | 'failed';

export interface OSImageStatus {
  verification?: {
    state: OSImageVerificationState;
    /** Digest computed over the downloaded bytes (equals spec.checksum when verified). */
    digest?: string;
    sizeBytes?: number;
    /** What the format inspector found (raw, qcow2, …), which must equal spec.format. */
    detectedFormat?: string;
    verifiedAt?: string;
    message?: string;
    /** The spec the result is about (url + checksum), so an edited spec is verified again. */
    checksum?: string;
    url?: string;
  };
}
