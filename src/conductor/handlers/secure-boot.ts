// UEFI secure boot around a deploy (DESIGN.md "Host lifecycle": "enable secure boot when the
// node type or host asks for it and verify it took effect"; cleaning resets it to the baseline).
// The order follows Ironic's boot interfaces: prepare_instance enables secure boot after the
// image is written and before the reboot into it, clean_up_instance turns it off before the
// cleaning ramdisk boots, so the next tenant (and the agent) start from the disabled baseline.
// A deploy also makes sure it is off before booting the agent: the OS of a host that does not
// ask for secure boot then never boots with it, and a verification failure retried from the
// top starts from the baseline again.
//
// Redfish SecureBoot (DSP2046, SecureBoot 1.1): SecureBootEnable is the setting for the next
// boot, SecureBootCurrentBoot what the running boot has. "It took effect" is therefore read
// from currentBoot after the host has booted the new OS, never from the setting.
import { BmcAuthenticationError, BmcRefused } from '../../drivers/driver.js';
import type { Host } from '../../model/host.js';
import type { EventNote, Outcome } from '../outcome.js';
import { step } from './steps.js';
import type { BmcAccess, HandlerContext } from './types.js';

/** stepState keys of the secure-boot sub-steps. */
export const SECURE_BOOT_STEP = {
  /** Provisioning: secure boot was made off before the agent boots (the baseline), or cannot be. */
  off: 'secureBootOff',
  /** Provisioning, UEFISecureBoot: secure boot was enabled for the boot into the new OS. */
  on: 'secureBootOn',
  /** Provisioning: when verification of the running boot started (ms), for its timeout. */
  verifySince: 'secureBootVerifySince',
  /** Deprovisioning: secure boot was reset to the disabled baseline (or cannot be, and was noted). */
  reset: 'secureBootReset',
  /** Provisioning: spec.bootMode when the deploy started, fixed like the image (an edit applies to the next deploy). */
  bootMode: 'deployBootMode',
} as const;

/** The host's effective boot mode: the one fixed when the deploy started, else spec.bootMode. */
export function effectiveBootMode(host: Host): string {
  const fixed = host.status.stepState?.[SECURE_BOOT_STEP.bootMode];
  return typeof fixed === 'string' ? fixed : (host.spec.bootMode ?? 'UEFI');
}

/** Whether the host's effective boot mode asks for UEFI secure boot. */
export function wantsSecureBoot(host: Host): boolean {
  return effectiveBootMode(host) === 'UEFISecureBoot';
}

/**
 * Why `host` cannot be deployed with secure boot, before anything touches it; undefined when it
 * can (or does not ask). Reads no BMC: the driver's parts and the inspection result say enough.
 */
export function secureBootRefusal(host: Host, bmc: BmcAccess): string | undefined {
  if (!wantsSecureBoot(host)) return undefined;
  if (!bmc.driver.secureBoot) {
    return `spec.bootMode is UEFISecureBoot but the ${bmc.driver.name} driver cannot manage UEFI secure boot, so Ingot could not enable or verify it; set spec.bootMode to UEFI, or manage this host through its Redfish BMC (spec.bmc.address redfish:// or redfish-virtualmedia://)`;
  }
  if (host.status.hardware?.secureBootCapable === false) {
    return 'spec.bootMode is UEFISecureBoot but inspection found that this host does not support UEFI secure boot; set spec.bootMode to UEFI, or use a host whose firmware supports secure boot';
  }
  return undefined;
}

type TurnOff = { kind: 'was-off' } | { kind: 'turned-off' } | { kind: 'unsupported' } | { kind: 'refused'; message: string };

/**
 * Makes secure boot's setting disabled, when the driver and the host have it at all. A BMC
 * that answers "no" (404: no SecureBoot resource; 400: not settable) is tolerated as
 * inspectOutOfBand does (no-agent.ts); wrong credentials are not.
 */
async function turnOff(ctx: HandlerContext, bmc: BmcAccess): Promise<TurnOff> {
  const secureBoot = bmc.driver.secureBoot;
  if (!secureBoot || ctx.host.status.hardware?.secureBootCapable === false) return { kind: 'unsupported' };
  try {
    const now = await secureBoot.get(bmc.target);
    if (!now.capable) return { kind: 'unsupported' };
    if (!now.enabled) return { kind: 'was-off' };
    await secureBoot.set(bmc.target, { enabled: false });
    return { kind: 'turned-off' };
  } catch (error) {
    if (error instanceof BmcRefused && !(error instanceof BmcAuthenticationError)) return { kind: 'refused', message: error.message };
    throw error;
  }
}

/**
 * Provisioning, before the agent boots: secure boot off, the same baseline cleaning leaves, so
 * the agent boots the same way on every host and a host not asking for secure boot (a legacy
 * boot cannot have it) never boots its new OS with it. Once (stepState); safe to repeat.
 */
export async function secureBootOffForDeploy(ctx: HandlerContext, bmc: BmcAccess): Promise<Outcome | undefined> {
  const state = step(ctx.host.status);
  if (state[SECURE_BOOT_STEP.off]) return undefined;
  const result = await turnOff(ctx, bmc);
  if (result.kind === 'unsupported') return undefined;
  state[SECURE_BOOT_STEP.off] = true;
  const events: EventNote[] = [];
  if (result.kind === 'turned-off') events.push({ type: 'Normal', reason: 'SecureBootDisabled', message: 'UEFI secure boot disabled before booting the agent' });
  if (result.kind === 'refused') events.push({ type: 'Warning', reason: 'SecureBootNotDisabled', message: `the BMC refused to disable UEFI secure boot: ${result.message}` });
  return { kind: 'save', events };
}

/**
 * Provisioning, UEFISecureBoot, after the image is written and before the reboot into it:
 * secure boot on. Once (stepState); safe to repeat.
 */
export async function enableSecureBootForOs(ctx: HandlerContext, bmc: BmcAccess): Promise<Outcome | undefined> {
  const state = step(ctx.host.status);
  if (!wantsSecureBoot(ctx.host) || state[SECURE_BOOT_STEP.on]) return undefined;
  // secureBootRefusal was checked when the step started: the driver has the part.
  await bmc.driver.secureBoot!.set(bmc.target, { enabled: true });
  state[SECURE_BOOT_STEP.on] = true;
  return { kind: 'save', events: [{ type: 'Normal', reason: 'SecureBootEnabled', message: 'UEFI secure boot enabled for the boot into the new OS (spec.bootMode UEFISecureBoot)' }] };
}

/**
 * Provisioning, once power reads on after the reboot into the new OS: the running boot must have
 * secure boot on. The BMC learns it from the firmware during POST, so a `false` is polled until
 * `secureBootVerifyTimeoutMs`; undefined means the host is verified (or did not ask).
 */
export async function verifySecureBoot(ctx: HandlerContext, bmc: BmcAccess): Promise<Outcome | undefined> {
  if (!wantsSecureBoot(ctx.host)) return undefined;
  const state = step(ctx.host.status);
  const now = await bmc.driver.secureBoot!.get(bmc.target);
  if (now.currentBoot === true) return undefined;
  if (now.currentBoot === undefined) {
    return {
      kind: 'failed',
      errorType: 'provisioning',
      message: 'secure boot could not be verified: the BMC does not report whether the running boot has secure boot on (Redfish SecureBootCurrentBoot); set spec.bootMode to UEFI to provision without secure boot, or update the BMC firmware',
    };
  }
  const since = state[SECURE_BOOT_STEP.verifySince];
  if (typeof since !== 'number') {
    state[SECURE_BOOT_STEP.verifySince] = ctx.clock.now();
    return { kind: 'save' };
  }
  if (ctx.clock.now() - since < ctx.config.secureBootVerifyTimeoutMs) return { kind: 'wait', afterMs: ctx.config.powerPollMs };
  return {
    kind: 'failed',
    errorType: 'provisioning',
    message: `secure boot did not take effect: ${Math.round(ctx.config.secureBootVerifyTimeoutMs / 1000)} s after booting the new OS the BMC reports the running boot without secure boot (setting ${
      now.enabled ? 'enabled' : 'disabled'
    }); check that the firmware's secure boot keys accept the image's boot loader, or set spec.bootMode to UEFI`,
  };
}

/**
 * Deprovisioning, before the cleaning ramdisk boots: secure boot back to the disabled baseline
 * so the next tenant starts clean. Once (recorded in stepState, so a restarted conductor skips
 * it); a host or driver without secure boot has nothing to reset and saves nothing.
 */
export async function resetSecureBoot(ctx: HandlerContext, bmc: BmcAccess): Promise<Outcome | undefined> {
  const status = ctx.host.status;
  const state = step(status);
  if (state[SECURE_BOOT_STEP.reset]) return undefined;
  const result = await turnOff(ctx, bmc);
  if (result.kind === 'unsupported') return undefined;
  state[SECURE_BOOT_STEP.reset] = true;
  delete status.provisioning.secureBoot;
  const events: EventNote[] = [];
  if (result.kind === 'turned-off') events.push({ type: 'Normal', reason: 'SecureBootReset', message: 'UEFI secure boot reset to disabled (the cleaning baseline)' });
  if (result.kind === 'refused') events.push({ type: 'Warning', reason: 'SecureBootNotReset', message: `the BMC refused to reset UEFI secure boot to disabled: ${result.message}` });
  return { kind: 'save', events };
}
