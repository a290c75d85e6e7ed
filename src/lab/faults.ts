// Faults a lab system can be told to show, so drivers and the conductor can be tested against
// the ways real BMCs misbehave: slowness, bursts of 5xx, dropped connections, ignored power
// commands, failing disks. Faults live in memory only: restarting the lab clears them.
import { Type, type Static } from 'typebox';
import { Compile } from 'typebox/compile';

export const FaultPatch = Type.Object(
  {
    /** Every Redfish response for the system is delayed by this many milliseconds. */
    delayMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 120_000 })),
    /** The next N Redfish requests for the system answer with `errorStatus` (default 503). */
    errorBurst: Type.Optional(Type.Integer({ minimum: 0, maximum: 100_000 })),
    errorStatus: Type.Optional(Type.Integer({ minimum: 500, maximum: 599 })),
    /** The next N Redfish requests for the system have their connection destroyed unanswered. */
    dropConnections: Type.Optional(Type.Integer({ minimum: 0, maximum: 100_000 })),
    /** Reset actions answer success and change nothing. */
    ignorePower: Type.Optional(Type.Boolean()),
    /** Indexes of drives whose writes fail (read by whatever writes to the lab's disks). */
    failDriveWrites: Type.Optional(Type.Array(Type.Integer({ minimum: 0, maximum: 31 }), { maxItems: 32 })),
  },
  { additionalProperties: false },
);
export type FaultPatch = Static<typeof FaultPatch>;
export const checkFaultPatch = Compile(FaultPatch);

export interface SystemFaults {
  delayMs: number;
  errorBurst: number;
  errorStatus: number;
  dropConnections: number;
  ignorePower: boolean;
  failDriveWrites: number[];
  /** Reset actions answered with success and ignored since the fault was set (read-only). */
  ignoredResets: number;
}

export function noFaults(): SystemFaults {
  return { delayMs: 0, errorBurst: 0, errorStatus: 503, dropConnections: 0, ignorePower: false, failDriveWrites: [], ignoredResets: 0 };
}

/** What the service must do with one request, decided (and counters consumed) in one place. */
export type FaultVerdict = { kind: 'drop' } | { kind: 'error'; status: number; delayMs: number } | { kind: 'serve'; delayMs: number };

export class FaultBook {
  readonly #bySystem = new Map<string, SystemFaults>();

  get(systemId: string): SystemFaults {
    return this.#bySystem.get(systemId) ?? noFaults();
  }

  /** Merges `patch` into the system's faults and returns the result. */
  set(systemId: string, patch: FaultPatch): SystemFaults {
    const next = { ...this.get(systemId) };
    if (patch.delayMs !== undefined) next.delayMs = patch.delayMs;
    if (patch.errorBurst !== undefined) next.errorBurst = patch.errorBurst;
    if (patch.errorStatus !== undefined) next.errorStatus = patch.errorStatus;
    if (patch.dropConnections !== undefined) next.dropConnections = patch.dropConnections;
    if (patch.ignorePower !== undefined) next.ignorePower = patch.ignorePower;
    if (patch.failDriveWrites !== undefined) next.failDriveWrites = [...new Set(patch.failDriveWrites)].sort((a, b) => a - b);
    this.#bySystem.set(systemId, next);
    return next;
  }

  clear(systemId: string): SystemFaults {
    this.#bySystem.delete(systemId);
    return noFaults();
  }

  /** Consumes one request's worth of the drop and error counters. Drops come before errors. */
  onRequest(systemId: string): FaultVerdict {
    const f = this.#bySystem.get(systemId);
    if (!f) return { kind: 'serve', delayMs: 0 };
    if (f.dropConnections > 0) {
      f.dropConnections--;
      return { kind: 'drop' };
    }
    if (f.errorBurst > 0) {
      f.errorBurst--;
      return { kind: 'error', status: f.errorStatus, delayMs: f.delayMs };
    }
    return { kind: 'serve', delayMs: f.delayMs };
  }

  /** Whether a Reset action is to be ignored; counts it when it is. */
  ignoresPower(systemId: string): boolean {
    const f = this.#bySystem.get(systemId);
    if (!f?.ignorePower) return false;
    f.ignoredResets++;
    return true;
  }

  /** True when writes to drive `index` of the system must fail (for the lab's disk writers). */
  driveWriteFails(systemId: string, index: number): boolean {
    return this.#bySystem.get(systemId)?.failDriveWrites.includes(index) ?? false;
  }
}
