// The deploy command: choose the root disk, download the image (HTTPS verified against the
// boot CA; plain HTTP only when the platform does not demand HTTPS, since the digest guards
// integrity), compute the digest while streaming, detect the format from the bytes and apply
// the safety rules, then:
// - raw: stream straight onto the disk (the head is inspected before the first write, the
//   whole written region again after the digest matched);
// - qcow2: download to a scratch file (bounded by the disk's size), inspect it completely,
//   then `qemu-img convert` onto the disk under a memory limit after checking free memory.
// Any failure after bytes reached the disk erases them (DESIGN.md "Images"); a deploy that
// retries a failed one (eraseFirst) first erases what that one may have left, since an agent
// that died mid-write erased nothing. Finally the config drive goes into a new partition at
// the end of the disk.
import { randomBytes } from 'node:crypto';
import { open, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { bufferReader, openFileReader, type ByteReader } from '../images/byte-reader.js';
import { createDigester, parseChecksumSpec } from '../images/checksum.js';
import { inspectImage } from '../images/format-inspector.js';
import { openImageDownload } from '../images/image-download.js';
import { ImageRefused } from '../images/image-refused.js';
import { convertToRaw } from '../images/qemu-img.js';
import { checkImageSafety } from '../images/safety.js';
import { streamToTarget } from '../images/stream-verify.js';
import type { WireDeploy } from '../model/agent-protocol.js';
import { writeConfigDrive } from './config-drive.js';
import type { MachineAccess, OpenDisk } from './machine.js';
import { selectRootDisk } from './root-disk.js';

const HEAD_BYTES = 1024 * 1024;
const MIB = 1024 * 1024;

export interface DeployOptions {
  machine: MachineAccess;
  deploy: WireDeploy;
  caPem?: string;
  /**
   * The agent's own token, sent only to image URLs under `urlPrefix` (the agent API's
   * /agent/v1/images/ route of the conductor's caching proxy); never to any other server.
   */
  imageAuth?: { urlPrefix: string; token: string; commandId: string };
  onProgress?(percent: number, message: string): void;
  signal?: AbortSignal;
  minRootDiskBytes?: number;
  /** Passed to convertToRaw (qemu-img limits, free-memory check). */
  conversion?: { minFreeMemoryBytes?: number; memoryLimitBytes?: number; availableMemory?: () => Promise<number> };
}

export interface DeployResult {
  rootDevice: string;
  imageBytes: number;
  format: string;
}

async function zero(disk: OpenDisk, start: number, end: number): Promise<void> {
  const zeros = Buffer.alloc(4 * MIB);
  for (let at = start; at < end; at += zeros.length) await disk.write(zeros.subarray(0, Math.min(zeros.length, end - at)), at);
  await disk.sync();
}

function headCheck(declared: string | undefined, wantRaw: boolean) {
  return {
    bytes: HEAD_BYTES,
    async check(head: Buffer, complete: boolean) {
      const safe = checkImageSafety(await inspectImage(bufferReader(head, { complete })), { declaredFormat: declared, allowPartialInspection: true });
      if (wantRaw && !safe.streamsAsRaw) {
        throw new ImageRefused('format-mismatch', `the image is ${safe.format} but spec.image.format is not set: set spec.image.format to "${safe.format}" so it is converted`);
      }
    },
  };
}

export async function deployImage(opts: DeployOptions): Promise<DeployResult> {
  const { machine, deploy } = opts;
  const progress = opts.onProgress ?? (() => {});
  const root = selectRootDisk(await machine.disks(), deploy.rootDeviceHints, opts.minRootDiskBytes);
  let url: URL;
  try {
    url = new URL(deploy.image.url);
  } catch {
    throw new ImageRefused('malformed', 'spec.image.url is not a valid URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new ImageRefused('malformed', `spec.image.url must be http(s), not ${url.protocol}`);
  if (url.protocol === 'http:' && deploy.policy.requireHttps) {
    throw new ImageRefused('malformed', 'spec.image.url is plain HTTP but configuration demands HTTPS for images: publish the image over HTTPS');
  }
  const checksum = parseChecksumSpec(deploy.image.checksum, deploy.image.checksumType, { allowMd5: deploy.policy.allowMd5 });
  if (checksum.kind !== 'digest') throw new ImageRefused('checksum-url-not-allowed', 'the agent only accepts a hex digest as checksum');
  const digester = createDigester(checksum.type, { allowMd5: deploy.policy.allowMd5 });
  const declared = deploy.image.format;

  const disk = await machine.openDisk(root.name);
  let imageEnd = 0;
  try {
    if (deploy.eraseFirst) {
      // A failed earlier deploy may have left part of an image here (its agent may have died
      // mid-write and erased nothing): its partition tables go before anything else happens.
      progress(0, `erasing what an earlier, failed deploy may have left on ${root.name}`);
      await zero(disk, 0, Math.min(MIB, root.sizeBytes));
      await zero(disk, Math.max(0, root.sizeBytes - MIB), root.sizeBytes);
    }
    progress(1, `downloading ${url.host}${url.pathname} for ${root.name}`);
    const auth = opts.imageAuth && url.href.startsWith(opts.imageAuth.urlPrefix) ? { authorization: `Bearer ${opts.imageAuth.token}`, 'x-ingot-command-id': opts.imageAuth.commandId } : undefined;
    const response = await openImageDownload(url, {
      ...(auth ? { headers: auth } : {}),
      ...(opts.caPem && url.protocol === 'https:' ? { caPem: opts.caPem } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    const expectedSize = response.expectedSize;
    const report = (bytes: number, share: number) => {
      if (expectedSize) progress(Math.min(share, Math.floor((share * bytes) / expectedSize)), `downloaded ${Math.floor(bytes / MIB)} MiB`);
    };

    if (declared !== 'qcow2') {
      let last = -1;
      const result = await streamToTarget({
        source: response.body,
        target: disk,
        digester,
        expected: checksum.hex,
        maxBytes: root.sizeBytes,
        ...(expectedSize !== undefined ? { expectedSize } : {}),
        erase: (n) => zero(disk, 0, n),
        inspectHead: headCheck(declared, true),
        onProgress: (n) => {
          const p = expectedSize ? Math.floor((90 * n) / expectedSize) : 0;
          if (p !== last) {
            last = p;
            report(n, 90);
          }
        },
      });
      imageEnd = result.bytes;
      await disk.sync();
      // The head was checked before writing; now check the whole image (partitions past the head).
      const written: ByteReader = { size: result.bytes, complete: true, read: (o, l) => disk.read(o, Math.min(l, result.bytes - o)) };
      checkImageSafety(await inspectImage(written), { declaredFormat: declared });
    } else {
      const scratch = join(machine.scratchDir(), `ingot-image-${randomBytes(8).toString('hex')}.qcow2`);
      const file = await open(scratch, 'wx', 0o600);
      try {
        try {
          await streamToTarget({
            source: response.body,
            target: {
              write: async (chunk, offset) => {
                let done = 0;
                while (done < chunk.length) done += (await file.write(chunk, done, chunk.length - done, offset + done)).bytesWritten;
              },
            },
            digester,
            expected: checksum.hex,
            maxBytes: root.sizeBytes,
            ...(expectedSize !== undefined ? { expectedSize } : {}),
            erase: async () => file.truncate(0),
            inspectHead: headCheck(declared, false),
            onProgress: (n) => report(n, 50),
          });
        } finally {
          await file.close();
        }
        const reader = await openFileReader(scratch);
        let safe;
        try {
          safe = checkImageSafety(await inspectImage(reader), { declaredFormat: declared });
        } finally {
          await reader.close();
        }
        progress(50, `converting ${safe.format} onto ${root.name}`);
        try {
          const converted = await convertToRaw({
            source: scratch,
            target: root.path,
            sourceFormat: safe.qemuFormat,
            ...(opts.conversion?.minFreeMemoryBytes !== undefined ? { minFreeMemoryBytes: opts.conversion.minFreeMemoryBytes } : {}),
            ...(opts.conversion?.memoryLimitBytes !== undefined ? { memoryLimitBytes: opts.conversion.memoryLimitBytes } : {}),
            ...(opts.conversion?.availableMemory ? { availableMemory: opts.conversion.availableMemory } : {}),
            onProgress: (p) => progress(50 + Math.floor(p * 0.4), `converting (${Math.floor(p)}%)`),
          });
          imageEnd = converted.virtualSize;
        } catch (err) {
          // qemu-img may have written part of the image before failing.
          if (!(err instanceof ImageRefused && err.reason === 'insufficient-memory')) imageEnd = root.sizeBytes;
          throw err;
        }
      } finally {
        await unlink(scratch).catch(() => {});
      }
    }

    if (deploy.configDrive) {
      progress(92, 'writing the config drive');
      await writeConfigDrive(disk, deploy.configDrive);
    }
    await disk.sync();
    progress(100, `image written to ${root.name}`);
    return { rootDevice: `/dev/${root.name}`, imageBytes: imageEnd, format: declared ?? 'raw' };
  } catch (err) {
    if (imageEnd > 0) {
      // Written bytes that failed a later check (whole-image inspection, config drive): erase them,
      // and the last MiB too in case a config drive partition or a backup GPT got there.
      await zero(disk, 0, Math.min(imageEnd, root.sizeBytes));
      await zero(disk, Math.max(0, root.sizeBytes - MIB), root.sizeBytes);
    }
    throw err;
  } finally {
    await disk.close();
  }
}
