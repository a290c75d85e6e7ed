// Streams an image onto its target (a disk, a cache file) while computing its digest, so the
// bytes are read once. The digest is only known at the end, so a mismatch, an oversize or a
// truncated download means bytes already reached the target: they are erased before the
// error is thrown (DESIGN "Images": a digest mismatch fails the deploy and erases what was
// written), so a host never boots a half-written or tampered image.
import { verifyDigest, type Digester } from './checksum.js';
import { ImageRefused } from './image-refused.js';

export interface WriteTarget {
  /** Writes `chunk` at byte `offset` of the target; offsets arrive in order without gaps. */
  write(chunk: Buffer, offset: number): Promise<void>;
}

export interface StreamToTargetOptions {
  /** The image bytes (a Node Readable, an HTTP response body, any async iterable). */
  source: AsyncIterable<Uint8Array>;
  target: WriteTarget;
  digester: Digester;
  /** Expected hex digest of the whole stream. */
  expected: string;
  /** Refuse (and erase) once more than this many bytes arrive. */
  maxBytes: number;
  /** Bytes the sender announced (Content-Length); fewer means the download was cut short. */
  expectedSize?: number;
  /** Undoes what was written: called with the number of bytes written, before the error is thrown. */
  erase(bytesWritten: number): Promise<void>;
  /**
   * Holds back the first `bytes` bytes (or the whole stream, if shorter) and passes them to
   * `check` before anything is written: the place to run the format inspector, so a refused
   * image never touches the target. `check` throws to refuse.
   */
  inspectHead?: { bytes: number; check(head: Buffer, complete: boolean): Promise<void> };
  onProgress?(bytesWritten: number): void;
}

export interface StreamResult {
  bytes: number;
  digest: string;
}

export async function streamToTarget(opts: StreamToTargetOptions): Promise<StreamResult> {
  if (!Number.isSafeInteger(opts.maxBytes) || opts.maxBytes < 0) throw new RangeError('maxBytes must be a non-negative integer');
  let received = 0;
  let written = 0;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let headChecked = opts.inspectHead === undefined;

  const write = async (chunk: Buffer) => {
    await opts.target.write(chunk, written);
    written += chunk.length;
    opts.onProgress?.(written);
  };
  const flushHead = async (complete: boolean) => {
    const head = Buffer.concat(pending, pendingBytes);
    pending = [];
    pendingBytes = 0;
    await opts.inspectHead!.check(head, complete);
    headChecked = true;
    if (head.length > 0) await write(head);
  };

  try {
    const iterator = opts.source[Symbol.asyncIterator]();
    for (;;) {
      let step: IteratorResult<Uint8Array>;
      try {
        step = await iterator.next();
      } catch (err) {
        // The source failed (connection reset, aborted response): the image is incomplete.
        throw new ImageRefused('truncated', `the image download failed after ${received} bytes (${err instanceof Error ? err.message : String(err)}); retry the deploy`, {
          cause: err,
        });
      }
      if (step.done) break;
      const piece = step.value;
      const chunk = Buffer.isBuffer(piece) ? piece : Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
      received += chunk.length;
      if (received > opts.maxBytes) {
        throw new ImageRefused('too-large', `the image is larger than the ${opts.maxBytes}-byte limit; publish a smaller image or raise the limit`);
      }
      if (opts.expectedSize !== undefined && received > opts.expectedSize) {
        throw new ImageRefused('too-large', `the server sent more than the ${opts.expectedSize} bytes it announced; the download is not trustworthy`);
      }
      opts.digester.update(chunk);
      if (!headChecked) {
        pending.push(chunk);
        pendingBytes += chunk.length;
        if (pendingBytes >= opts.inspectHead!.bytes) await flushHead(false);
        continue;
      }
      await write(chunk);
    }
    if (!headChecked) await flushHead(true);
    if (opts.expectedSize !== undefined && received < opts.expectedSize) {
      throw new ImageRefused('truncated', `the image download ended after ${received} of the ${opts.expectedSize} announced bytes; retry the deploy`);
    }
    const digest = opts.digester.digestHex();
    if (!verifyDigest(opts.expected, digest)) {
      throw new ImageRefused(
        'checksum-mismatch',
        `the image's ${opts.digester.type} digest does not match spec.image.checksum: the image at the URL changed or was tampered with; publish the image's current checksum or restore the image`,
      );
    }
    return { bytes: written, digest };
  } catch (err) {
    destroySource(opts.source);
    if (written > 0) {
      try {
        await opts.erase(written);
      } catch (eraseErr) {
        const base = err instanceof Error ? err.message : String(err);
        throw new ImageRefused(
          err instanceof ImageRefused ? err.reason : 'truncated',
          `${base}; erasing the ${written} bytes already written also failed (${(eraseErr as Error).message}): do not boot this target before cleaning it`,
          { cause: err },
        );
      }
    }
    throw err;
  }
}

/** Stops the download so the connection is not left pulling bytes nobody reads. */
function destroySource(source: AsyncIterable<Uint8Array>): void {
  const maybe = source as { destroy?: () => void; destroyed?: boolean };
  if (typeof maybe.destroy === 'function' && !maybe.destroyed) maybe.destroy();
}
