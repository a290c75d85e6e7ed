// The one error for "this image will not be written": a stable reason code for machines
// (events, metrics, the agent's failure report) and a message for people that says what is
// wrong and what to do. It is an IngotError (422) so an API surfacing it needs no mapping.
import { IngotError } from '../model/errors.js';

export const REFUSAL_REASONS = [
  /** The bytes say one format, the OSImage/Host spec declares another. */
  'format-mismatch',
  /** The detected format is not in the permitted list (raw and qcow2 by default). */
  'format-not-permitted',
  /** QED is refused outright: qemu deprecated it and it adds nothing over qcow2. */
  'qed-refused',
  /** qcow2 backing file, VHD differencing parent, VMDK parent: reads another file. */
  'backing-file',
  /** qcow2 external data file: the guest data lives in another file qemu-img would open. */
  'external-data-file',
  /** qcow2 AES/LUKS encryption or a LUKS container: we cannot inspect or convert it. */
  'encrypted',
  /** Incompatible feature bits we do not know, or the qcow2 corrupt bit. */
  'unsupported-feature',
  /** VMDK createType other than monolithicSparse / streamOptimized. */
  'vmdk-create-type',
  /** VMDK extents that name other files (or more than the one embedded extent). */
  'vmdk-extents',
  /** A partition of a raw disk starts with another image format's header. */
  'hidden-format',
  /** Headers that contradict themselves or point outside the image. */
  'malformed',
  /** Part of the image that matters could not be read (inspected a download's head only). */
  'incomplete-inspection',
  /** Checksum problems. */
  'checksum-mismatch',
  'checksum-type-not-allowed',
  'checksum-url-not-allowed',
  /** The download was larger than allowed, or shorter than announced. */
  'too-large',
  'truncated',
  /** Conversion was not started because the machine has too little free memory. */
  'insufficient-memory',
  /** qemu-img failed or the conversion target is unusable. */
  'conversion-failed',
] as const;

export type RefusalReason = (typeof REFUSAL_REASONS)[number];

export class ImageRefused extends IngotError {
  readonly reason: RefusalReason;

  constructor(reason: RefusalReason, message: string, opts: { cause?: unknown } = {}) {
    super('INGOT_ERR_UNPROCESSABLE', message, opts);
    this.name = 'ImageRefused';
    this.reason = reason;
  }

  override toJSON(): ReturnType<IngotError['toJSON']> & { reason: RefusalReason } {
    return { ...super.toJSON(), reason: this.reason };
  }
}
