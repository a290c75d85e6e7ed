// preparing: a server may arrive with someone's data on its disks, so before it first becomes
// available it is cleaned as deprovisioning cleans (Ironic's `provide` runs automated
// cleaning), unless spec.automatedCleaningMode is disabled. BIOS settings, RAID and firmware
// requested in spec would follow here; nothing of that can be requested yet.
import { cleanedMessage, cleanHost } from './cleaning.js';
import { guarded } from './failures.js';
import { powerTo } from './steps.js';
import type { Handler } from './types.js';

export const preparing: Handler = (ctx) =>
  guarded('preparation', async () => {
    const bmc = await ctx.bmc();
    const pending = (await cleanHost(ctx, bmc, 'preparation')) ?? (await powerTo(ctx, bmc, 'off'));
    if (pending) return pending;
    return { kind: 'advance', event: 'prepared', message: cleanedMessage(ctx) };
  });
