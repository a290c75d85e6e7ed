// provisioning with the conductor's caching proxy (images.downloadSource: local): the image is
// verified in the cache before the host is booted, the agent gets the cache's URL, and a
// verification failure fails provisioning with the reason, with the host never touched.
import { describe, expect, it } from 'vitest';
import { ImageRefused } from '../../images/image-refused.js';
import { harness, host, IMAGE } from './test-kit.js';
import type { ImagePrepare, ImageProxy } from './types.js';

const PROXY_URL = `http://127.0.0.1:7386/agent/v1/images/${IMAGE.checksum}`;

/** Answers `downloading` `pending` times, then `final`; records what it was asked. */
function scriptedProxy(pending: number, final: ImagePrepare | (() => never)): ImageProxy & { asked: string[] } {
  const asked: string[] = [];
  let calls = 0;
  return {
    asked,
    async prepare(image) {
      asked.push(image.url);
      if (calls++ < pending) return { state: 'downloading', percent: calls * 10 };
      if (typeof final === 'function') return final();
      return final;
    },
  };
}

describe('provisioning through the image cache', () => {
  it('waits for the verified image before booting the host, then deploys the cache URL', async () => {
    const images = scriptedProxy(3, { state: 'ready', url: PROXY_URL });
    const h = harness({ images });
    const start = await h.run(host('provisioning').withImage().online());
    expect(start.outcome.kind).toBe('save');
    // While the cache downloads, the host is not booted and progress shows the download.
    const first = await h.run(start.host);
    expect(first.outcome.kind).toBe('save');
    expect(first.host.status.progress).toEqual({ step: 'image-download', percent: 10 });
    expect(h.fleet.machine('node-1').bootCount).toBe(0);
    const { outcome, host: done } = await h.drive(first.host);
    expect(outcome).toMatchObject({ kind: 'advance', event: 'provisioned' });
    expect(h.fleet.machine('node-1').bootCount).toBeGreaterThan(0);
    expect(h.fleet.machine('node-1').disk.written?.image.url).toBe(PROXY_URL);
    expect(h.fleet.machine('node-1').disk.written?.image.checksum).toBe(IMAGE.checksum);
    // status keeps the image the tenant asked for, not the proxy URL.
    expect(done.status.provisioning.image).toEqual(IMAGE);
    expect(images.asked.every((u) => u === IMAGE.url)).toBe(true);
  });

  it('a verification failure fails provisioning with the reason; the host is never booted', async () => {
    const h = harness({ images: scriptedProxy(1, { state: 'failed', message: 'backing-file: the qcow2 image names a backing file' }) });
    const { outcome } = await h.drive(host('provisioning').withImage().online());
    expect(outcome).toMatchObject({ kind: 'failed', errorType: 'provisioning', message: expect.stringContaining('backing-file: the qcow2 image names a backing file') });
    expect(h.fleet.machine('node-1').bootCount).toBe(0);
    expect(h.fleet.machine('node-1').disk.written).toBeUndefined();
  });

  it('an image spec the cache can never serve (plain HTTP when HTTPS is required) fails provisioning clearly', async () => {
    const refuse = () => {
      throw new ImageRefused('malformed', 'spec.image.url is plain HTTP but configuration demands HTTPS for images (images.requireHttps): publish the image over HTTPS');
    };
    const h = harness({ images: scriptedProxy(0, refuse) });
    const { outcome } = await h.drive(host('provisioning').withImage());
    expect(outcome).toMatchObject({ kind: 'failed', errorType: 'provisioning', message: expect.stringContaining('demands HTTPS') });
    expect(h.fleet.machine('node-1').disk.written).toBeUndefined();
  });
});
