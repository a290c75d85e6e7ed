import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readGptPartitions } from '../images/gpt.js';
import { buildRawDisk, ensureQuickstartImage, QUICKSTART_IMAGE_BYTES, QUICKSTART_IMAGE_MARKER, serveImages } from './quickstart-image.js';

const dir = mkdtempSync(join(tmpdir(), 'ingot-qs-image-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const sectorIo = (data: Buffer) => ({ size: data.length, read: async (o: number, l: number) => data.subarray(o, o + l), write: async () => {} });

describe('quickstart image', () => {
  it('is a GPT disk with an EFI and a root partition carrying the marker', async () => {
    const disk = buildRawDisk();
    expect(disk.length).toBe(QUICKSTART_IMAGE_BYTES);
    const parts = await readGptPartitions(sectorIo(disk));
    expect(parts.map((p) => p.name)).toEqual(['EFI', 'root']);
    expect(disk.toString('utf8', parts[1]!.firstLba * 512, parts[1]!.firstLba * 512 + QUICKSTART_IMAGE_MARKER.length)).toBe(QUICKSTART_IMAGE_MARKER);
  });

  it('is built as qcow2 with its sha256, reused on the next call, and served over loopback HTTP', async () => {
    const image = await ensureQuickstartImage(join(dir, 'images'));
    expect(image.format).toBe('qcow2');
    expect(image.note).toBeUndefined();
    const bytes = readFileSync(image.path);
    expect(bytes.subarray(0, 4).toString('latin1')).toBe('QFI\xfb');
    expect(image.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
    const raw = join(dir, 'back.raw');
    execFileSync('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', image.path, raw]);
    expect(readFileSync(raw).includes(QUICKSTART_IMAGE_MARKER)).toBe(true);
    expect((await ensureQuickstartImage(join(dir, 'images'))).sha256).toBe(image.sha256);

    const server = await serveImages([image]);
    try {
      expect(server.baseUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const ok = await fetch(`${server.baseUrl}/${image.fileName}`);
      expect(ok.status).toBe(200);
      expect(Buffer.from(await ok.arrayBuffer()).equals(bytes)).toBe(true);
      expect((await fetch(`${server.baseUrl}/../ingot.db`)).status).toBe(404);
      expect((await fetch(`${server.baseUrl}/other.qcow2`)).status).toBe(404);
    } finally {
      await server.close();
    }
  });
});
