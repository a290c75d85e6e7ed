// Lab personalities: documented behaviours of the BMCs operators own, so the driver is tested
// against more than one reading of DSP0266. `ingot lab --personality NAME` applies one to every
// system of the lab.
// - standard: everything the lab implements (sessions, tasks for Reset, InsertMedia actions, BIOS).
// - minimal: a small BMC firmware: no SessionService (HTTP Basic only), no Bios resource, no
//   VirtualMedia actions (media is inserted by PATCHing Image/Inserted on the slot, as older
//   iDRAC and OpenBMC builds did), Reset answered 204 without a task.
// - etag-required: PATCH without If-Match is refused with 428 Precondition Required (DSP0266
//   allows services to require ETags; HPE iLO 5 does for BIOS settings).
// - continuous-boot: a one-time boot override reads back as Continuous (some Supermicro BMCs
//   keep the override until it is cleared).
// - stuck-power: Reset is accepted (204) and PowerState never changes, as a BMC whose power
//   controller is wedged does.
export const PERSONALITIES = ['standard', 'minimal', 'etag-required', 'continuous-boot', 'stuck-power'] as const;
export type PersonalityName = (typeof PERSONALITIES)[number];

export interface Personality {
  name: PersonalityName;
  sessions: boolean;
  bios: boolean;
  mediaActions: boolean;
  /** Reset answered 202 with a task monitor while the transition runs (else 204). */
  resetTask: boolean;
  requireIfMatch: boolean;
  onceReadsContinuous: boolean;
  ignoresReset: boolean;
}

const STANDARD: Omit<Personality, 'name'> = {
  sessions: true,
  bios: true,
  mediaActions: true,
  resetTask: true,
  requireIfMatch: false,
  onceReadsContinuous: false,
  ignoresReset: false,
};

export function personality(name: PersonalityName = 'standard'): Personality {
  switch (name) {
    case 'standard':
      return { name, ...STANDARD };
    case 'minimal':
      return { name, ...STANDARD, sessions: false, bios: false, mediaActions: false, resetTask: false };
    case 'etag-required':
      return { name, ...STANDARD, requireIfMatch: true };
    case 'continuous-boot':
      return { name, ...STANDARD, onceReadsContinuous: true };
    case 'stuck-power':
      return { name, ...STANDARD, ignoresReset: true };
  }
}

export function parsePersonality(value: string): PersonalityName {
  if (!(PERSONALITIES as readonly string[]).includes(value)) throw new Error(`unknown lab personality "${value.slice(0, 40)}"; use one of ${PERSONALITIES.join(', ')}`);
  return value as PersonalityName;
}
