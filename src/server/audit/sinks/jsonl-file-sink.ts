// Appends each audit event as one JSON line to a local file: a copy outside the database
// that log shippers can tail, and an anchor for `ingot audit verify` (the last line's seq and
// hash show whether the database's tail was cut off).
//
// fsync policy: lines queued while a write is in progress are written together in one
// write(2), then fdatasync(2) runs once for that batch ('batch', the default). So a batch is
// on disk before the next batch starts, and a power loss can lose at most the batch in
// flight; the database, which is committed before the event reaches any sink, still has
// them. 'none' leaves flushing to the kernel (faster; loses up to its writeback interval).
//
// The file is created 0600 (events name actors, addresses and resources) and tightened if an
// existing file is looser. reopen() closes the file so the next batch opens the path again,
// for log rotation (rename the file, then call reopen, e.g. on SIGHUP).
import { chmod, mkdir, open, type FileHandle } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { StoredAuditEvent } from '../../../model/audit-event.js';
import { waitUntil, type AuditSink, type AuditSinkStats } from './audit-sink.js';

export interface JsonlFileSinkOptions {
  path: string;
  /** 'batch' (default): fdatasync after each batch of lines; 'none': never. */
  fsync?: 'batch' | 'none';
  /** Lines waiting to be written; beyond it the oldest are dropped and counted. Default 10,000. */
  maxQueue?: number;
  log?: (message: string) => void;
}

export interface JsonlFileSink extends AuditSink {
  reopen(): void;
}

export function createJsonlFileSink(options: JsonlFileSinkOptions): JsonlFileSink {
  if (typeof options.path !== 'string' || options.path === '') throw new Error('the audit log file path is empty; give a file path');
  const path = resolve(options.path);
  const fsync = options.fsync ?? 'batch';
  const maxQueue = options.maxQueue ?? 10_000;
  const log = options.log ?? (() => {});
  const pending: string[] = [];
  const counts = { delivered: 0, dropped: 0, failed: 0 };
  let handle: FileHandle | undefined;
  let writing: Promise<void> | undefined;
  let batchSize = 0;
  let closed = false;
  let reopenRequested = false;

  async function openFile(): Promise<FileHandle> {
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    const file = await open(path, 'a', 0o600);
    const mode = (await file.stat()).mode & 0o777;
    if ((mode & 0o077) !== 0) {
      await chmod(path, 0o600);
      log(`tightened permissions of the audit log ${path} to 0600 (it was ${mode.toString(8)})`);
    }
    return file;
  }

  async function writeBatches(): Promise<void> {
    while (pending.length > 0) {
      const lines = pending.splice(0, pending.length);
      batchSize = lines.length;
      try {
        if (reopenRequested && handle !== undefined) {
          reopenRequested = false;
          await handle.close().catch(() => {});
          handle = undefined;
        }
        handle ??= await openFile();
        await handle.write(lines.join(''));
        if (fsync === 'batch') await handle.datasync();
        counts.delivered += lines.length;
      } catch (error) {
        counts.failed += lines.length;
        log(`audit log ${path}: could not write ${lines.length} event(s): ${(error as Error).message} (the database keeps them)`);
        await handle?.close().catch(() => {});
        handle = undefined;
      } finally {
        batchSize = 0;
      }
    }
  }

  const idle = () => pending.length === 0 && writing === undefined;

  return {
    name: `file ${path}`,
    sendEvent(event: StoredAuditEvent) {
      if (closed) {
        counts.dropped += 1;
        return;
      }
      if (pending.length >= maxQueue) {
        pending.shift();
        counts.dropped += 1;
        if (counts.dropped === 1 || counts.dropped % 100 === 0) log(`audit log ${path}: write queue full, dropped the oldest line; ${counts.dropped} dropped so far`);
      }
      pending.push(`${JSON.stringify(event)}\n`);
      writing ??= writeBatches().finally(() => {
        writing = undefined;
      });
    },
    reopen() {
      reopenRequested = true;
    },
    stats: (): AuditSinkStats => ({ queued: pending.length + batchSize, ...counts }),
    flush(timeoutMs = 30_000) {
      return waitUntil(idle, timeoutMs);
    },
    async close(timeoutMs = 5_000) {
      closed = true;
      if (!(await waitUntil(idle, timeoutMs))) log(`audit log ${path}: closing with ${pending.length + batchSize} line(s) unwritten`);
      await writing;
      await handle?.close().catch(() => {});
      handle = undefined;
    },
  };
}
