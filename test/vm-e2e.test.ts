// End to end on a real (virtual) machine, driven only as a user drives Ingot: the built CLI
// (`ingot ramdisk build`, `ingot server`, `ingot lab --vms 1`, `ingot lab enroll`, `ingot host`)
// and the HTTP API (test/support/vm-rig.ts). One QEMU VM (OVMF; TCG where KVM is missing, as
// here and in CI) boots the agent ramdisk from the per-host ISO the conductor inserts through
// the lab's Redfish virtual media; the real agent inspects it, writes a GPT image built from
// Debian packages (marker-disk-image.ts) with a config drive, and Ingot reboots the VM from its
// disk, where the image's own tiny OS prints what it found to the serial console. Then metadata
// cleaning, checked on the VM's disk file with blkid, and a qcow2 with a backing file that must
// never reach the disk.
//
// The slow VM end-to-end test lives in this one file; its phases share one VM and run in order.
// Durations are printed (the budget is 10 minutes on 2 TCG cores), never asserted.
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aptGetInstallFor, missingPrerequisites, systemSources } from '../src/boot/ramdisk-prerequisites.js';
import { probeVmHost } from '../src/lab/vm/vm-host.js';
import { BOOTED_MARKER, buildBackingFileQcow2, buildMarkerDiskImage, expectedDigestLine, USER_DATA_DIGEST_KEY, type MarkerDiskImage } from './support/marker-disk-image.js';
import { missingForTinyIso } from './support/tiny-boot-iso.js';
import { sha256File, VmRig } from './support/vm-rig.js';

const missingPieces = missingPrerequisites(systemSources());
const missing = [
  ...(missingPieces.length ? [aptGetInstallFor(missingPieces)] : []),
  ...missingForTinyIso(),
  ...(await probeVmHost().then(() => [], (err: Error) => [err.message])),
];
// In CI every tool is installed by .ci/run: a missing one is a failure there, not a skip.
if (missing.length > 0 && process.env.CI) throw new Error(`VM end-to-end test cannot run: missing ${missing.join('; ')}`);
if (missing.length > 0) console.warn(`skipping the VM end-to-end test: missing ${missing.join('; ')}`);

/** Bound for one phase on a loaded 2-core machine without KVM, not an expectation. */
const PHASE_TIMEOUT_MS = 420_000;
const DISK_GIB = 1;
const USER_DATA = `#cloud-config\n# ingot VM end-to-end ${Date.now()}\nhostname: e2e\n`;

const work = mkdtempSync(join(tmpdir(), 'ingot-vm-e2e-'));
const figures: string[] = [];
const testStarted = Date.now();
const seconds = (since: number) => ((Date.now() - since) / 1000).toFixed(1);
let marker: MarkerDiskImage;
let hostile = '';
let rig: VmRig;

/** blkid's low-level probe of `file` at byte `offset`: '' when it finds no signature there. */
function probe(file: string, offset = 0): string {
  try {
    return execFileSync('blkid', ['-p', '-O', String(offset), '-o', 'export', file], { encoding: 'utf8' }).trim();
  } catch (err) {
    if ((err as { status?: number }).status === 2) return ''; // blkid: nothing identified
    throw err;
  }
}

/** The first 8 bytes of sector `lba` (a GPT header starts with "EFI PART"). */
function sectorSignature(file: string, lba: number): string {
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(8);
    readSync(fd, buf, 0, 8, lba * 512);
    return buf.toString('latin1');
  } finally {
    closeSync(fd);
  }
}

beforeAll(() => {
  if (missing.length > 0) return;
  marker = buildMarkerDiskImage(join(work, 'image'));
  hostile = buildBackingFileQcow2(join(work, 'image'), marker.path);
  // (builds dist/ first when a bare `vitest run` finds it older than src/: minutes on a busy machine)
  rig = new VmRig({ work: join(work, 'rig'), diskGiB: DISK_GIB, memoryMiB: 1024, images: { '/marker.raw': marker.path, '/hostile.qcow2': hostile } });
}, PHASE_TIMEOUT_MS);

afterAll(async () => {
  await rig?.stop();
  if (figures.length > 0) console.log(`VM end-to-end (${(await probeVmHost()).accel}): ${figures.join('; ')}; whole test ${seconds(testStarted)} s`);
  rmSync(work, { recursive: true, force: true });
}, 60_000);

describe.skipIf(missing.length > 0)('a lab VM, end to end through the CLI and the API', () => {
  it('builds the agent ramdisk with `ingot ramdisk build`', async () => {
    const started = Date.now();
    const built = await rig.buildRamdisk(PHASE_TIMEOUT_MS);
    figures.push(`ramdisk build ${seconds(started)} s (initramfs ${(built.sizes.initramfs / 1048576).toFixed(1)} MiB)`);
    expect(built.digest).toMatch(/^[0-9a-f]{64}$/);
  }, PHASE_TIMEOUT_MS + 10_000);

  it('enrolls the VM, and the real agent inside it reports the VM\'s disk size and NIC MAC', async () => {
    await rig.start();
    const started = Date.now();
    await rig.enroll();
    const host = await rig.waitFor('available', (h) => h.status.provisioning.state === 'available' && h, PHASE_TIMEOUT_MS);
    figures.push(`enroll -> available ${seconds(started)} s`);
    // The VM as QEMU runs it: the NIC's MAC on its command line, the disk file's size.
    const mac = rig.vmMac();
    expect(mac).toBeDefined();
    expect(statSync(rig.diskPath()).size).toBe(DISK_GIB * 1024 ** 3);
    expect(host.status.hardware?.nics?.map((n) => n.mac.toLowerCase())).toContain(mac!.toLowerCase());
    expect(host.status.hardware?.storage?.map((d) => d.sizeBytes)).toContain(DISK_GIB * 1024 ** 3);
    // It was the ramdisk that booted, from the medium the conductor inserted.
    expect(rig.console()).toContain('ingot-ramdisk: started');
  }, PHASE_TIMEOUT_MS + 90_000);

  it('provisions the GPT image with user data; the VM boots it from its disk and the image finds the config drive', async () => {
    await rig.ingot(['apply', '-f', rig.writeFile('user-data.yaml', `apiVersion: ingot.dev/v1\nkind: Secret\nmetadata: {name: e2e-user-data}\nstringData:\n  userData: ${JSON.stringify(USER_DATA)}\n`)]);
    // The VM's 1 GiB disk is below the default root disk minimum (4 GiB): a hint allows it.
    await rig.patchHost({ spec: { userDataName: 'e2e-user-data', automatedCleaningMode: 'metadata', rootDeviceHints: { minSizeGigabytes: 1 } } });
    const consoleBefore = rig.console().length;
    const started = Date.now();
    await rig.ingot(['host', 'provision', rig.hostName, '--image-url', rig.imageUrl('/marker.raw'), '--checksum', sha256File(marker.path), '--format', 'raw']);
    // Powered on (spec.online), the provisioned host boots from its disk.
    await rig.patchHost({ spec: { online: true } });
    await rig.waitFor('provisioned', (h) => h.status.provisioning.state === 'provisioned', PHASE_TIMEOUT_MS);
    figures.push(`provision -> provisioned ${seconds(started)} s`);
    // Ingot powers the host on from its disk; the image's OS prints what it found.
    const bootStarted = Date.now();
    const digestLine = new RegExp(`^${USER_DATA_DIGEST_KEY} \\S+`, 'm');
    await rig.waitFor('the deployed image\'s digest line on the serial console', () => digestLine.test(rig.console().slice(consoleBefore)), PHASE_TIMEOUT_MS);
    figures.push(`provisioned -> image booted ${seconds(bootStarted)} s`);
    const deployed = rig.console().slice(consoleBefore);
    expect(deployed).toContain(BOOTED_MARKER);
    expect(deployed).toContain(expectedDigestLine(USER_DATA));
    // The disk holds the image's GPT and its EFI system partition.
    expect(probe(rig.diskPath())).toContain('PTTYPE=gpt');
    expect(probe(rig.diskPath(), marker.esp.offset)).toContain('TYPE=vfat');
  }, PHASE_TIMEOUT_MS * 2);

  it('deprovisions with metadata cleaning: no partition table and no file system signature are left where the image was', async () => {
    const table = execFileSync('sgdisk', ['-p', rig.diskPath()], { encoding: 'utf8' });
    const partitionStarts = [...table.matchAll(/^\s+\d+\s+(\d+)\s+\d+/gm)].map((m) => Number(m[1]) * 512);
    expect(partitionStarts.length, table).toBeGreaterThanOrEqual(2); // the ESP and the config drive
    for (const offset of partitionStarts) expect(probe(rig.diskPath(), offset), `at byte ${offset}`).not.toBe('');
    const started = Date.now();
    await rig.ingot(['host', 'deprovision', rig.hostName]);
    await rig.patchHost({ spec: { online: false } });
    await rig.waitFor('available after cleaning', (h) => h.status.provisioning.state === 'available' && !h.spec.image, PHASE_TIMEOUT_MS);
    figures.push(`deprovision -> available ${seconds(started)} s`);
    expect(probe(rig.diskPath())).toBe('');
    for (const offset of partitionStarts) expect(probe(rig.diskPath(), offset), `at byte ${offset}`).toBe('');
    // Neither the primary GPT header (LBA 1) nor the backup (last LBA) is left.
    expect(sectorSignature(rig.diskPath(), 1)).not.toBe('EFI PART');
    expect(sectorSignature(rig.diskPath(), statSync(rig.diskPath()).size / 512 - 1)).not.toBe('EFI PART');
  }, PHASE_TIMEOUT_MS + 30_000);

  it('refuses a qcow2 with a backing file, and the VM\'s disk is untouched', async () => {
    const before = sha256File(rig.diskPath());
    await rig.ingot(['host', 'provision', rig.hostName, '--image-url', rig.imageUrl('/hostile.qcow2'), '--checksum', sha256File(hostile), '--format', 'qcow2']);
    const message = await rig.waitFor('a provisioning error', (h) => h.status.errorMessage, PHASE_TIMEOUT_MS);
    expect(message).toMatch(/backing/i);
    expect(sha256File(rig.diskPath())).toBe(before);
  }, PHASE_TIMEOUT_MS);
});
