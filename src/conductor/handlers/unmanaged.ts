// unmanaged: no BMC details, so nothing to do until spec.bmc is set.
import type { Handler } from './types.js';

export const unmanaged: Handler = async (ctx) =>
  ctx.host.spec.bmc ? { kind: 'advance', event: 'register', message: 'spec.bmc set' } : { kind: 'wait', afterMs: ctx.config.idleRecheckMs };
