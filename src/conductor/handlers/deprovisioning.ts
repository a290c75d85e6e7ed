// deprovisioning: clean what the last tenant left (cleaning.ts), end the agent session, reset
// the BIOS to its baseline, check the firmware against the approved inventory, and power off.
// Secure boot goes back to the disabled baseline first, before the cleaning ramdisk boots
// (secure-boot.ts), whatever the cleaning mode. A failed clean is an error of type
// deprovisioning whose retry comes back HERE (error.ts): the host never reaches available
// until a clean succeeds. An admin who fixes the cause (replaces a disk, heals the BMC) does
// nothing else: the next retry after the backoff cleans and the host resumes.
import { cannotClean, cleanedMessage, cleanHost } from './cleaning.js';
import { guarded } from './failures.js';
import { resetSecureBoot } from './secure-boot.js';
import { powerTo } from './steps.js';
import type { Handler } from './types.js';

export const deprovisioning: Handler = (ctx) =>
  guarded('deprovisioning', async () => {
    const { host } = ctx;
    const bmc = await ctx.bmc();
    const pending = cannotClean(ctx, bmc, 'deprovisioning') ?? (await resetSecureBoot(ctx, bmc)) ?? (await cleanHost(ctx, bmc, 'deprovisioning')) ?? (await powerTo(ctx, bmc, 'off'));
    if (pending) return pending;
    delete host.status.provisioning.image;
    delete host.status.provisioning.secureBoot;
    return { kind: 'advance', event: 'deprovisioned', message: cleanedMessage(ctx) };
  });
