// preparing: apply BIOS settings, RAID and firmware requested in spec. Nothing of that can be
// requested yet, so the host is prepared at once; the state exists so that adding those steps
// later changes one handler, not the lifecycle.
import type { Handler } from './types.js';

export const preparing: Handler = async () => ({ kind: 'advance', event: 'prepared', message: 'nothing to prepare' });
