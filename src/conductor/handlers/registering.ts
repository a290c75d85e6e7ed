// registering: prove we can manage the host. Resolve the credentials secret, talk to the BMC
// (TLS verified unless spec.bmc.disableCertificateVerification), and check that the boot MAC
// the admin wrote belongs to the system the BMC describes: a typo there would otherwise send
// another server's disk to the next tenant.
import type { HostCondition } from '../../model/host.js';
import type { EventNote } from '../outcome.js';
import { guarded, outcomeOfError } from './failures.js';
import { FAILED_CREDENTIALS_VERSION } from './error.js';
import type { Handler } from './types.js';

export const CERT_VERIFICATION_DISABLED = 'CertificateVerificationDisabled';
export const BASIC_AUTH_FALLBACK = 'BmcBasicAuthentication';

export const registering: Handler = (ctx) =>
  guarded('registration', async () => {
    const { host } = ctx;
    const status = host.status;
    // Credentials first: every failure after this point remembers which secret version it
    // used, so that error.ts retries at once on a new version, and only then.
    const { version } = await ctx.credentials.resolve(host);
    const remember = { [FAILED_CREDENTIALS_VERSION]: version };
    let bmc;
    let identity;
    try {
      bmc = await ctx.bmc();
      identity = await bmc.driver.identify(bmc.target);
    } catch (error) {
      // Remember which credentials failed: a new secret version retries at once (error.ts).
      const outcome = outcomeOfError(error, 'registration');
      return outcome.kind === 'failed' ? { ...outcome, remember } : outcome;
    }

    const bootMac = host.spec.bootMACAddress?.toLowerCase();
    const macs = identity.macAddresses?.map((m) => m.toLowerCase());
    if (bootMac && macs && macs.length > 0 && !macs.includes(bootMac)) {
      return {
        kind: 'failed',
        errorType: 'registration',
        message: `spec.bootMACAddress ${bootMac} is not a NIC of the system at ${host.spec.bmc!.address} (it reports ${macs.join(', ')}); correct spec.bootMACAddress or spec.bmc.address`,
        remember,
      };
    }

    const events: EventNote[] = [];
    const conditions = status.conditions.filter((c) => c.type !== CERT_VERIFICATION_DISABLED);
    if (host.spec.bmc?.disableCertificateVerification) {
      const existing = status.conditions.find((c) => c.type === CERT_VERIFICATION_DISABLED);
      const condition: HostCondition = existing ?? {
        type: CERT_VERIFICATION_DISABLED,
        status: 'True',
        reason: 'DisabledInSpec',
        message: 'spec.bmc.disableCertificateVerification is set: the BMC’s identity is not verified; set spec.bmc.caBundleName instead',
        lastTransitionTime: new Date(ctx.clock.now()).toISOString(),
      };
      conditions.push(condition);
      if (!existing) events.push({ type: 'Warning', reason: CERT_VERIFICATION_DISABLED, message: condition.message });
    }
    // Said once: the condition stays while the BMC keeps refusing sessions, the event marks its start.
    const basicNow = identity.authenticationNote;
    const hadBasic = status.conditions.find((c) => c.type === BASIC_AUTH_FALLBACK);
    const withoutBasic = conditions.filter((c) => c.type !== BASIC_AUTH_FALLBACK);
    if (basicNow) {
      withoutBasic.push(
        hadBasic ?? { type: BASIC_AUTH_FALLBACK, status: 'True', reason: 'SessionRefused', message: basicNow, lastTransitionTime: new Date(ctx.clock.now()).toISOString() },
      );
      if (!hadBasic) events.push({ type: 'Warning', reason: BASIC_AUTH_FALLBACK, message: basicNow });
    }
    status.conditions = withoutBasic;
    status.goodCredentials = { name: bmc.resolved.secretName, version: bmc.resolved.version };
    if (host.spec.externallyProvisioned) {
      return { kind: 'advance', event: 'manage', message: `registered ${identity.systemId}; externally provisioned`, events };
    }
    return { kind: 'advance', event: 'registered', message: `registered ${identity.systemId}`, events };
  });
