// An OpenDisk over a file or block device opened with node:fs (used by both machines).
import { open } from 'node:fs/promises';
import { readFileRange } from '../images/byte-reader.js';
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
    read: (offset, length) => readFileRange(handle, size, offset, length),
    sync: () => handle.sync(),
    close: () => handle.close(),
  };
}
