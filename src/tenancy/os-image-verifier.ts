// Verifies published OS images before any host deploys them: an OSImage created or
// changed with spec.verifyOnCreate gets status.verification.state 'pending' from the API
// (src/server/routes/os-images.ts); this controller downloads it, computes the spec's digest
// while streaming, inspects the bytes with the same format inspector and safety rules the
// deploy path uses (src/images/: a qcow2 with a backing file, a VMDK naming other files, a
// format that differs from spec.format… are refused), and records 'verified' or 'failed'.
//
// - One verifier at a time per image, across server processes: the lease
//   `osimage-verify/<uid>` is taken before 'verifying' is written and renewed while the
//   download runs. A 'verifying' image whose lease expired (its process died) is taken over.
// - The result is written only when the spec still names the same url/checksum/format and the
//   status still asks for this verification: an admin who edits the image meanwhile gets a
//   new 'pending' verification, never the old image's verdict.
// - The downloaded bytes go to a temp file under workDir (the whole image must be inspected,
//   not only its head, and a file:// image may change while being read) and are deleted
//   afterwards; the conductor's image cache downloads again on first deploy (it keys files by
//   digest and keeps its own verification, so nothing unverified could be shared by mistake).
import { randomBytes } from 'node:crypto';
import { createReadStream, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { open, stat, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bufferReader, openFileReader } from '../images/byte-reader.js';
import { createDigester, type Digester } from '../images/checksum.js';
import { inspectImage, type DetectedFormat, type Inspection } from '../images/format-inspector.js';
import { openImageDownload } from '../images/image-download.js';
import { ImageRefused } from '../images/image-refused.js';
import { checkImageSafety } from '../images/safety.js';
import { streamToTarget } from '../images/stream-verify.js';
import type { OSImageSpec, OSImageStatus } from '../model/os-image.js';
import type { Store, StoredResource } from '../store/store.js';
import { byCreation, createReconcileLoop, isConflict, listAll, SILENT_CONTROLLER_LOG, type ControllerLog } from './reconcile-loop.js';

export const OS_IMAGE_KIND = 'OSImage';
/** Largest image verified by default (a temp copy lives in workDir while it is inspected). */
export const DEFAULT_MAX_VERIFY_BYTES = 32 * 1024 * 1024 * 1024;
export const DEFAULT_VERIFY_LEASE_MS = 60_000;
/** The inspector's head check runs on this much before anything is written (as in the deploy path). */
const HEAD_BYTES = 1024 * 1024;

export type Verification = NonNullable<OSImageStatus['verification']>;

export interface OsImageFetchOptions {
  /** PEM CA bundle trusted for https:// image URLs (default: Node's public roots), as images.caPem. */
  caPem?: string;
  /** Refuse plain http:// image URLs (images.requireHttps). */
  requireHttps?: boolean;
  /** Accept file:// URLs (regular files readable by the server). Default true. */
  allowFileUrls?: boolean;
}

export interface OsImageVerifierOptions {
  store: Store;
  /** Directory for temp copies of images being verified (created 0700; leftovers removed at start). */
  workDir: string;
  log?: ControllerLog;
  pollMs?: number;
  fetchOptions?: OsImageFetchOptions;
  /** Refuse images larger than this (default 32 GiB). */
  maxImageBytes?: number;
  /** Lease time-to-live; renewed every third of it while verifying (default 60 s). */
  leaseTtlMs?: number;
  /** Identifies this verifier in leases (default host/pid/random). */
  holder?: string;
  now?: () => number;
}

export interface OsImageVerifier {
  /** Starts polling for pending images. Idempotent. */
  start(): void;
  /** Stops polling, aborts verifications in progress (they are picked up again later), closes connections. */
  stop(): Promise<void>;
  /** One pass: verifies every pending (or orphaned verifying) image this verifier can lease. */
  verifyOnce(): Promise<void>;
}

/** What a download-and-inspect concluded; `failed` carries the message shown in status. */
export type VerifyOutcome =
  | { state: 'verified'; digest: string; sizeBytes: number; detectedFormat: string }
  | { state: 'failed'; message: string; digest?: string; sizeBytes?: number; detectedFormat?: string };

/** Verifying was interrupted (stop(), lost lease): write nothing, let a later pass retry. */
class Interrupted extends Error {}

export function createOsImageVerifier(opts: OsImageVerifierOptions): OsImageVerifier {
  const { store } = opts;
  const log = opts.log ?? SILENT_CONTROLLER_LOG;
  const now = opts.now ?? Date.now;
  const leaseTtlMs = opts.leaseTtlMs ?? DEFAULT_VERIFY_LEASE_MS;
  const maxBytes = opts.maxImageBytes ?? DEFAULT_MAX_VERIFY_BYTES;
  if (!Number.isSafeInteger(maxBytes) || maxBytes <= 0) throw new RangeError('maxImageBytes must be a positive integer');
  if (!Number.isFinite(leaseTtlMs) || leaseTtlMs < 1000) throw new RangeError('leaseTtlMs must be at least 1000 ms');
  const holder = opts.holder ?? `osimage-verifier/${hostname()}/${process.pid}/${randomBytes(4).toString('hex')}`;
  const fetchOptions = opts.fetchOptions ?? {};
  let closing = new AbortController();
  const inFlight = new Set<string>();

  mkdirSync(opts.workDir, { recursive: true, mode: 0o700 });
  // Temp files of a process that died mid-verification are garbage.
  for (const name of readdirSync(opts.workDir)) if (name.startsWith('.verify-')) rmSync(join(opts.workDir, name), { force: true });

  const wanted = (row: StoredResource): boolean => {
    const state = (row.status as OSImageStatus).verification?.state;
    return state === 'pending' || state === 'verifying';
  };

  const pass = async (): Promise<void> => {
    const rows = (await listAll(store, OS_IMAGE_KIND, '')).filter(wanted).sort(byCreation);
    for (const row of rows) {
      if (closing.signal.aborted) return;
      if (inFlight.has(row.uid)) continue;
      inFlight.add(row.uid);
      try {
        await verifyRow(row);
      } catch (error) {
        log.error('OS image verification failed unexpectedly', { image: row.name, error: String(error) });
      } finally {
        inFlight.delete(row.uid);
      }
    }
  };

  const verifyRow = async (listed: StoredResource): Promise<void> => {
    const leaseName = `osimage-verify/${listed.uid}`;
    // A 'verifying' row whose holder is alive keeps its lease: we skip it here.
    if (!(await store.acquireLease(leaseName, holder, 'verify OS image', leaseTtlMs, now()))) return;
    const abort = new AbortController();
    const onClose = () => abort.abort();
    closing.signal.addEventListener('abort', onClose);
    const renew = setInterval(() => {
      store.acquireLease(leaseName, holder, 'verify OS image', leaseTtlMs, now()).then(
        (held) => {
          if (!held) {
            log.warn('lost the OS image verification lease; stopping', { image: listed.name });
            abort.abort();
          }
        },
        (error) => log.warn('could not renew the OS image verification lease', { image: listed.name, error: String(error) }),
      );
    }, Math.max(250, Math.floor(leaseTtlMs / 3)));
    try {
      // Re-read under the lease: another verifier may have finished it since we listed it.
      const row = await store.getByUid(listed.uid);
      if (!row || row.kind !== OS_IMAGE_KIND || !wanted(row)) return;
      const spec = row.spec as unknown as OSImageSpec;
      const target = { url: spec.url, checksum: spec.checksum.toLowerCase() };
      let started: StoredResource;
      try {
        started = await store.replace({ ...row, status: { ...row.status, verification: { state: 'verifying', ...target } satisfies Verification } });
      } catch (error) {
        if (isConflict(error)) return; // changed meanwhile: the next pass looks again
        throw error;
      }
      log.info('verifying OS image', { image: row.name, url: redactUrl(spec.url) });
      let outcome: VerifyOutcome;
      try {
        outcome = await verifyImage(spec, { workDir: opts.workDir, maxBytes, fetchOptions, signal: abort.signal });
      } catch (error) {
        if (error instanceof Interrupted || abort.signal.aborted) {
          log.info('OS image verification interrupted; it will be retried', { image: row.name });
          return;
        }
        throw error;
      }
      if (abort.signal.aborted) return;
      const written = await writeResult(started, spec, target, outcome);
      if (written) {
        log[outcome.state === 'verified' ? 'info' : 'warn'](`OS image ${outcome.state}`, {
          image: row.name,
          ...(outcome.state === 'failed' ? { reason: outcome.message } : { digest: outcome.digest }),
        });
        await store
          .appendEvent({
            kind: OS_IMAGE_KIND,
            project: '',
            name: row.name,
            uid: row.uid,
            type: outcome.state === 'verified' ? 'Normal' : 'Warning',
            reason: outcome.state === 'verified' ? 'ImageVerified' : 'ImageVerificationFailed',
            message: outcome.state === 'verified' ? `${spec.checksumType} ${outcome.digest}, ${outcome.sizeBytes} bytes, ${outcome.detectedFormat}` : outcome.message,
          })
          .catch((error: unknown) => log.warn('could not record the OS image verification event', { image: row.name, error: String(error) }));
      }
    } finally {
      clearInterval(renew);
      closing.signal.removeEventListener('abort', onClose);
      await store.releaseLease(leaseName, holder).catch(() => {});
    }
  };

  /** Writes the verdict unless the spec or the requested verification changed; retries write conflicts. */
  const writeResult = async (started: StoredResource, spec: OSImageSpec, target: { url: string; checksum: string }, outcome: VerifyOutcome): Promise<boolean> => {
    let row: StoredResource | undefined = started;
    for (let attempt = 0; attempt < 5 && row; attempt++) {
      if (attempt > 0) row = await store.getByUid(started.uid);
      if (!row) return false;
      const current = row.spec as unknown as OSImageSpec;
      const asked = (row.status as OSImageStatus).verification;
      const sameSpec = current.url === spec.url && current.checksum.toLowerCase() === target.checksum && current.checksumType === spec.checksumType && current.format === spec.format;
      const stillAsked = asked !== undefined && (asked.state === 'verifying' || asked.state === 'pending') && asked.url === target.url && asked.checksum === target.checksum;
      if (!sameSpec || !stillAsked) {
        log.info('OS image changed during verification; its result is discarded', { image: row.name });
        return false;
      }
      const verification: Verification = {
        state: outcome.state,
        ...target,
        ...(outcome.digest !== undefined ? { digest: outcome.digest } : {}),
        ...(outcome.sizeBytes !== undefined ? { sizeBytes: outcome.sizeBytes } : {}),
        ...(outcome.detectedFormat !== undefined ? { detectedFormat: outcome.detectedFormat } : {}),
        ...(outcome.state === 'failed' ? { message: outcome.message } : {}),
        verifiedAt: new Date(now()).toISOString(),
      };
      try {
        await store.replace({ ...row, status: { ...row.status, verification } });
        return true;
      } catch (error) {
        if (!isConflict(error)) throw error;
      }
    }
    return false;
  };

  const loop = createReconcileLoop({ store, ...(opts.pollMs !== undefined ? { pollMs: opts.pollMs } : {}), log, name: 'OS image verifier', pass });

  return {
    start() {
      if (closing.signal.aborted) closing = new AbortController();
      loop.start();
    },
    async stop() {
      closing.abort();
      await loop.stop();
    },
    verifyOnce: () => loop.reconcileOnce(),
  };
}

interface VerifyImageOptions {
  workDir: string;
  maxBytes: number;
  fetchOptions: OsImageFetchOptions;
  signal?: AbortSignal;
}

/**
 * Downloads (or reads, for file://) the image into a temp file, digesting and checking its head
 * while streaming, then inspects the whole file. Never throws for a bad image: every refusal is
 * a `failed` outcome whose message names the OSImage field to fix. Throws Interrupted when
 * `signal` aborts.
 */
export async function verifyImage(spec: OSImageSpec, opts: VerifyImageOptions): Promise<VerifyOutcome> {
  let detectedFormat: DetectedFormat | undefined;
  let received = 0;
  let computed: string | undefined;
  const facts = () => ({
    ...(detectedFormat !== undefined ? { detectedFormat: declaredName(detectedFormat) } : {}),
    ...(computed !== undefined ? { digest: computed, sizeBytes: received } : {}),
  });
  const inspect = async (inspection: Inspection, partial: boolean): Promise<void> => {
    detectedFormat = inspection.format;
    checkImageSafety(inspection, { declaredFormat: spec.format, allowPartialInspection: partial });
  };

  const temp = join(opts.workDir, `.verify-${randomBytes(8).toString('hex')}`);
  try {
    const source = await openSource(spec.url, opts);
    if (source.expectedSize !== undefined && source.expectedSize > opts.maxBytes) {
      source.body.destroy();
      return { state: 'failed', message: `the image is ${source.expectedSize} bytes, more than the ${opts.maxBytes}-byte verification limit; publish a smaller image or raise the limit` };
    }
    // Records what streamToTarget computed, so a mismatch can say which digest the bytes have.
    const inner = createDigester(spec.checksumType);
    const digester: Digester = {
      type: inner.type,
      update: (chunk) => {
        received += chunk.length;
        inner.update(chunk);
      },
      digestHex: () => (computed = inner.digestHex()),
    };
    const file = await open(temp, 'wx', 0o600);
    try {
      await streamToTarget({
        source: source.body,
        target: {
          write: async (chunk, offset) => {
            if (opts.signal?.aborted) throw new Interrupted('verification stopped');
            let done = 0;
            while (done < chunk.length) done += (await file.write(chunk, done, chunk.length - done, offset + done)).bytesWritten;
          },
        },
        digester,
        expected: spec.checksum.toLowerCase(),
        maxBytes: opts.maxBytes,
        ...(source.expectedSize !== undefined ? { expectedSize: source.expectedSize } : {}),
        erase: async () => file.truncate(0),
        // Refuse a wrong or unsafe format before downloading gigabytes of it.
        inspectHead: { bytes: HEAD_BYTES, check: async (head, complete) => inspect(await inspectImage(bufferReader(head, { complete })), true) },
      });
    } finally {
      await file.close();
    }
    // The head passed; now the whole file (partitions past the head, the backup GPT).
    const reader = await openFileReader(temp);
    try {
      await inspect(await inspectImage(reader), false);
    } finally {
      await reader.close();
    }
    return { state: 'verified', digest: computed!, sizeBytes: received, detectedFormat: declaredName(detectedFormat!) };
  } catch (error) {
    if (error instanceof Interrupted || opts.signal?.aborted) throw error instanceof Interrupted ? error : new Interrupted('verification stopped', { cause: error });
    if (!(error instanceof ImageRefused)) throw error;
    return { state: 'failed', message: failureMessage(error, spec, computed, detectedFormat), ...facts() };
  } finally {
    await unlink(temp).catch(() => {});
  }
}

/** The image's bytes as a stream: an HTTP(S) response, or a local regular file for file://. */
async function openSource(url: string, opts: VerifyImageOptions): Promise<{ body: AsyncIterable<Uint8Array> & { destroy(): void }; expectedSize?: number }> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ImageRefused('malformed', 'spec.url is not a valid URL');
  }
  if (parsed.protocol === 'file:') {
    if (opts.fetchOptions.allowFileUrls === false) throw new ImageRefused('malformed', 'spec.url is a file:// URL, which this server does not accept: publish the image over HTTPS');
    let path: string;
    try {
      path = fileURLToPath(parsed);
    } catch (error) {
      throw new ImageRefused('malformed', `spec.url is not a usable file:// URL (${(error as Error).message})`);
    }
    const info = await stat(path).catch((error: NodeJS.ErrnoException) => {
      throw new ImageRefused('truncated', `could not read spec.url on this server: ${error.code ?? error.message}; check the path and that the server may read it`);
    });
    // A device or FIFO has no fixed size to verify (and /dev/zero never ends).
    if (!info.isFile()) throw new ImageRefused('malformed', 'spec.url must name a regular file, not a directory or device');
    return { body: createReadStream(path, { signal: opts.signal }), expectedSize: info.size };
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new ImageRefused('malformed', `spec.url must be http(s) or file, not ${parsed.protocol}`);
  if (parsed.protocol === 'http:' && opts.fetchOptions.requireHttps) {
    throw new ImageRefused('malformed', 'spec.url is plain HTTP but configuration demands HTTPS for images (images.requireHttps): publish the image over HTTPS');
  }
  const response = await openImageDownload(parsed, {
    ...(opts.fetchOptions.caPem && parsed.protocol === 'https:' ? { caPem: opts.fetchOptions.caPem } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  return { body: response.body, ...(response.expectedSize !== undefined ? { expectedSize: response.expectedSize } : {}) };
}

/** gpt/mbr disks are published as raw (the name spec.format uses). */
function declaredName(format: DetectedFormat): string {
  return format === 'gpt' || format === 'mbr' ? 'raw' : format;
}

/** The image library's messages name a Host's spec.image.*; an OSImage's fields are spec.*. */
function failureMessage(error: ImageRefused, spec: OSImageSpec, computed: string | undefined, detected: DetectedFormat | undefined): string {
  if (error.reason === 'checksum-mismatch' && computed !== undefined) {
    return `downloaded image has ${spec.checksumType} ${computed} but spec.checksum says ${spec.checksum.toLowerCase()}; fix spec.checksum or the image`;
  }
  if (error.reason === 'format-mismatch' && detected !== undefined) {
    return `spec.format is "${spec.format}" but the image's bytes are ${detected}; fix spec.format to "${declaredName(detected)}" if that is the image you meant to publish, otherwise fix the image at spec.url`;
  }
  const message = error.message.replace(/spec\.image\.(url|checksum|checksumType|format)/g, 'spec.$1').replace(/; retry the deploy$/, '; fix the image server, then verify again');
  return `${error.reason}: ${message}`;
}

/** URLs may carry tokens in their query: logs get scheme, host and path only. */
function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '(invalid URL)';
  }
}
