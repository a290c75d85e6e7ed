// The image pipeline's throughput: how fast the agent's deploy path (src/agent/deploy.ts, the
// code every agent runs) gets an image onto a disk, next to the tools an operator would compare
// it with on the same machine and the same file.
//
// Setup: a raw whole-disk image of --size-mib MiB (default 2048: a GPT with one partition full of
// pseudo-random bytes, so neither compression nor sparseness flatters anything), served over
// HTTPS on 127.0.0.1 by node:https with a certificate from a throwaway CA (src/lab/lab-ca.ts,
// openssl); the agent trusts that CA as it trusts the boot CA. The agent's disk is a sparse file
// of the image size + 64 MiB behind the lab's file machine (src/agent/file-machine.ts).
//
// Measured, each once, in this order, page cache warm for every reader (the image was just
// written; the figures compare CPU-bound pipelines, not the storage):
//   1. `sha256sum IMAGE`                                           (reference: hashing alone)
//   1b. HTTPS download + sha256 with undici, bytes dropped (what the network part costs)
//   2. agent deploy, raw: HTTPS download + sha256 + format checks + write + fsync
//   3. `qemu-img convert -f raw -O qcow2` (not compared: makes the qcow2 input)
//   4. agent deploy, qcow2: HTTPS download to scratch + sha256 + full inspection + qemu-img
//      convert onto the disk + fsync
//   5. `qemu-img convert -f qcow2 -O raw QCOW2 OUT`, then fsync OUT (reference: conversion alone)
// After each deploy the disk's first SIZE bytes are hashed and compared with the image (not timed).
//
// Run: npm run build && node dist/bench/image-pipeline.js [--size-mib N]
// Needs openssl, sha256sum and qemu-img; uses about 4 x SIZE of temp space, removed at the end.
import { execFile } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, open, rm, stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { Agent, request } from 'undici';
import { join } from 'node:path';
import { deployImage } from '../src/agent/deploy.js';
import { createFileMachine } from '../src/agent/file-machine.js';
import { gptStructures } from '../src/images/gpt-writer.js';
import { ensureLabCa } from '../src/lab/lab-ca.js';

const MIB = 1024 * 1024;
const SECTOR = 512;

function sizeArg(): number {
  const i = process.argv.indexOf('--size-mib');
  if (i < 0) return 2048;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v < 8 || v > 64 * 1024) throw new Error(`--size-mib must be a whole number from 8 to 65536, got ${process.argv[i + 1]}`);
  return v;
}

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { maxBuffer: 16 * MIB }, (err, stdout, stderr) => (err ? reject(new Error(`${cmd} ${args.join(' ')}: ${stderr.trim() || err.message}`)) : resolve(stdout)));
  });
}

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = process.hrtime.bigint();
  const value = await fn();
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, value };
}

async function sha256Of(path: string, length?: number): Promise<string> {
  const hash = createHash('sha256');
  const stream = createReadStream(path, { highWaterMark: 4 * MIB, ...(length !== undefined ? { start: 0, end: length - 1 } : {}) });
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** A GPT disk of `bytes` with one partition of pseudo-random bytes, written in 8 MiB pieces. */
async function writeImage(path: string, bytes: number): Promise<void> {
  const lastLba = bytes / SECTOR - 1;
  const { head, tail } = gptStructures(bytes, [{ firstLba: 2048, lastLba: lastLba - 34, name: 'root' }]);
  const file = await open(path, 'w', 0o600);
  try {
    const chunk = Buffer.alloc(8 * MIB);
    for (let at = 0; at < bytes; at += chunk.length) {
      const piece = chunk.subarray(0, Math.min(chunk.length, bytes - at));
      randomFillSync(piece);
      if (at === 0) {
        piece.fill(0, 0, 2048 * SECTOR);
        head.copy(piece, 0);
      }
      await file.write(piece, 0, piece.length, at);
    }
    await file.write(tail, 0, tail.length, bytes - tail.length);
    await file.sync();
  } finally {
    await file.close();
  }
}

/** node:https serving the given files with their content-length, from 1 MiB reads. */
async function serve(files: Record<string, string>, tls: { cert: string; key: string }): Promise<{ server: Server; base: string }> {
  const server = createServer({ cert: tls.cert, key: tls.key }, (req, res) => {
    const path = files[req.url ?? ''];
    if (!path) return void res.writeHead(404).end();
    void stat(path).then((s) => {
      res.writeHead(200, { 'content-length': s.size, 'content-type': 'application/octet-stream' });
      createReadStream(path, { highWaterMark: MIB }).pipe(res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, base: `https://127.0.0.1:${(server.address() as { port: number }).port}` };
}

async function freshDisk(path: string, bytes: number): Promise<void> {
  await rm(path, { force: true });
  const f = await open(path, 'w', 0o600);
  await f.truncate(bytes);
  await f.close();
}

async function main(): Promise<void> {
  const sizeMiB = sizeArg();
  const bytes = sizeMiB * MIB;
  const mbps = (ms: number) => bytes / MIB / (ms / 1000);
  const dir = await mkdtemp(join(tmpdir(), 'ingot-bench-image-'));
  let server: Server | undefined;
  try {
    const qemuVersion = (await run('qemu-img', ['--version'])).split('\n')[0];
    const rawPath = join(dir, 'image.raw');
    const qcowPath = join(dir, 'image.qcow2');
    const diskPath = join(dir, 'disk-0.img');
    const scratch = join(dir, 'scratch');
    await mkdir(scratch);
    process.stdout.write(`image pipeline benchmark: ${sizeMiB} MiB image, ${qemuVersion}, node ${process.version}, temp ${dir}\n`);

    process.stdout.write('writing the raw image…\n');
    await writeImage(rawPath, bytes);
    const ca = await ensureLabCa(join(dir, 'pki'));
    const { server: s, base } = await serve({ '/image.raw': rawPath, '/image.qcow2': qcowPath }, { cert: ca.certPem, key: ca.keyPem });
    server = s;
    const machine = createFileMachine({ hardware: {}, disks: [{ name: 'vda', file: diskPath }], scratchDir: scratch });
    const diskBytes = bytes + 64 * MIB;

    // 1. sha256sum alone.
    const sum = await timed(() => run('sha256sum', [rawPath]));
    const rawSha = sum.value.split(/\s+/)[0]!;

    // 1b. The HTTPS download with sha256 alone (undici, as the agent fetches), bytes dropped.
    const fetchOnly = await timed(async () => {
      const dispatcher = new Agent({ connect: { ca: ca.caPem } });
      try {
        const res = await request(`${base}/image.raw`, { dispatcher });
        const hash = createHash('sha256');
        for await (const chunk of res.body) hash.update(chunk as Buffer);
        return hash.digest('hex');
      } finally {
        await dispatcher.close();
      }
    });
    if (fetchOnly.value !== rawSha) throw new Error('the HTTPS download does not hash to the image digest');

    // 2. The agent's raw path.
    await freshDisk(diskPath, diskBytes);
    const rawDeploy = await timed(() =>
      deployImage({ machine, caPem: ca.caPem, minRootDiskBytes: 0, deploy: { image: { url: `${base}/image.raw`, checksum: rawSha, checksumType: 'sha256', format: 'raw' }, policy: { allowMd5: false, requireHttps: true } } }),
    );
    if ((await sha256Of(diskPath, bytes)) !== rawSha) throw new Error('after the raw deploy the disk does not hold the image');

    // 3. The qcow2 form (not compared).
    const makeQcow = await timed(() => run('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', rawPath, qcowPath]));
    const qcowSize = (await stat(qcowPath)).size;
    const qcowSha = await sha256Of(qcowPath);

    // 4. The agent's qcow2 path.
    await freshDisk(diskPath, diskBytes);
    // The deploy reports "converting" once the download is verified and the scratch file inspected.
    let convertingAt: bigint | undefined;
    const qcowStart = process.hrtime.bigint();
    const qcowDeploy = await timed(() =>
      deployImage({
        machine,
        onProgress: (_p, message) => {
          if (convertingAt === undefined && message.startsWith('converting')) convertingAt = process.hrtime.bigint();
        },
        caPem: ca.caPem,
        minRootDiskBytes: 0,
        conversion: { minFreeMemoryBytes: 0 },
        deploy: { image: { url: `${base}/image.qcow2`, checksum: qcowSha, checksumType: 'sha256', format: 'qcow2' }, policy: { allowMd5: false, requireHttps: true } },
      }),
    );
    const downloadMs = convertingAt === undefined ? NaN : Number(convertingAt - qcowStart) / 1e6;
    if ((await sha256Of(diskPath, bytes)) !== rawSha) throw new Error('after the qcow2 deploy the disk does not hold the image');
    await rm(diskPath, { force: true });

    // 5. qemu-img convert alone.
    const outRaw = join(dir, 'converted.raw');
    // qemu-img convert does not flush by default (cache mode unsafe): fsync as the agent's deploy does.
    const convert = await timed(async () => {
      await run('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', qcowPath, outRaw]);
      const f = await open(outRaw, 'r+');
      await f.sync();
      await f.close();
    });
    await rm(outRaw, { force: true });

    const rows: Array<[string, number, string]> = [
      ['sha256sum (hash only)', sum.ms, ''],
      ['HTTPS download + sha256 (no write)', fetchOnly.ms, `${(fetchOnly.ms / sum.ms).toFixed(2)} x sha256sum`],
      ['agent deploy raw over HTTPS', rawDeploy.ms, `${(rawDeploy.ms / sum.ms).toFixed(2)} x sha256sum`],
      [`qemu-img convert raw -> qcow2 (${(qcowSize / MIB).toFixed(0)} MiB)`, makeQcow.ms, 'input preparation'],
      ['agent deploy qcow2 over HTTPS', qcowDeploy.ms, `${(qcowDeploy.ms / convert.ms).toFixed(2)} x qemu-img convert (download + verify + inspect ${(downloadMs / 1000).toFixed(2)} s, convert + fsync ${((qcowDeploy.ms - downloadMs) / 1000).toFixed(2)} s)`],
      ['qemu-img convert qcow2 -> raw + fsync', convert.ms, ''],
    ];
    const w = Math.max(...rows.map((r) => r[0].length));
    process.stdout.write(`\n${'step'.padEnd(w)}  ${'seconds'.padStart(8)}  ${'MiB/s'.padStart(8)}  ratio\n`);
    for (const [name, ms, note] of rows) {
      process.stdout.write(`${name.padEnd(w)}  ${(ms / 1000).toFixed(2).padStart(8)}  ${mbps(ms).toFixed(0).padStart(8)}  ${note}\n`);
    }
    process.stdout.write(`\nMiB/s is the image's virtual size (${sizeMiB} MiB) over the wall time; both deploys end with fsync of the disk file.\n`);
  } finally {
    if (server) {
      server.closeAllConnections();
      await new Promise((r) => server!.close(r));
    }
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`image-pipeline: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
