// One lab VM provisioned for real, timed: `ingot ramdisk build` (time and sizes), then through
// `ingot server` + `ingot lab --vms 1` (TCG where KVM is missing) the seconds from enroll to
// available (the agent ramdisk boots and inspects), from provision to provisioned (another boot,
// the deploy of a small GPT image with a config drive) and from deprovision to available
// (another boot, metadata cleaning). The same rig as test/vm-e2e.test.ts (test/support/vm-rig.ts).
//
// Run: npm run bench:vm   (needs the Debian packages of docs/ramdisk.md and docs/lab-vms.md)
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { probeVmHost } from '../src/lab/vm/vm-host.js';
import { buildMarkerDiskImage } from '../test/support/marker-disk-image.js';
import { sha256File, VmRig } from '../test/support/vm-rig.js';

const MIB = 1024 * 1024;
const PHASE_TIMEOUT_MS = 900_000;
const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');
const work = mkdtempSync(join(tmpdir(), 'ingot-bench-vm-'));
const timed = async (label: string, step: () => Promise<unknown>) => {
  const started = process.hrtime.bigint();
  await step();
  console.log(`${label.padEnd(30)} ${(Number(process.hrtime.bigint() - started) / 1e9).toFixed(1)} s`);
};

const marker = buildMarkerDiskImage(join(work, 'image'));
const rig = new VmRig({ work: join(work, 'rig'), diskGiB: 1, memoryMiB: 1024, images: { '/marker.raw': marker.path } });
try {
  console.log(`load average before: ${load()}`);
  console.log(`accelerator: ${(await probeVmHost()).accel}, 1 VM with 2 vCPUs, 1024 MiB, 1 GiB disk`);
  const built = await rig.buildRamdisk(PHASE_TIMEOUT_MS);
  console.log(`${'ramdisk build'.padEnd(30)} ${built.buildSeconds.toFixed(1)} s`);
  console.log(`  kernel ${(built.sizes.kernel / MIB).toFixed(1)} MiB, initramfs ${(built.sizes.initramfs / MIB).toFixed(1)} MiB (${(built.sizes.initramfsUncompressed / MIB).toFixed(1)} MiB unpacked), boot ISO ${(built.sizes.bootIso / MIB).toFixed(1)} MiB`);
  await rig.start();
  await timed('enroll -> available', async () => {
    await rig.enroll();
    await rig.waitFor('available', (h) => h.status.provisioning.state === 'available', PHASE_TIMEOUT_MS);
  });
  // The VM's 1 GiB disk is below the default root disk minimum (4 GiB): a hint allows it.
  await rig.patchHost({ spec: { rootDeviceHints: { minSizeGigabytes: 1 } } });
  await timed('provision -> provisioned', async () => {
    await rig.ingot(['host', 'provision', rig.hostName, '--image-url', rig.imageUrl('/marker.raw'), '--checksum', sha256File(marker.path), '--format', 'raw']);
    await rig.waitFor('provisioned', (h) => h.status.provisioning.state === 'provisioned', PHASE_TIMEOUT_MS);
  });
  await timed('deprovision -> available', async () => {
    await rig.ingot(['host', 'deprovision', rig.hostName]);
    await rig.waitFor('available', (h) => h.status.provisioning.state === 'available' && !h.spec.image, PHASE_TIMEOUT_MS);
  });
  console.log(`load average after: ${load()}`);
} finally {
  await rig.stop();
  rmSync(work, { recursive: true, force: true });
}
