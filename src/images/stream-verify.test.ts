// Real downloads from a real HTTP server on 127.0.0.1, written to a real file.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, rm, type FileHandle } from 'node:fs/promises';
import { get, createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bufferReader } from './byte-reader.js';
import { createDigester } from './checksum.js';
import { inspectImage } from './format-inspector.js';
import { ImageRefused } from './image-refused.js';
import { checkImageSafety } from './safety.js';
import { streamToTarget, type WriteTarget } from './stream-verify.js';

const SIZE = 3 * 1024 * 1024 + 17;
const imageA = randomBytes(SIZE);
const imageB = randomBytes(SIZE);
const digestA = createHash('sha256').update(imageA).digest('hex');
const qcowHead = Buffer.concat([Buffer.from('QFI\xfb\0\0\0\x03', 'latin1'), Buffer.alloc(200_000)]);
qcowHead.writeUInt32BE(16, 20);
qcowHead.writeUInt32BE(112, 100);

let server: Server;
let base: string;
let dir: string;

function sendSlowly(res: import('node:http').ServerResponse, body: Buffer, then: () => void): void {
  // Chunks of 64 KiB so the client sees many reads, like a real download.
  let at = 0;
  const next = () => {
    while (at < body.length) {
      const chunk = body.subarray(at, at + 64 * 1024);
      at += chunk.length;
      if (!res.write(chunk)) return void res.once('drain', next);
    }
    then();
  };
  next();
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ingot-stream-'));
  server = createServer((req, res) => {
    const half = Math.floor(SIZE / 2);
    switch (req.url) {
      case '/image':
        res.writeHead(200, { 'content-length': SIZE });
        return sendSlowly(res, imageA, () => res.end());
      case '/switch':
        // The origin swaps the file mid-download: first half of A, second half of B.
        res.writeHead(200, { 'content-length': SIZE });
        return sendSlowly(res, Buffer.concat([imageA.subarray(0, half), imageB.subarray(half)]), () => res.end());
      case '/truncated':
        res.writeHead(200, { 'content-length': SIZE });
        return sendSlowly(res, imageA.subarray(0, half), () => res.socket?.destroy());
      case '/qcow2':
        res.writeHead(200, { 'content-length': qcowHead.length });
        return sendSlowly(res, qcowHead, () => res.end());
      default:
        res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  if (dir) await rm(dir, { recursive: true, force: true });
});

function download(path: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => get(`${base}${path}`, resolve).on('error', reject));
}

/** A file standing in for the host's disk; erase() zeroes what was written, as the agent would. */
interface DiskTarget extends WriteTarget {
  erased: number[];
  handle: FileHandle;
  path: string;
}

let n = 0;
async function diskTarget(failAt?: number): Promise<DiskTarget> {
  const path = join(dir, `disk-${n++}`);
  const handle = await open(path, 'w+');
  const target: DiskTarget = {
    erased: [],
    handle,
    path,
    async write(chunk, offset) {
      if (failAt !== undefined && offset + chunk.length > failAt) throw Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
      await handle.write(chunk, 0, chunk.length, offset);
    },
  };
  return target;
}

async function erase(target: DiskTarget, bytes: number): Promise<void> {
  target.erased.push(bytes);
  await target.handle.write(Buffer.alloc(bytes), 0, bytes, 0);
}

async function contents(target: DiskTarget): Promise<Buffer> {
  await target.handle.close();
  return readFile(target.path);
}

async function attempt(path: string, opts: { maxBytes?: number; target?: DiskTarget; inspect?: boolean } = {}) {
  const target = opts.target ?? (await diskTarget());
  const res = await download(path);
  const length = Number(res.headers['content-length']);
  const progress: number[] = [];
  try {
    const result = await streamToTarget({
      source: res,
      target,
      digester: createDigester('sha256'),
      expected: digestA,
      maxBytes: opts.maxBytes ?? 16 * 1024 * 1024,
      expectedSize: length,
      erase: (bytes) => erase(target, bytes),
      onProgress: (b) => progress.push(b),
      ...(opts.inspect
        ? {
            inspectHead: {
              bytes: 64 * 1024,
              async check(head: Buffer, complete: boolean) {
                checkImageSafety(await inspectImage(bufferReader(head, { complete })), { declaredFormat: 'raw', allowPartialInspection: true });
              },
            },
          }
        : {}),
    });
    return { result, target, progress, error: undefined };
  } catch (error) {
    return { result: undefined, target, progress, error: error as Error };
  }
}

describe('streamToTarget over real HTTP', () => {
  it('writes a good image and returns its digest', async () => {
    const { result, target, progress, error } = await attempt('/image', { inspect: true });
    expect(error).toBeUndefined();
    expect(result).toEqual({ bytes: SIZE, digest: digestA });
    expect(target.erased).toEqual([]);
    expect((await contents(target)).equals(imageA)).toBe(true);
    expect(progress.at(-1)).toBe(SIZE);
    expect(progress.length).toBeGreaterThan(1);
  });

  it('erases what it wrote when the file changes mid-download', async () => {
    const { error, target } = await attempt('/switch');
    expect(error).toBeInstanceOf(ImageRefused);
    expect(error).toMatchObject({ reason: 'checksum-mismatch', message: expect.stringContaining('does not match spec.image.checksum') });
    expect(target.erased).toEqual([SIZE]);
    expect((await contents(target)).every((b) => b === 0)).toBe(true);
  });

  it('erases what it wrote when the download is cut short', async () => {
    const { error, target } = await attempt('/truncated');
    expect(error).toMatchObject({ reason: 'truncated' });
    expect(target.erased).toHaveLength(1);
    expect(target.erased[0]).toBeGreaterThan(0);
    expect(target.erased[0]).toBeLessThan(SIZE);
    expect((await contents(target)).every((b) => b === 0)).toBe(true);
  });

  it('stops and erases once the image exceeds maxBytes', async () => {
    const { error, target } = await attempt('/image', { maxBytes: 1024 * 1024 });
    expect(error).toMatchObject({ reason: 'too-large', message: expect.stringContaining('1048576-byte limit') });
    expect(target.erased).toHaveLength(1);
    expect(target.erased[0]).toBeLessThanOrEqual(1024 * 1024);
    expect((await contents(target)).every((b) => b === 0)).toBe(true);
  });

  it('refuses a refused head before writing a single byte', async () => {
    const { error, target, progress } = await attempt('/qcow2', { inspect: true });
    expect(error).toMatchObject({ reason: 'format-mismatch' });
    expect(progress).toEqual([]);
    expect(target.erased).toEqual([]);
    expect((await contents(target)).length).toBe(0);
  });

  it('passes a disk write error through unchanged, after erasing', async () => {
    const target = await diskTarget(1024 * 1024);
    const { error } = await attempt('/image', { target });
    expect(error).not.toBeInstanceOf(ImageRefused);
    expect(error).toMatchObject({ code: 'EIO' });
    expect(target.erased).toHaveLength(1);
    await target.handle.close();
  });

  it('inspects the whole stream as complete when it is shorter than the head', async () => {
    const seen: boolean[] = [];
    const small = Buffer.from('tiny raw image');
    const result = await streamToTarget({
      source: (async function* () {
        yield small;
      })(),
      target: { write: async () => undefined },
      digester: createDigester('sha512'),
      expected: createHash('sha512').update(small).digest('hex'),
      maxBytes: 100,
      erase: async () => undefined,
      inspectHead: { bytes: 64 * 1024, check: async (_head, complete) => void seen.push(complete) },
    });
    expect(seen).toEqual([true]);
    expect(result.bytes).toBe(small.length);
  });
});
