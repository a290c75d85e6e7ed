// An OpenDisk over a file or block device opened with node:fs (used by both machines).
import { open } from 'node:fs/promises';
import type { OpenDisk } from './machine.js';

export async function openFileDisk(path: string, size: number): Promise<OpenDisk> {
  const handle = await open(path, 'r+');
  return {
    size,
    async write(buf, offset) {
      if (offset < 0 || offset + buf.length > size) throw new RangeError(`write of ${buf.length} bytes at ${offset} is outside the ${size}-byte disk`);
      let done = 0;
      while (done < buf.length) done += (await handle.write(buf, done, buf.length - done, offset + done)).bytesWritten;
    },
    async read(offset, length) {
      const want = Math.max(0, Math.min(length, size - offset));
      const buf = Buffer.alloc(want);
      let done = 0;
      while (done < want) {
        const { bytesRead } = await handle.read(buf, done, want - done, offset + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      return buf.subarray(0, done);
    },
    sync: () => handle.sync(),
    close: () => handle.close(),
  };
}
