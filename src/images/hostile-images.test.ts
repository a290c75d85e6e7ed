// Real images, built with the real qemu-img, each run through the inspector and the safety
// check, and each cross-checked against qemu-img's own reading of it. The hostile ones are
// the shapes of the published attacks: a backing file or external data file that makes
// qemu-img read host files (CVE-2022-47951, CVE-2024-32498), a qcow2 declared raw
// (CVE-2024-44082), VMDK extents naming other files, a disk hiding another format.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIRST_USABLE_LBA, guidBytes, writeGpt, writeMbr } from '../../test/support/gpt.js';
import { luks1Container } from '../../test/support/luks.js';
import { openFileReader } from './byte-reader.js';
import { inspectImage, type Inspection } from './format-inspector.js';
import { ImageRefused, type RefusalReason } from './image-refused.js';
import { qemuImgInfo } from './qemu-img.js';
import { checkImageSafety, qemuFormatName } from './safety.js';

const run = promisify(execFile);
let dir: string;

async function qemuImg(...args: string[]): Promise<void> {
  await run('qemu-img', args, { cwd: dir });
}

/** What qemu-img itself calls the file when allowed to probe (tests only: trusted files). */
async function qemuProbe(name: string): Promise<string> {
  const { stdout } = await run('qemu-img', ['info', '--output=json', join(dir, name)], { cwd: dir });
  return (JSON.parse(stdout) as { format: string }).format;
}

async function inspect(name: string): Promise<Inspection> {
  const reader = await openFileReader(join(dir, name));
  try {
    return await inspectImage(reader);
  } finally {
    await reader.close();
  }
}

function refusal(fn: () => unknown): RefusalReason | 'accepted' {
  try {
    fn();
    return 'accepted';
  } catch (err) {
    if (err instanceof ImageRefused) return err.reason;
    throw err;
  }
}

const MiB = 1024 * 1024;

/** An 8 MiB raw disk with a GPT and one partition whose first sector says "ext4-ish". */
function gptDisk(partitionHead?: Buffer): Buffer {
  const disk = Buffer.alloc(8 * MiB);
  writeGpt(disk, [{ firstLba: 2048, lastLba: 16383 - 40, name: 'root' }]);
  (partitionHead ?? Buffer.from('not an image header, just file system bytes')).copy(disk, 2048 * 512);
  return disk;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ingot-images-'));
  const plain = Buffer.alloc(2 * MiB);
  plain.write('hello, this is a raw image without a partition table', 4096);
  await writeFile(join(dir, 'plain.raw'), plain);
  await writeFile(join(dir, 'disk.raw'), gptDisk());
  await writeFile(join(dir, 'bad-crc.raw'), writeGpt(Buffer.alloc(4 * MiB), [{ firstLba: FIRST_USABLE_LBA, lastLba: 4000 }], { corruptPrimaryCrc: true }));
  await writeFile(join(dir, 'mbr.raw'), writeMbr(Buffer.alloc(4 * MiB), [{ type: 0x83, startLba: 2048, sectors: 4096, bootable: true }]));

  await qemuImg('convert', '-f', 'raw', '-O', 'qcow2', 'disk.raw', 'good.qcow2');
  await qemuImg('convert', '-f', 'raw', '-O', 'qcow2', '-o', 'compat=0.10', 'disk.raw', 'v2.qcow2');
  await qemuImg('create', '-f', 'qcow2', '-b', 'good.qcow2', '-F', 'qcow2', 'backing.qcow2');
  await qemuImg('create', '-f', 'qcow2', '-o', 'data_file=datafile.bin', 'datafile.qcow2', '1M');
  // qemu's LUKS formats benchmark PBKDF2 with thread CPU time, which sandboxes may not
  // provide ("Unable to get accurate CPU usage"); legacy AES needs no PBKDF, and the LUKS
  // container is written by test/support/luks.ts. (LUKS-in-qcow2 is a crafted-header unit test.)
  await qemuImg('create', '-f', 'qcow2', '--object', 'secret,id=sec0,data=not-a-real-passphrase', '-o', 'encrypt.format=aes,encrypt.key-secret=sec0', 'encrypted.qcow2', '1M');
  await writeFile(join(dir, 'disk.luks'), luks1Container(1 * MiB));

  await qemuImg('convert', '-f', 'raw', '-O', 'vmdk', 'disk.raw', 'sparse.vmdk');
  await qemuImg('convert', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized', 'disk.raw', 'stream.vmdk');
  await qemuImg('create', '-f', 'vmdk', '-o', 'subformat=twoGbMaxExtentSparse', 'twogb.vmdk', '1M');
  await qemuImg('create', '-f', 'vmdk', '-o', 'subformat=monolithicFlat', 'flat.vmdk', '1M');
  // A monolithicSparse file whose embedded descriptor also names a host file as an extent.
  const evil = await readFile(join(dir, 'sparse.vmdk'));
  const descStart = Number(evil.readBigUInt64LE(28)) * 512;
  const desc = evil.subarray(descStart, descStart + 4096).toString('latin1');
  const patched = desc.replace(/(RW \d+ SPARSE "sparse\.vmdk"\n)/, '$1RW 2048 FLAT "/etc/passwd" 0\n');
  expect(patched).not.toBe(desc);
  Buffer.from(patched.slice(0, 4096), 'latin1').copy(evil, descStart);
  await writeFile(join(dir, 'evil.vmdk'), evil);

  await qemuImg('convert', '-f', 'raw', '-O', 'vpc', 'disk.raw', 'dynamic.vhd');
  await qemuImg('convert', '-f', 'raw', '-O', 'vpc', '-o', 'subformat=fixed', 'plain.raw', 'fixed.vhd');
  await qemuImg('convert', '-f', 'raw', '-O', 'vpc', '-o', 'subformat=fixed', 'disk.raw', 'fixed-gpt.vhd');
  await qemuImg('convert', '-f', 'raw', '-O', 'vhdx', 'disk.raw', 'disk.vhdx');
  await qemuImg('create', '-f', 'qed', 'disk.qed', '1M');

  // No ISO tools on the build machine: an ECMA-119 primary volume descriptor at sector 16.
  const iso = Buffer.alloc(1 * MiB);
  iso[0x8000] = 1;
  iso.write('CD001', 0x8001, 'latin1');
  iso[0x8006] = 1;
  iso[0x8800] = 255; // volume descriptor set terminator
  iso.write('CD001', 0x8801, 'latin1');
  await writeFile(join(dir, 'disk.iso'), iso);

  // A GPT disk whose partition starts with a real qcow2 header (with a backing file, even).
  const qcowHead = (await readFile(join(dir, 'backing.qcow2'))).subarray(0, 64 * 1024);
  await writeFile(join(dir, 'hidden-gpt.raw'), gptDisk(qcowHead));
  // An MBR disk whose logical partition (inside an extended one) starts with a VMDK header.
  const mbrDisk = writeMbr(Buffer.alloc(4 * MiB), [
    { type: 0x83, startLba: 2048, sectors: 1024 },
    { type: 0x05, startLba: 4096, sectors: 4096 },
  ]);
  writeMbr(mbrDisk.subarray(4096 * 512, 4097 * 512), [{ type: 0x83, startLba: 63, sectors: 2000 }]);
  (await readFile(join(dir, 'sparse.vmdk'))).subarray(0, 512).copy(mbrDisk, (4096 + 63) * 512);
  await writeFile(join(dir, 'hidden-mbr.raw'), mbrDisk);

  // A VHDX whose File Parameters say HasParent (qemu-img cannot create differencing VHDX).
  const vhdx = await readFile(join(dir, 'disk.vhdx'));
  const metadata = vhdx.indexOf('metadata', 256 * 1024, 'latin1');
  const fileParameters = guidBytes('CAA16737-FA36-4D43-B3B6-33F0AA44E76B');
  let patchedVhdx = false;
  for (let i = 0; i < vhdx.readUInt16LE(metadata + 10); i++) {
    const e = metadata + 32 + i * 32;
    if (!vhdx.subarray(e, e + 16).equals(fileParameters)) continue;
    const flagsAt = metadata + vhdx.readUInt32LE(e + 16) + 4;
    vhdx.writeUInt32LE(vhdx.readUInt32LE(flagsAt) | 0b10, flagsAt);
    patchedVhdx = true;
  }
  expect(patchedVhdx).toBe(true);
  await writeFile(join(dir, 'parent.vhdx'), vhdx);

  // A qcow2 with an incompatible feature bit no qemu knows (bit 40).
  const unknown = await readFile(join(dir, 'good.qcow2'));
  unknown.writeBigUInt64BE(unknown.readBigUInt64BE(72) | (1n << 40n), 72);
  await writeFile(join(dir, 'unknown-bit.qcow2'), unknown);
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const withVmdk = ['raw', 'qcow2', 'vmdk'];

// name, detected format, declared format, permitted formats, expected outcome, what qemu-img probes it as
const cases: Array<[string, string, string | undefined, string[] | undefined, RefusalReason | 'accepted', string | null]> = [
  ['plain.raw', 'raw', 'raw', undefined, 'accepted', 'raw'],
  ['disk.raw', 'gpt', 'raw', undefined, 'accepted', 'raw'],
  ['mbr.raw', 'mbr', 'raw', undefined, 'accepted', 'raw'],
  ['good.qcow2', 'qcow2', 'qcow2', undefined, 'accepted', 'qcow2'],
  ['v2.qcow2', 'qcow2', 'qcow2', undefined, 'accepted', 'qcow2'],
  ['sparse.vmdk', 'vmdk', 'vmdk', withVmdk, 'accepted', 'vmdk'],
  ['stream.vmdk', 'vmdk', 'vmdk', withVmdk, 'accepted', 'vmdk'],
  ['disk.iso', 'iso', 'raw', ['raw', 'iso'], 'accepted', 'raw'],
  // hostile or not permitted
  ['plain.raw', 'raw', 'qcow2', undefined, 'format-mismatch', 'raw'],
  ['good.qcow2', 'qcow2', 'raw', undefined, 'format-mismatch', 'qcow2'],
  ['backing.qcow2', 'qcow2', 'qcow2', undefined, 'backing-file', 'qcow2'],
  ['datafile.qcow2', 'qcow2', 'qcow2', undefined, 'external-data-file', 'qcow2'],
  ['encrypted.qcow2', 'qcow2', 'qcow2', undefined, 'encrypted', 'qcow2'],
  ['unknown-bit.qcow2', 'qcow2', 'qcow2', undefined, 'unsupported-feature', null],
  ['sparse.vmdk', 'vmdk', 'vmdk', undefined, 'format-not-permitted', 'vmdk'],
  ['twogb.vmdk', 'vmdk', 'vmdk', withVmdk, 'vmdk-create-type', 'vmdk'],
  ['flat.vmdk', 'vmdk', 'vmdk', withVmdk, 'vmdk-create-type', 'vmdk'],
  ['evil.vmdk', 'vmdk', 'vmdk', withVmdk, 'vmdk-extents', null],
  ['dynamic.vhd', 'vhd', undefined, undefined, 'format-not-permitted', 'vpc'],
  // A fixed VHD is raw bytes + a footer; qemu-img probes only offset 0, so it says raw.
  ['fixed.vhd', 'vhd', 'raw', undefined, 'format-mismatch', 'raw'],
  // …and when its data is a partitioned disk, it is that raw disk plus 512 trailing bytes.
  ['fixed-gpt.vhd', 'gpt', 'raw', undefined, 'accepted', 'raw'],
  ['disk.vhdx', 'vhdx', undefined, undefined, 'format-not-permitted', 'vhdx'],
  // qemu-img cannot open differencing VHDX at all, so there is no probe to compare with.
  ['parent.vhdx', 'vhdx', 'vhdx', ['vhdx'], 'backing-file', null],
  ['disk.qed', 'qed', 'qed', ['raw', 'qcow2', 'qed'], 'qed-refused', 'qed'],
  ['disk.luks', 'luks', 'raw', undefined, 'format-mismatch', 'luks'],
  ['disk.luks', 'luks', undefined, ['raw', 'qcow2', 'luks'], 'encrypted', 'luks'],
  ['disk.iso', 'iso', 'raw', undefined, 'format-not-permitted', 'raw'],
  ['hidden-gpt.raw', 'gpt', 'raw', undefined, 'hidden-format', 'raw'],
  ['hidden-mbr.raw', 'mbr', 'raw', undefined, 'hidden-format', 'raw'],
  ['bad-crc.raw', 'gpt', 'raw', undefined, 'malformed', 'raw'],
];

describe('real images built with qemu-img', () => {
  it.each(cases)('%s: detected as %s, declared %s, permitted %j → %s', async (name, detected, declared, permitted, expected, qemuSays) => {
    const inspection = await inspect(name);
    expect(inspection.format).toBe(detected);
    expect(refusal(() => checkImageSafety(inspection, { declaredFormat: declared, ...(permitted ? { permittedFormats: permitted } : {}) }))).toBe(expected);
    if (qemuSays !== null) {
      // Our reading agrees with qemu-img's probe (fixed VHD aside, asserted as documented).
      expect(await qemuProbe(name)).toBe(qemuSays);
      if (name !== 'fixed.vhd') expect(qemuFormatName(inspection.format)).toBe(qemuSays);
    }
  });

  it('reports the refusal with a message that says what to do', async () => {
    const inspection = await inspect('backing.qcow2');
    try {
      checkImageSafety(inspection, { declaredFormat: 'qcow2' });
      expect.unreachable();
    } catch (e) {
      const refused = e as ImageRefused;
      expect(refused).toBeInstanceOf(ImageRefused);
      expect(refused.status).toBe(422);
      expect(refused.message).toContain('good.qcow2');
      expect(refused.message).toMatch(/qemu-img convert/);
      expect(refused.toJSON()).toMatchObject({ code: 'INGOT_ERR_UNPROCESSABLE', reason: 'backing-file' });
    }
  });

  it('lists both problems of a split VMDK descriptor', async () => {
    const inspection = await inspect('flat.vmdk');
    expect(inspection.findings.map((f) => f.reason)).toEqual(['vmdk-create-type', 'vmdk-extents']);
    expect(inspection.format === 'vmdk' && inspection.details.extents).toEqual([{ access: 'RW', sectors: 2048, type: 'FLAT', fileName: 'flat-flat.vmdk' }]);
  });

  it('names the hidden format and where it is', async () => {
    const inspection = await inspect('hidden-mbr.raw');
    expect(inspection.format).toBe('mbr');
    if (inspection.format !== 'mbr') return;
    const logical = inspection.details.partitions.find((p) => p.table === 'mbr-logical');
    expect(logical).toMatchObject({ number: 5, startOffset: (4096 + 63) * 512, hiddenFormat: 'vmdk', inspected: true });
    expect(inspection.details.partitions.filter((p) => p.hiddenFormat)).toHaveLength(1);
  });

  it('reads the GPT a firmware would read, primary and backup', async () => {
    const inspection = await inspect('disk.raw');
    if (inspection.format !== 'gpt') throw new Error(`expected gpt, got ${inspection.format}`);
    expect(inspection.details).toMatchObject({ sectorSize: 512, protectiveMbr: true, backupGptRead: true });
    expect(inspection.details.partitions).toEqual([
      expect.objectContaining({ table: 'gpt', number: 1, startOffset: 2048 * 512, name: 'root', type: '0FC63DAF-8483-4772-8E79-3D69E47DE47D', inspected: true }),
    ]);
    expect(inspection.findings).toEqual([]);
  });

  it('agrees with qemu-img info (run with -f under the memory limit) on sizes, backing and data files', async () => {
    const good = await inspect('good.qcow2');
    const goodInfo = await qemuImgInfo(join(dir, 'good.qcow2'), 'qcow2');
    expect(good.format === 'qcow2' && good.details.virtualSize).toBe(goodInfo.virtualSize);
    expect(goodInfo.virtualSize).toBe(8 * MiB);
    expect(good.format === 'qcow2' && good.details.version).toBe(3);

    const v2 = await inspect('v2.qcow2');
    expect(v2.format === 'qcow2' && v2.details.version).toBe(2);

    const backing = await inspect('backing.qcow2');
    const backingInfo = await qemuImgInfo(join(dir, 'backing.qcow2'), 'qcow2');
    expect(backing.format === 'qcow2' && backing.details.backingFile).toBe(backingInfo.backingFilename);
    expect(backing.format === 'qcow2' && backing.details.backingFormat).toBe('qcow2');

    const data = await inspect('datafile.qcow2');
    const dataInfo = await qemuImgInfo(join(dir, 'datafile.qcow2'), 'qcow2');
    expect(data.format === 'qcow2' && data.details.dataFile).toBe(dataInfo.formatSpecific?.data['data-file']);
    expect(data.format === 'qcow2' && data.details.incompatibleFeatureBits).toContain(2);

    const enc = await inspect('encrypted.qcow2');
    const encInfo = await qemuImgInfo(join(dir, 'encrypted.qcow2'), 'qcow2');
    expect(encInfo.encrypted).toBe(true);
    expect(enc.format === 'qcow2' && enc.details).toMatchObject({ cryptMethod: 1, hasLuksHeaderExtension: false });

    const luks = await inspect('disk.luks');
    const luksInfo = await qemuImgInfo(join(dir, 'disk.luks'), 'luks');
    expect(luks.format === 'luks' && luks.details.version).toBe(1);
    expect(luksInfo.format).toBe('luks');
    expect(luksInfo.virtualSize).toBe(1 * MiB);

    // qemu-img refuses the unknown feature bit too.
    await expect(qemuImgInfo(join(dir, 'unknown-bit.qcow2'), 'qcow2')).rejects.toMatchObject({ reason: 'conversion-failed' });

    const vhd = await inspect('dynamic.vhd');
    const vhdInfo = await qemuImgInfo(join(dir, 'dynamic.vhd'), 'vpc');
    expect(vhd.format === 'vhd' && vhd.details).toMatchObject({ footerAt: 'start', diskType: 'dynamic', checksumValid: true });
    expect(vhdInfo.format).toBe('vpc');
    const fixed = await inspect('fixed.vhd');
    expect(fixed.format === 'vhd' && fixed.details).toMatchObject({ footerAt: 'end', diskType: 'fixed', checksumValid: true });

    const vhdx = await inspect('disk.vhdx');
    expect(vhdx.format === 'vhdx' && vhdx.details).toEqual({ metadataRead: true, hasParent: false });

    const sparse = await inspect('sparse.vmdk');
    const sparseInfo = await qemuImgInfo(join(dir, 'sparse.vmdk'), 'vmdk');
    expect(sparse.format === 'vmdk' && (sparse.details.capacitySectors ?? 0) * 512).toBe(sparseInfo.virtualSize);
    expect(sparseInfo.formatSpecific?.data['create-type']).toBe('monolithicSparse');
    expect(sparse.format === 'vmdk' && sparse.details.createType).toBe('monolithicSparse');
  });
});
