// Crafted headers for what qemu-img will not create on request (unknown feature bits, LUKS in
// qcow2, loops in partition chains), a download's head, and a property: no byte string makes
// the inspector throw or read outside the image.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FIRST_USABLE_LBA, writeGpt, writeMbr } from '../../test/support/gpt.js';
import { bufferReader, type ByteReader } from './byte-reader.js';
import { inspectImage, type Qcow2Details } from './format-inspector.js';
import { ImageRefused } from './image-refused.js';
import { checkImageSafety } from './safety.js';

interface Qcow2Spec {
  version?: number;
  clusterBits?: number;
  backing?: string;
  cryptMethod?: number;
  incompatible?: bigint;
  headerLength?: number;
  extensions?: Array<{ type: number; data: Buffer }>;
}

/** A qcow2 header (qcow2.txt) followed by its extensions, in a 64 KiB first cluster. */
function qcow2(spec: Qcow2Spec = {}): Buffer {
  const buf = Buffer.alloc(64 * 1024 + 512);
  buf.write('QFI\xfb', 0, 'latin1');
  const version = spec.version ?? 3;
  buf.writeUInt32BE(version, 4);
  buf.writeUInt32BE(spec.clusterBits ?? 16, 20);
  buf.writeBigUInt64BE(1n << 30n, 24);
  buf.writeUInt32BE(spec.cryptMethod ?? 0, 32);
  const headerLength = spec.headerLength ?? (version === 2 ? 72 : 112);
  if (version === 3) {
    buf.writeBigUInt64BE(spec.incompatible ?? 0n, 72);
    buf.writeUInt32BE(4, 96);
    buf.writeUInt32BE(headerLength, 100);
  }
  let off = version === 2 ? 72 : headerLength;
  for (const ext of spec.extensions ?? []) {
    buf.writeUInt32BE(ext.type, off);
    buf.writeUInt32BE(ext.data.length, off + 4);
    ext.data.copy(buf, off + 8);
    off += 8 + Math.ceil(ext.data.length / 8) * 8;
  }
  off += 8; // end marker (zeros)
  if (spec.backing !== undefined) {
    buf.writeBigUInt64BE(BigInt(off), 8);
    buf.writeUInt32BE(spec.backing.length, 16);
    buf.write(spec.backing, off, 'utf8');
  }
  return buf;
}

function featureTable(entries: Array<[number, number, string]>): Buffer {
  const data = Buffer.alloc(entries.length * 48);
  entries.forEach(([type, bit, name], i) => {
    data[i * 48] = type;
    data[i * 48 + 1] = bit;
    data.write(name, i * 48 + 2, 'latin1');
  });
  return data;
}

async function reasons(bytes: Buffer): Promise<string[]> {
  return (await inspectImage(bufferReader(bytes))).findings.map((f) => f.reason);
}

describe('qcow2 headers', () => {
  it('accepts the features qemu-img writes today: dirty, zstd compression, extended L2', async () => {
    const inspection = await inspectImage(bufferReader(qcow2({ incompatible: 0b11001n })));
    expect(inspection.format).toBe('qcow2');
    expect((inspection.details as Qcow2Details).incompatibleFeatureBits).toEqual([0, 3, 4]);
    expect(inspection.findings).toEqual([]);
  });

  it.each([
    ['an unknown incompatible bit', { incompatible: 1n << 5n }, 'unsupported-feature'],
    ['the top incompatible bit', { incompatible: 1n << 63n }, 'unsupported-feature'],
    ['the corrupt bit', { incompatible: 0b10n }, 'unsupported-feature'],
    ['the external data file bit alone', { incompatible: 0b100n }, 'external-data-file'],
    ['a data file name without the bit', { extensions: [{ type: 0x44415441, data: Buffer.from('/etc/shadow') }] }, 'external-data-file'],
    ['LUKS encryption', { cryptMethod: 2, extensions: [{ type: 0x0537be77, data: Buffer.alloc(16) }] }, 'encrypted'],
    ['a LUKS header extension without crypt_method', { extensions: [{ type: 0x0537be77, data: Buffer.alloc(16) }] }, 'encrypted'],
    ['AES encryption', { cryptMethod: 1 }, 'encrypted'],
    ['a backing file (v2)', { version: 2, backing: '/etc/passwd' }, 'backing-file'],
    ['version 4', { version: 4 }, 'unsupported-feature'],
    ['cluster_bits 30', { clusterBits: 30 }, 'malformed'],
    ['a header_length that is not a multiple of 8', { headerLength: 105 }, 'malformed'],
    ['an empty feature name table', { extensions: [{ type: 0x6803f857, data: Buffer.alloc(0) }] }, null],
  ] as const)('flags %s', async (_name, spec, reason) => {
    const found = await reasons(qcow2(spec as Qcow2Spec));
    if (reason === null) expect(found).toEqual([]);
    else expect(found).toContain(reason);
  });

  it('refuses an extension whose length points past the first cluster, without reading it', async () => {
    const img = qcow2();
    img.writeUInt32BE(0x6803f857, 112);
    img.writeUInt32BE(0xfffffff0, 116);
    expect(await reasons(img)).toEqual(['malformed']);
  });

  it('reads the backing file name, backing format and feature name table', async () => {
    const inspection = await inspectImage(
      bufferReader(
        qcow2({
          backing: 'base.qcow2',
          extensions: [
            { type: 0xe2792aca, data: Buffer.from('qcow2') },
            { type: 0x6803f857, data: featureTable([[0, 0, 'dirty bit'], [0, 2, 'external data file']]) },
          ],
        }),
      ),
    );
    expect(inspection.details).toMatchObject({
      backingFile: 'base.qcow2',
      backingFormat: 'qcow2',
      featureNames: [
        { type: 'incompatible', bit: 0, name: 'dirty bit' },
        { type: 'incompatible', bit: 2, name: 'external data file' },
      ],
    });
    expect(inspection.safetyProblems[0]).toContain('"base.qcow2"');
  });

  it('keeps control characters from the image out of messages', async () => {
    const inspection = await inspectImage(bufferReader(qcow2({ backing: 'a\u001b[31mb\nc' })));
    expect(inspection.safetyProblems[0]).toContain('"a?[31mb?c"');
  });
});

describe('VMDK descriptors', () => {
  it('treats a text descriptor as VMDK the way qemu probes it, and refuses its extents and parent', async () => {
    const text = '# Disk DescriptorFile\n\nversion=1\nCID=fffffffe\nparentCID=12345678\nparentFileNameHint="base.vmdk"\ncreateType="monolithicSparse"\nRW 2048 SPARSE "data.vmdk"\n';
    const inspection = await inspectImage(bufferReader(Buffer.from(text)));
    expect(inspection.format).toBe('vmdk');
    expect(inspection.findings.map((f) => f.reason)).toEqual(['backing-file', 'vmdk-extents']);
  });

  it('does not call a text file that merely mentions a descriptor VMDK', async () => {
    expect((await inspectImage(bufferReader(Buffer.from('hello\n# Disk DescriptorFile\nversion=1\n')))).format).toBe('raw');
  });
});

describe('partition tables', () => {
  it('does not mistake a boot signature over junk for an MBR', async () => {
    const disk = Buffer.alloc(64 * 1024, 0x41);
    disk[510] = 0x55;
    disk[511] = 0xaa;
    expect((await inspectImage(bufferReader(disk))).format).toBe('raw');
  });

  it('follows extended partition chains, and stops on one that loops', async () => {
    // Extended partition at LBA 100; its first EBR links to a second one at 100 + 50.
    const disk = writeMbr(Buffer.alloc(1024 * 1024), [{ type: 0x05, startLba: 100, sectors: 1000 }]);
    const ebr = (lba: number, nextRel: number) =>
      writeMbr(disk.subarray(lba * 512, (lba + 1) * 512), [
        { type: 0x83, startLba: 1, sectors: 10 },
        { type: 0x05, startLba: nextRel, sectors: 100 },
      ]);
    ebr(100, 50);
    ebr(150, 0x7fffffff); // links far past the end of the image: the chain ends there
    const chain = await inspectImage(bufferReader(disk));
    expect(chain.format).toBe('mbr');
    expect(chain.findings).toEqual([]);
    expect(chain.details).toMatchObject({
      partitions: [
        { table: 'mbr', number: 1, startOffset: 100 * 512 },
        { table: 'mbr-logical', number: 5, startOffset: 101 * 512 },
        { table: 'mbr-logical', number: 6, startOffset: 151 * 512 },
      ],
    });
    ebr(150, 50); // now the second EBR links to itself
    const loop = await inspectImage(bufferReader(disk));
    expect(loop.findings.map((f) => f.reason)).toEqual(['malformed']);
  });

  it('finds a GPT written for 4096-byte sectors', async () => {
    const disk = Buffer.alloc(4 * 1024 * 1024);
    writeMbr(disk, [{ type: 0xee, startLba: 1, sectors: 1023 }]);
    const header = Buffer.alloc(512);
    header.write('EFI PART', 0, 'latin1');
    header.writeUInt32LE(92, 12);
    header.writeBigUInt64LE(2n, 72);
    header.writeUInt32LE(4, 80);
    header.writeUInt32LE(128, 84);
    header.copy(disk, 4096);
    disk.writeBigUInt64LE(6n, 2 * 4096 + 32);
    disk.writeBigUInt64LE(100n, 2 * 4096 + 40);
    disk.fill(0x11, 2 * 4096, 2 * 4096 + 16); // a non-zero type GUID
    Buffer.from('QFI\xfb', 'latin1').copy(disk, 6 * 4096);
    const inspection = await inspectImage(bufferReader(disk));
    expect(inspection.format).toBe('gpt');
    expect(inspection.details).toMatchObject({ sectorSize: 4096, partitions: [{ startOffset: 6 * 4096, hiddenFormat: 'qcow2' }] });
    // The crafted header has no valid CRCs either.
    expect(inspection.findings.map((f) => f.reason)).toEqual(expect.arrayContaining(['malformed', 'hidden-format']));
  });

  it('checks partitions that only the backup GPT lists', async () => {
    const disk = writeGpt(Buffer.alloc(4 * 1024 * 1024), [{ firstLba: 2048, lastLba: 4000 }]);
    // Rewrite the backup array to add a second partition at LBA 4096 hiding a QED header.
    const lastLba = disk.length / 512 - 1;
    const arrayStart = (lastLba - 32) * 512;
    disk.fill(0x22, arrayStart + 128, arrayStart + 144);
    disk.writeBigUInt64LE(4096n, arrayStart + 128 + 32);
    disk.writeBigUInt64LE(5000n, arrayStart + 128 + 40);
    Buffer.from('QED\0', 'latin1').copy(disk, 4096 * 512);
    const inspection = await inspectImage(bufferReader(disk));
    expect(inspection.details).toMatchObject({ backupGptRead: true });
    expect(inspection.findings.map((f) => f.reason)).toEqual(expect.arrayContaining(['hidden-format', 'malformed']));
    expect(inspection.safetyProblems.join('\n')).toContain('partition 2 (gpt-backup)');
  });
});

describe("a download's head", () => {
  it('reports partitions beyond the inspected bytes, and the safety check refuses unless told otherwise', async () => {
    const disk = writeGpt(Buffer.alloc(4 * 1024 * 1024), [{ firstLba: FIRST_USABLE_LBA, lastLba: 100 }, { firstLba: 4096, lastLba: 6000 }]);
    const head = bufferReader(disk.subarray(0, 1024 * 1024), { complete: false });
    const inspection = await inspectImage(head);
    expect(inspection.format).toBe('gpt');
    expect(inspection.findings.map((f) => f.reason)).toEqual(['incomplete-inspection']);
    expect(() => checkImageSafety(inspection, { declaredFormat: 'raw' })).toThrow(expect.objectContaining({ reason: 'incomplete-inspection' }));
    expect(checkImageSafety(inspection, { declaredFormat: 'raw', allowPartialInspection: true })).toMatchObject({ format: 'gpt', streamsAsRaw: true });
    // The whole image has nothing wrong.
    expect((await inspectImage(bufferReader(disk))).findings).toEqual([]);
  });
});

/** A reader over `bytes` that fails the test on any read outside them. */
function strictReader(bytes: Buffer, complete = true): ByteReader & { reads: number } {
  const reader = {
    size: bytes.length,
    complete,
    reads: 0,
    async read(offset: number, length: number) {
      reader.reads++;
      if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > bytes.length) {
        throw new Error(`out-of-bounds read: offset ${offset}, length ${length}, size ${bytes.length}`);
      }
      return bytes.subarray(offset, offset + length);
    },
  };
  return reader;
}

const MAGICS = ['QFI\xfb', 'QED\0', 'KDMV', 'COWD', 'conectix', 'vhdxfile', 'LUKS\xba\xbe', '# Disk DescriptorFile\nversion=1\n'];

describe('hostile bytes never crash the inspector', () => {
  const assertSafe = async (bytes: Buffer, complete = true) => {
    const reader = strictReader(bytes, complete);
    const inspection = await inspectImage(reader);
    expect(inspection.safetyProblems).toEqual(inspection.findings.map((f) => f.message));
    expect(reader.reads).toBeLessThan(5000);
    try {
      checkImageSafety(inspection, { declaredFormat: 'raw' });
    } catch (err) {
      expect(err).toBeInstanceOf(ImageRefused);
    }
  };

  it('random buffers, with and without a known magic in front', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 4096 }), fc.option(fc.constantFrom(...MAGICS)), fc.boolean(), async (bytes, magic, complete) => {
        const buf = Buffer.from(bytes);
        if (magic) Buffer.from(magic, 'latin1').copy(buf, 0);
        await assertSafe(buf, complete);
      }),
      { numRuns: 400 },
    );
  });

  it('real headers with random bytes overwritten', async () => {
    const seeds = [
      qcow2({ backing: 'x', extensions: [{ type: 0x6803f857, data: featureTable([[0, 1, 'corrupt']]) }] }),
      qcow2({ version: 2 }),
      writeGpt(Buffer.alloc(256 * 1024), [{ firstLba: FIRST_USABLE_LBA, lastLba: 300 }]),
      writeMbr(Buffer.alloc(128 * 1024), [{ type: 0x05, startLba: 10, sectors: 200 }, { type: 0x83, startLba: 1, sectors: 5 }]),
    ];
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...seeds.keys()),
        fc.array(fc.tuple(fc.nat({ max: 64 * 1024 }), fc.integer({ min: 0, max: 255 })), { maxLength: 64 }),
        fc.nat({ max: 300 * 1024 }),
        async (which, edits, cut) => {
          const buf = Buffer.from(seeds[which]!);
          for (const [at, value] of edits) if (at < buf.length) buf[at] = value;
          // Also put the random bytes into the fields that matter most: the first 128 bytes
          // and the GPT header / MBR table.
          for (const [at, value] of edits) buf[(at % 128) + (at % 2 === 0 ? 0 : 446)] = value;
          await assertSafe(buf.subarray(0, Math.min(buf.length, Math.max(1, cut))));
        },
      ),
      { numRuns: 300 },
    );
  });
});
