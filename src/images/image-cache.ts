// The conductor's caching proxy for images (`images.downloadSource: local`, DESIGN.md
// "Images"): the conductor downloads each image once, verifies its digest while streaming,
// inspects the whole file and applies the safety rules, and only then keeps it under
// DIR/<algo>-<hex>. Agents fetch it from the agent listener, so hosts need no route to the
// image store and no host ever sees bytes that were not checked here (the agent checks again).
//
// - A file appears under its final name only by rename(2) of a verified temp file, so a reader
//   of the directory (the agent listener, possibly another process) never sees partial bytes.
// - Concurrent ensure() calls for one digest share one download.
// - A failed download or verification deletes the temp file and remembers why for a while, so
//   every host waiting for that image fails with the same reason instead of re-downloading.
// - Total size is bounded: least recently used files (by mtime, touched on every use) go first.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { open, readdir, rename, stat, unlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { bufferReader, openFileReader } from './byte-reader.js';
import { createDigester, parseChecksumSpec, type ChecksumType } from './checksum.js';
import { inspectImage } from './format-inspector.js';
import { openImageDownload } from './image-download.js';
import { ImageRefused, type RefusalReason } from './image-refused.js';
import { checkImageSafety } from './safety.js';
import { streamToTarget } from './stream-verify.js';

export interface CachedImageSpec {
  url: string;
  checksum: string;
  checksumType?: ChecksumType;
  format?: 'raw' | 'qcow2';
}

export type CacheStatus =
  | { state: 'ready'; key: string; path: string; bytes: number }
  | { state: 'downloading'; key: string; bytesReceived: number; expectedBytes?: number }
  | { state: 'failed'; key: string; reason: RefusalReason; message: string };

export interface ImageCacheOptions {
  /** Where verified images live (created 0700). */
  dir: string;
  /** Evict least recently used images once the total passes this. */
  maxTotalBytes: number;
  /** Largest single image accepted (default maxTotalBytes). */
  maxImageBytes?: number;
  /** PEM CA bundle trusted for https:// image URLs (default: Node's public roots). */
  caPem?: string;
  /** Refuse http:// image URLs. */
  requireHttps?: boolean;
  allowMd5?: boolean;
  /** How long a failure is answered from memory before a new download is tried (default 60 s). */
  failureTtlMs?: number;
  now?: () => number;
  /** Told about downloads, failures and evictions (no secrets in these). */
  onEvent?(event: { kind: 'downloaded' | 'failed' | 'evicted'; key: string; url?: string; message?: string }): void;
}

const HEAD_BYTES = 1024 * 1024;
const KEY_RE = /^(sha256-[0-9a-f]{64}|sha512-[0-9a-f]{128}|md5-[0-9a-f]{32})$/;

/** `<algo>-<hex>`, the file name of a cached image. */
export function cacheKey(type: ChecksumType, hex: string): string {
  return `${type}-${hex.toLowerCase()}`;
}

/** The cache key for a bare hex digest as it appears in an agent image URL (64 → sha256, 128 → sha512). */
export function cacheKeyOfHex(hex: string): string | undefined {
  const h = hex.toLowerCase();
  if (!/^[0-9a-f]+$/.test(h)) return undefined;
  return h.length === 64 ? `sha256-${h}` : h.length === 128 ? `sha512-${h}` : undefined;
}

interface Download {
  promise: Promise<void>;
  bytesReceived: number;
  expectedBytes?: number;
}

export class ImageCache {
  readonly dir: string;
  private readonly downloads = new Map<string, Download>();
  private readonly failures = new Map<string, { url: string; at: number; reason: RefusalReason; message: string }>();
  private readonly now: () => number;
  private evicting: Promise<void> = Promise.resolve();
  private readonly closing = new AbortController();

  constructor(private readonly opts: ImageCacheOptions) {
    if (!Number.isSafeInteger(opts.maxTotalBytes) || opts.maxTotalBytes <= 0) throw new RangeError('maxTotalBytes must be a positive integer');
    this.dir = opts.dir;
    this.now = opts.now ?? Date.now;
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    // Temp files of a process that died mid-download are garbage.
    for (const name of readdirSync(this.dir)) if (name.startsWith('.tmp-')) rmSync(join(this.dir, name), { force: true });
  }

  /** Path of a verified image by key, or undefined. Never a temp file. */
  pathOf(key: string): string | undefined {
    return KEY_RE.test(key) ? join(this.dir, key) : undefined;
  }

  /**
   * Starts (or joins) the download of `image` and answers at once: ready, downloading, or
   * failed with the refusal reason. Meant to be polled. Throws ImageRefused for a spec the cache
   * can never serve (bad URL, plain HTTP when HTTPS is required, checksum policy).
   */
  async ensure(image: CachedImageSpec): Promise<CacheStatus> {
    const { key, type, hex, url } = this.validate(image);
    const existing = await this.statReady(key);
    if (existing !== undefined) {
      await this.touch(key);
      return { state: 'ready', key, path: join(this.dir, key), bytes: existing };
    }
    const running = this.downloads.get(key);
    if (running) return { state: 'downloading', key, bytesReceived: running.bytesReceived, ...(running.expectedBytes !== undefined ? { expectedBytes: running.expectedBytes } : {}) };
    const failure = this.failures.get(key);
    if (failure && failure.url === url.href && this.now() - failure.at < (this.opts.failureTtlMs ?? 60_000)) {
      return { state: 'failed', key, reason: failure.reason, message: failure.message };
    }
    this.failures.delete(key);
    const download: Download = { bytesReceived: 0, promise: Promise.resolve() };
    download.promise = this.download(key, type, hex, url, image.format, download)
      .then(() => this.opts.onEvent?.({ kind: 'downloaded', key, url: url.href }))
      .catch((err: unknown) => {
        const reason: RefusalReason = err instanceof ImageRefused ? err.reason : 'truncated';
        const message = err instanceof Error ? err.message : String(err);
        this.failures.set(key, { url: url.href, at: this.now(), reason, message });
        this.opts.onEvent?.({ kind: 'failed', key, url: url.href, message });
      })
      .finally(() => this.downloads.delete(key));
    this.downloads.set(key, download);
    return { state: 'downloading', key, bytesReceived: 0 };
  }

  /** ensure() until the image is ready or failed (tests and one-shot tools; the conductor polls). */
  async fetch(image: CachedImageSpec): Promise<CacheStatus> {
    for (;;) {
      const status = await this.ensure(image);
      if (status.state !== 'downloading') return status;
      await this.downloads.get(status.key)?.promise;
    }
  }

  /** Records a use (LRU order) of a cached image; called when an agent fetches it. */
  async touch(key: string): Promise<void> {
    const path = this.pathOf(key);
    if (!path) return;
    const t = new Date(this.now());
    await utimes(path, t, t).catch(() => {});
  }

  /** Aborts downloads in progress (their temp files are removed). */
  async close(): Promise<void> {
    this.closing.abort();
    await Promise.allSettled([...this.downloads.values()].map((d) => d.promise));
  }

  private validate(image: CachedImageSpec): { key: string; type: ChecksumType; hex: string; url: URL } {
    let url: URL;
    try {
      url = new URL(image.url);
    } catch {
      throw new ImageRefused('malformed', 'spec.image.url is not a valid URL');
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new ImageRefused('malformed', `spec.image.url must be http(s), not ${url.protocol}`);
    if (url.protocol === 'http:' && this.opts.requireHttps) {
      throw new ImageRefused('malformed', 'spec.image.url is plain HTTP but configuration demands HTTPS for images (images.requireHttps): publish the image over HTTPS');
    }
    const checksum = parseChecksumSpec(image.checksum, image.checksumType, { allowMd5: this.opts.allowMd5 ?? false });
    if (checksum.kind !== 'digest') throw new ImageRefused('checksum-url-not-allowed', 'the image cache only accepts a hex digest as spec.image.checksum');
    if (checksum.type === 'md5') {
      throw new ImageRefused('checksum-type-not-allowed', 'the image cache (images.downloadSource: local) keys images by sha256 or sha512: publish a sha256 or sha512 checksum');
    }
    return { key: cacheKey(checksum.type, checksum.hex), type: checksum.type, hex: checksum.hex, url };
  }

  private async statReady(key: string): Promise<number | undefined> {
    try {
      const s = await stat(join(this.dir, key));
      return s.isFile() ? s.size : undefined;
    } catch {
      return undefined;
    }
  }

  private async download(key: string, type: ChecksumType, hex: string, url: URL, declared: string | undefined, progress: Download): Promise<void> {
    const maxBytes = Math.min(this.opts.maxImageBytes ?? this.opts.maxTotalBytes, this.opts.maxTotalBytes);
    const temp = join(this.dir, `.tmp-${randomBytes(8).toString('hex')}`);
    const response = await openImageDownload(url, {
      ...(this.opts.caPem && url.protocol === 'https:' ? { caPem: this.opts.caPem } : {}),
      signal: this.closing.signal,
    });
    const expectedSize = response.expectedSize;
    if (expectedSize !== undefined) {
      progress.expectedBytes = expectedSize;
      if (expectedSize > maxBytes) {
        response.body.destroy();
        throw new ImageRefused('too-large', `the image is ${expectedSize} bytes, more than the cache's ${maxBytes}-byte limit (images.cacheMaxBytes); raise the limit or publish a smaller image`);
      }
    }
    const file = await open(temp, 'wx', 0o600);
    let ok = false;
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
          digester: createDigester(type, { allowMd5: this.opts.allowMd5 ?? false }),
          expected: hex,
          maxBytes,
          ...(expectedSize !== undefined ? { expectedSize } : {}),
          erase: async () => file.truncate(0),
          inspectHead: {
            bytes: HEAD_BYTES,
            check: async (head, complete) => {
              checkImageSafety(await inspectImage(bufferReader(head, { complete })), { declaredFormat: declared, allowPartialInspection: true });
            },
          },
          onProgress: (n) => {
            progress.bytesReceived = n;
          },
        });
        await file.sync();
      } finally {
        await file.close();
      }
      // The head was checked before the first write; now the whole file (partitions past the head, backup GPT).
      const reader = await openFileReader(temp);
      try {
        checkImageSafety(await inspectImage(reader), { declaredFormat: declared });
      } finally {
        await reader.close();
      }
      await rename(temp, join(this.dir, key));
      ok = true;
    } finally {
      if (!ok) await unlink(temp).catch(() => {});
    }
    await this.touch(key);
    await this.evict(key);
  }

  /** Removes least recently used images until the total fits; never the one just added. */
  private evict(keep: string): Promise<void> {
    this.evicting = this.evicting.then(async () => {
      const entries: Array<{ key: string; size: number; mtime: number }> = [];
      for (const name of await readdir(this.dir)) {
        if (!KEY_RE.test(name)) continue;
        const s = await stat(join(this.dir, name)).catch(() => undefined);
        if (s?.isFile()) entries.push({ key: name, size: s.size, mtime: s.mtimeMs });
      }
      let total = entries.reduce((sum, e) => sum + e.size, 0);
      entries.sort((a, b) => a.mtime - b.mtime);
      for (const e of entries) {
        if (total <= this.opts.maxTotalBytes) break;
        if (e.key === keep) continue;
        await unlink(join(this.dir, e.key)).catch(() => {});
        total -= e.size;
        this.opts.onEvent?.({ kind: 'evicted', key: e.key });
      }
    });
    return this.evicting;
  }
}
