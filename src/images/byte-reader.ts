// Random-access view of image bytes for the format inspector. The same interface serves a
// file on disk (the conductor's cache, the agent's scratch file) and the buffered head of a
// download that is still streaming, so inspection never needs the whole image in memory.
import { open, type FileHandle } from 'node:fs/promises';

export interface ByteReader {
  /** Number of bytes that can be read (offsets 0 … size-1). */
  readonly size: number;
  /**
   * False when `size` is only a prefix of the image (a download's head): regions past it
   * could not be inspected, and the inspector reports that instead of assuming they are
   * harmless. Absent means true.
   */
  readonly complete?: boolean;
  /** Reads up to `length` bytes at `offset`; returns fewer only at the end of the bytes. */
  read(offset: number, length: number): Promise<Buffer>;
}

export function bufferReader(bytes: Buffer, opts: { complete?: boolean } = {}): ByteReader {
  return {
    size: bytes.length,
    complete: opts.complete ?? true,
    async read(offset, length) {
      return bytes.subarray(offset, Math.min(bytes.length, offset + length));
    },
  };
}

export interface FileReader extends ByteReader {
  close(): Promise<void>;
}

/** Opens `path` read-only; call close() when done. */
export async function openFileReader(path: string): Promise<FileReader> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    return {
      size,
      complete: true,
      read: (offset, length) => readFileRange(handle, size, offset, length),
      close: () => handle.close(),
    };
  } catch (err) {
    await handle.close();
    throw err;
  }
}

/**
 * Reads up to `length` bytes at `offset` from an open file of `size` bytes, looping over short
 * reads (pread may return less than asked); stops early only at end of file.
 */
export async function readFileRange(handle: FileHandle, size: number, offset: number, length: number): Promise<Buffer> {
  const want = Math.max(0, Math.min(length, size - offset));
  const buf = Buffer.alloc(want);
  let done = 0;
  while (done < want) {
    const { bytesRead } = await handle.read(buf, done, want - done, offset + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return buf.subarray(0, done);
}

/**
 * Reads within bounds only; returns fewer bytes (possibly none) near the end. For parsers of
 * untrusted bytes: an offset read from the image can never make them read outside it.
 */
export async function readAt(reader: ByteReader, offset: number, length: number): Promise<Buffer> {
  if (!Number.isSafeInteger(offset) || offset < 0 || offset >= reader.size || length <= 0) return Buffer.alloc(0);
  const len = Math.min(length, reader.size - offset);
  const buf = await reader.read(offset, len);
  // A reader returning more than asked must not widen what we look at.
  return buf.length > len ? buf.subarray(0, len) : buf;
}

/** Unsigned 64-bit values as numbers, or undefined when they exceed 2^53 (nothing real does). */
export function u64be(buf: Buffer, at: number): number | undefined {
  if (buf.length < at + 8) return undefined;
  const v = buf.readBigUInt64BE(at);
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : undefined;
}

export function u64le(buf: Buffer, at: number): number | undefined {
  if (buf.length < at + 8) return undefined;
  const v = buf.readBigUInt64LE(at);
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : undefined;
}
