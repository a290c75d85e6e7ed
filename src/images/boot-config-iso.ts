// The agent's boot medium for the lab and virtual media: an ISO 9660 image with one file,
// `ingot/boot_config.json`, holding the BootConfig (src/model/agent-protocol.ts). The medium
// carries a live one-boot token, so it is only ever built on demand by the agent listener and
// served under an unguessable URL that dies with the agent session.
import { readSync } from 'node:fs';
import { Compile } from 'typebox/compile';
import { BootConfig } from '../model/agent-protocol.js';
import { buildIso9660, readIso9660, type IsoSource } from './iso9660.js';

export const BOOT_CONFIG_PATH = 'ingot/boot_config.json';
export const BOOT_MEDIUM_VOLUME_ID = 'INGOT_AGENT';
const MAX_BOOT_CONFIG_BYTES = 512 * 1024;
const checkBootConfig = Compile(BootConfig);

export function buildBootConfigIso(config: BootConfig, date?: Date): Buffer {
  return buildIso9660([{ path: BOOT_CONFIG_PATH, data: Buffer.from(JSON.stringify(config), 'utf8') }], { volumeId: BOOT_MEDIUM_VOLUME_ID, ...(date ? { date } : {}) });
}

/** Parses and validates a boot configuration (from the ISO or a plain JSON file). */
export function parseBootConfig(json: Buffer | string): BootConfig {
  const text = typeof json === 'string' ? json : json.toString('utf8');
  if (text.length > MAX_BOOT_CONFIG_BYTES) throw new RangeError(`the boot configuration is larger than ${MAX_BOOT_CONFIG_BYTES} bytes`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new RangeError('the boot configuration is not JSON');
  }
  if (!checkBootConfig.Check(parsed)) {
    const first = [...checkBootConfig.Errors(parsed)][0] as { instancePath?: string; message?: string } | undefined;
    throw new RangeError(`the boot configuration is not valid: ${first?.instancePath || '(root)'} ${first?.message ?? ''}`.trim());
  }
  return parsed;
}

/** The boot configuration on a medium (in memory, or read through isoSourceOfFd); throws a RangeError saying what is wrong. */
export function readBootConfigFromIso(image: Buffer | IsoSource): BootConfig {
  const file = readIso9660(image).readFile(BOOT_CONFIG_PATH);
  if (!file) throw new RangeError(`the boot medium has no ${BOOT_CONFIG_PATH}`);
  return parseBootConfig(file);
}

/**
 * Positional reads over an open file or block device, for readIso9660: only the descriptors,
 * directories and the configuration file are read, never the kernel and initramfs beside them.
 */
export function isoSourceOfFd(fd: number, size: number): IsoSource {
  return {
    size,
    read(offset, length) {
      const buf = Buffer.alloc(length);
      let done = 0;
      while (done < length) {
        const n = readSync(fd, buf, done, length - done, offset + done);
        if (n === 0) throw new RangeError(`not a readable ISO 9660 image: it ends at ${offset + done} bytes, inside a record`);
        done += n;
      }
      return buf;
    },
  };
}

/** The volume identifier of an ISO 9660 image behind `source`, or undefined when it is not one. */
export function isoVolumeId(source: IsoSource): string | undefined {
  try {
    return readIso9660(source).volumeId;
  } catch {
    return undefined;
  }
}

