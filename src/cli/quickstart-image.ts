// The quickstart's image: a small but real whole-disk image built on this machine with no
// download (a GPT with an EFI system partition and a root partition carrying a marker), turned
// into qcow2 with qemu-img when it is installed (raw otherwise: the agent streams raw images
// without qemu-img), and served by a tiny HTTP server on loopback for the lab's agents.
// The image is kept in the data dir and reused, so a second run offers the same digest.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { EFI_SYSTEM_GUID, writeGpt } from '../images/gpt-writer.js';

const MIB = 1024 * 1024;
const SECTOR = 512;
/** Small enough to build and deploy in a blink, big enough to hold a real partition layout. */
export const QUICKSTART_IMAGE_BYTES = 8 * MIB;
/** What the root partition starts with; tests look for it on the lab disks. */
export const QUICKSTART_IMAGE_MARKER = 'Ingot quickstart image: this partition was written by the Ingot agent\n';

export interface QuickstartImage {
  path: string;
  fileName: string;
  format: 'qcow2' | 'raw';
  sha256: string;
  sizeBytes: number;
  /** Set when qemu-img was not usable and the image is raw for that reason. */
  note?: string;
}

/** The raw disk: protective MBR + GPT, a 1 MiB EFI partition and a root partition with the marker. */
export function buildRawDisk(): Buffer {
  const disk = Buffer.alloc(QUICKSTART_IMAGE_BYTES);
  const bootFirst = MIB / SECTOR; // 1 MiB alignment, as partitioning tools do
  const rootFirst = (2 * MIB) / SECTOR;
  const rootLast = (QUICKSTART_IMAGE_BYTES - MIB) / SECTOR - 1;
  writeGpt(disk, [
    { firstLba: bootFirst, lastLba: rootFirst - 1, name: 'EFI', typeGuid: EFI_SYSTEM_GUID },
    { firstLba: rootFirst, lastLba: rootLast, name: 'root' },
  ]);
  disk.write(QUICKSTART_IMAGE_MARKER, rootFirst * SECTOR, 'utf8');
  return disk;
}

function qemuImg(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('qemu-img', args, { timeout: 60_000 }, (err, _stdout, stderr) => (err ? reject(new Error(stderr.trim() || err.message, { cause: err })) : resolve()));
  });
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Builds (or finds from an earlier run) the image in `dir`. */
export async function ensureQuickstartImage(dir: string): Promise<QuickstartImage> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const qcow2 = join(dir, 'quickstart-disk.qcow2');
  const raw = join(dir, 'quickstart-disk.raw');
  const describe = async (path: string, format: 'qcow2' | 'raw', note?: string): Promise<QuickstartImage> => ({
    path,
    fileName: format === 'qcow2' ? 'quickstart-disk.qcow2' : 'quickstart-disk.raw',
    format,
    sha256: await sha256File(path),
    sizeBytes: (await stat(path)).size,
    ...(note ? { note } : {}),
  });
  if (existsSync(qcow2)) return describe(qcow2, 'qcow2');
  const rawTmp = `${raw}.tmp`;
  await writeFile(rawTmp, buildRawDisk(), { mode: 0o600 });
  try {
    await qemuImg(['convert', '-f', 'raw', '-O', 'qcow2', rawTmp, `${qcow2}.tmp`]);
    await rename(`${qcow2}.tmp`, qcow2);
    await rm(rawTmp, { force: true });
    await rm(raw, { force: true });
    return describe(qcow2, 'qcow2');
  } catch (err) {
    await rm(`${qcow2}.tmp`, { force: true });
    const missing = (err as { cause?: NodeJS.ErrnoException }).cause?.code === 'ENOENT';
    // An earlier raw image keeps its digest; otherwise take the one just written.
    if (!existsSync(raw)) await rename(rawTmp, raw);
    else await rm(rawTmp, { force: true });
    const why = missing ? 'qemu-img is not installed' : `qemu-img failed (${(err as Error).message.split('\n')[0]})`;
    return describe(raw, 'raw', `${why}, so the image is raw; install qemu-utils to see a qcow2 image converted on the host`);
  }
}

export interface ImageServer {
  /** http://127.0.0.1:PORT */
  baseUrl: string;
  close(): Promise<void>;
}

/** Serves exactly the given files (by name) over HTTP on 127.0.0.1, on a free port. */
export async function serveImages(files: Array<{ fileName: string; path: string }>): Promise<ImageServer> {
  const byPath = new Map(files.map((f) => [`/${f.fileName}`, f.path]));
  const server = createServer((req, res) => {
    const path = byPath.get(req.url ?? '');
    if (!path || (req.method !== 'GET' && req.method !== 'HEAD')) return void res.writeHead(404).end();
    void stat(path).then(
      (s) => {
        res.writeHead(200, { 'content-length': s.size, 'content-type': 'application/octet-stream' });
        if (req.method === 'HEAD') return void res.end();
        createReadStream(path).on('error', () => res.destroy()).pipe(res);
      },
      () => void res.writeHead(404).end(),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as { port: number };
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
