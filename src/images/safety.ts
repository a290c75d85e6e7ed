// The decision "may these bytes be written to a disk?", taken from an inspection. Order of
// checks: refusals that hold whatever the operator configured first (QED), then the declared
// format (the most common honest mistake, and the CVE-2024-44082 attack: a qcow2 declared
// raw), then the permitted list, then the unsafe features the inspector found.
import { baseFormat, type DetectedFormat, type Inspection } from './format-inspector.js';
import { ImageRefused } from './image-refused.js';

export const DEFAULT_PERMITTED_FORMATS: readonly string[] = ['raw', 'qcow2'];

export interface SafetyOptions {
  /**
   * The format the OSImage/Host spec declares (`spec.image.format`). Undefined means "not
   * declared": the detected format is used, and must still be permitted.
   */
  declaredFormat: string | undefined;
  /** Formats that may be deployed; `raw` covers raw disks with GPT/MBR tables. */
  permittedFormats?: readonly string[];
  /**
   * Accept an inspection of a download's head whose tail (e.g. a partition beyond it) was not
   * seen. Off by default: the caller must then re-check the written bytes itself.
   */
  allowPartialInspection?: boolean;
}

/** qemu-img's names for the formats, used in messages and for `-f`. */
export function qemuFormatName(format: DetectedFormat): string {
  switch (format) {
    case 'gpt':
    case 'mbr':
    case 'iso':
      return 'raw';
    case 'vhd':
      return 'vpc';
    default:
      return format;
  }
}

/** Formats whose bytes are written to disk as they are (an ISO is a raw sector image). */
function declaredAs(format: DetectedFormat): string {
  return format === 'iso' ? 'raw' : baseFormat(format);
}

export interface SafeImage {
  format: DetectedFormat;
  /** The name to pass to `qemu-img -f` (never let qemu-img probe). */
  qemuFormat: string;
  /** True when the bytes go to disk as they are; false when they must be converted. */
  streamsAsRaw: boolean;
}

/**
 * Throws ImageRefused when the inspected image must not be deployed; returns the format to
 * hand to the writer (`raw` streams to disk, `qcow2` goes through qemu-img convert).
 */
export function checkImageSafety(inspection: Inspection, opts: SafetyOptions): SafeImage {
  const permitted = opts.permittedFormats ?? DEFAULT_PERMITTED_FORMATS;
  const detected = inspection.format;
  const effective = baseFormat(detected);

  const qed = inspection.findings.find((f) => f.reason === 'qed-refused');
  if (qed) throw new ImageRefused('qed-refused', qed.message);

  const declared = opts.declaredFormat;
  if (declared !== undefined && declared !== declaredAs(detected)) {
    throw new ImageRefused(
      'format-mismatch',
      `spec.image.format is "${declared}" but the image's bytes are ${describe(detected)}: fix spec.image.format to "${declaredAs(detected)}" if that is the image you meant to publish, otherwise check the image URL`,
    );
  }

  // gpt/mbr disks are raw; an ISO is raw to qemu-img too but must be permitted by name.
  if (!permitted.includes(detected === 'iso' ? 'iso' : effective)) {
    const hint =
      detected === 'iso'
        ? 'ISO images are not deployed to disks by default; add "iso" to the permitted image formats if you really mean to write one'
        : `convert it to ${permitted.join(' or ')} (e.g. \`qemu-img convert -f ${qemuFormatName(detected)} -O qcow2\`) or add "${detected}" to the permitted image formats`;
    throw new ImageRefused('format-not-permitted', `the image is ${describe(detected)}, which is not a permitted format (${permitted.join(', ')}): ${hint}`);
  }

  const partial = inspection.findings.filter((f) => f.reason === 'incomplete-inspection');
  const others = inspection.findings.filter((f) => f.reason !== 'incomplete-inspection');
  const first = others[0];
  if (first) {
    const more = others.length > 1 ? ` (and ${others.length - 1} more problem${others.length > 2 ? 's' : ''}: ${others.slice(1).map((f) => f.reason).join(', ')})` : '';
    throw new ImageRefused(first.reason, `${first.message}${more}`);
  }
  if (partial[0] && !opts.allowPartialInspection) throw new ImageRefused('incomplete-inspection', partial[0].message);

  return { format: detected, qemuFormat: qemuFormatName(detected), streamsAsRaw: qemuFormatName(detected) === 'raw' };
}

function describe(format: DetectedFormat): string {
  switch (format) {
    case 'gpt':
      return 'a raw disk with a GPT partition table';
    case 'mbr':
      return 'a raw disk with an MBR partition table';
    case 'raw':
      return 'raw (no known image header)';
    case 'iso':
      return 'an ISO 9660 image';
    case 'luks':
      return 'a LUKS encrypted container';
    default:
      return `${format}`;
  }
}
