// How long `ingot ramdisk build` takes and what it makes: build time (twice, into two fresh
// data directories, to show the digest is reproducible), the kernel, the initramfs compressed
// and unpacked, the boot ISO template, the module count and the digest. A per-host medium is
// then streamed once from the template (the agent listener's work per boot) and timed.
//
// Run: npm run bench:ramdisk   (needs the Debian packages of docs/ramdisk.md)
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { hostBootIso } from '../src/boot/agent-boot-iso.js';
import { buildRamdisk } from '../src/boot/ramdisk-build.js';

const MIB = 1024 * 1024;
const work = mkdtempSync(join(tmpdir(), 'ingot-bench-ramdisk-'));
const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');
try {
  console.log(`load average before: ${load()}`);
  const digests: string[] = [];
  const isoDigests: string[] = [];
  for (const run of [1, 2]) {
    const started = process.hrtime.bigint();
    const built = await buildRamdisk({ dataDir: join(work, `data-${run}`) });
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const m = built.manifest;
    digests.push(m.digest);
    isoDigests.push(m.bootIsoSha256);
    console.log(`build ${run}: ${seconds.toFixed(1)} s`);
    if (run === 1) {
      console.log(`  kernel            ${(m.sizes.kernel / MIB).toFixed(1)} MiB (Linux ${m.kernelVersion})`);
      console.log(`  initramfs         ${(m.sizes.initramfs / MIB).toFixed(1)} MiB ${m.compression}, ${(m.sizes.initramfsUncompressed / MIB).toFixed(1)} MiB unpacked`);
      console.log(`  boot ISO template ${(m.sizes.bootIso / MIB).toFixed(1)} MiB`);
      console.log(`  modules           ${m.modules.loaded.length} files`);
      console.log(`  digest            sha256:${m.digest}`);
      const t = process.hrtime.bigint();
      let bytes = 0;
      const config = { apiUrl: 'http://10.0.2.100:7386', token: `ingotagent_${'A'.repeat(43)}`, hostUid: '00000000-0000-4000-8000-000000000001', bootId: '00000000-0000-4000-8000-000000000002' };
      for await (const chunk of hostBootIso(built.bootIso, built.bootIso.size, config)) bytes += (chunk as Buffer).length;
      console.log(`  one host's medium streamed: ${(bytes / MIB).toFixed(1)} MiB in ${(Number(process.hrtime.bigint() - t) / 1e6).toFixed(0)} ms`);
    }
  }
  console.log(`reproducible: ${digests[0] === digests[1] ? 'yes, same digest' : `NO: ${digests.join(' vs ')}`}`);
  console.log(`boot ISO template: ${isoDigests[0] === isoDigests[1] ? 'same sha256 too' : `differs (${isoDigests.join(' vs ')})`}`);
  console.log(`load average after: ${load()}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
