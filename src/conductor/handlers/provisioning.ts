// provisioning: boot the agent, have it write spec.image and a config drive, make the disk the
// persistent boot device, end the agent session and power the host per spec.online (a reboot
// into the new OS when online). The image is fixed in stepState when the step starts, so an
// edit of spec.image mid-deploy finishes the deploy in progress and is then handled by
// provisioned (deprovision, then provision the new image). With images.downloadSource: local
// the conductor's cache verifies the image first, before the host is booted (imageThroughCache).
// Secure boot (secure-boot.ts) is checked when the step starts and made off before the agent
// boots; for spec.bootMode UEFISecureBoot it is enabled after the image is written and verified
// on the running OS before the step is done.
// The config drive comes from the conductor's ConfigDriveSource when it has one for the host
// (a claim's user data and network data), else from spec.userDataName (buildConfigDrive).
import type { DeployRequest } from '../agent-port.js';
import { ConfigDriveProblem, readConfigDriveSource } from '../config-drive-source.js';
import type { Host, ImageSpec } from '../../model/host.js';
import { guarded } from './failures.js';
import { noAgentMessage } from './no-agent.js';
import { effectiveBootMode, enableSecureBootForOs, SECURE_BOOT_STEP, secureBootOffForDeploy, secureBootRefusal, verifySecureBoot, wantsSecureBoot } from './secure-boot.js';
import { bootAgent, bootModeOf, finishAgent, powerTo, runAgentOperation, step, STEP } from './steps.js';
import type { Handler, HandlerContext } from './types.js';
import type { EventNote, Outcome } from '../outcome.js';
import { ImageRefused } from '../../images/image-refused.js';
import { IngotError } from '../../model/errors.js';

/** stepState key: the image was verified in the conductor's cache (until the agent started). */
const IMAGE_CACHED = 'imageCached';

/**
 * With the caching proxy, the image is downloaded, verified and inspected by the conductor
 * BEFORE the host is booted for the deploy: a bad image fails here, with nothing written and no
 * host powered on; the agent then fetches the verified copy from the agent listener (and checks
 * the digest again). Without the proxy, the agent downloads spec.image.url itself.
 */
async function imageThroughCache(ctx: HandlerContext, image: ImageSpec): Promise<{ kind: 'ready'; image: ImageSpec } | { kind: 'pending'; outcome: Outcome }> {
  if (!ctx.images) return { kind: 'ready', image };
  const state = step(ctx.host.status);
  // Once the agent has the deploy, the cache has done its part (the URL went with the command).
  if (state[STEP.agentStarted] || state[STEP.agentDone]) return { kind: 'ready', image };
  let prepared;
  try {
    prepared = await ctx.images.prepare(image);
  } catch (error) {
    if (!(error instanceof IngotError)) throw error;
    const reason = error instanceof ImageRefused ? `${error.reason}: ` : '';
    return { kind: 'pending', outcome: { kind: 'failed', errorType: 'provisioning', message: `the conductor's image cache refused spec.image: ${reason}${error.message}` } };
  }
  if (prepared.state === 'failed') {
    return { kind: 'pending', outcome: { kind: 'failed', errorType: 'provisioning', message: `the conductor's image cache could not verify spec.image: ${prepared.message}` } };
  }
  if (prepared.state === 'downloading') {
    const percent = prepared.percent ?? 0;
    const status = ctx.host.status;
    if (status.progress?.step !== 'image-download' || status.progress.percent !== percent) {
      status.progress = { step: 'image-download', percent };
      return { kind: 'pending', outcome: { kind: 'save' } };
    }
    return { kind: 'pending', outcome: { kind: 'wait', afterMs: ctx.config.agentPollMs } };
  }
  if (!state[IMAGE_CACHED]) {
    state[IMAGE_CACHED] = true;
    if (ctx.host.status.progress?.step === 'image-download') delete ctx.host.status.progress;
    return { kind: 'pending', outcome: { kind: 'save', events: [{ type: 'Normal', reason: 'ImageCached', message: `image ${image.checksum.slice(0, 16)}… verified in the conductor's cache` }] } };
  }
  return { kind: 'ready', image: { ...image, url: prepared.url } };
}

/**
 * The deploy's config drive. With a ConfigDriveSource that knows the host, its user data and
 * network data are used and its meta data merged over the defaults; its secret use is reported
 * for the audit trail. Otherwise user data comes from spec.userDataName. Throws
 * ConfigDriveProblem (a provisioning failure) or CredentialsProblem (wait for the secret).
 */
async function buildConfigDrive(ctx: HandlerContext, host: Host): Promise<NonNullable<DeployRequest['configDrive']>> {
  // OpenStack config-drive meta_data keys, as cloud-init reads them.
  const metaData: Record<string, unknown> = { uuid: host.metadata.uid, name: host.metadata.name, hostname: host.metadata.name };
  const external = ctx.configDriveSource ? await readConfigDriveSource(ctx.configDriveSource, host) : undefined;
  if (external) {
    if (external.secretUse && ctx.reportSecretUse) {
      const use = external.secretUse;
      try {
        ctx.reportSecretUse({
          secretName: use.secretName,
          secretProject: use.secretProject,
          secretVersion: use.secretVersion,
          hostName: host.metadata.name,
          hostUid: host.metadata.uid,
          purpose: 'user-data',
          hostState: host.status.provisioning.state,
        });
      } catch {
        // The reporter logs its own failures; it must not break the deploy it observes.
      }
    }
    return {
      metaData: { ...metaData, ...external.metaData },
      ...(external.userData !== undefined ? { userData: external.userData } : {}),
      ...(external.networkData !== undefined ? { networkData: external.networkData } : {}),
    };
  }
  const userData = await ctx.credentials.userData(host);
  return { metaData, ...(userData !== undefined ? { userData } : {}) };
}

export const provisioning: Handler = (ctx) =>
  guarded('provisioning', async () => {
    const { host } = ctx;
    const status = host.status;
    const state = step(status);
    if (state[STEP.image] === undefined) {
      if (!host.spec.image) {
        // Cleared before anything was written to the disk: nothing to deploy, nothing to clean
        // beyond what deprovisioning does anyway.
        return { kind: 'failed', errorType: 'provisioning', message: 'spec.image was removed before provisioning started; set spec.image again or leave the host to be deprovisioned' };
      }
      if (!ctx.hasAgent()) {
        // Checked before anything touches the host: nothing is written, nothing to clean.
        const bmc = await ctx.bmc();
        return {
          kind: 'failed',
          errorType: 'provisioning',
          message: noAgentMessage(bmc.driver.name, 'deploying', 'this host cannot be provisioned by Ingot until then: remove spec.image, or set spec.externallyProvisioned if it already runs its OS'),
        };
      }
      if (wantsSecureBoot(host)) {
        // Also checked before anything touches the host: a deploy that would end without the
        // secure boot its tenant asked for must not start.
        const refusal = secureBootRefusal(host, await ctx.bmc());
        if (refusal) return { kind: 'failed', errorType: 'provisioning', message: refusal };
      }
      state[STEP.image] = host.spec.image;
      state[SECURE_BOOT_STEP.bootMode] = host.spec.bootMode ?? 'UEFI';
      return { kind: 'save' };
    }
    const image = state[STEP.image] as ImageSpec;
    const cached = await imageThroughCache(ctx, image);
    if (cached.kind !== 'ready') return cached.outcome;
    const bmc = await ctx.bmc();
    let pending: Outcome | undefined;
    try {
      pending =
        (await secureBootOffForDeploy(ctx, bmc)) ??
        (await bootAgent(ctx, bmc)) ??
        (await runAgentOperation(ctx, {
          errorType: 'provisioning',
          progressStep: 'deploy',
          request: async () => ({
            kind: 'deploy',
            deploy: {
              image: cached.image,
              ...(host.spec.rootDeviceHints ? { rootDeviceHints: host.spec.rootDeviceHints } : {}),
              // A retry after a failed deploy (the engine keeps errorType across `retry`): the
              // failed one may have written part of its image and, if its agent died, erased nothing.
              ...(status.errorType === 'provisioning' ? { eraseFirst: true } : {}),
              configDrive: await buildConfigDrive(ctx, host),
            },
          }),
        }));
    } catch (error) {
      if (!(error instanceof ConfigDriveProblem)) throw error;
      return { kind: 'failed', errorType: 'provisioning', message: error.message };
    }
    if (pending) return pending;
    const secureBootOn = await enableSecureBootForOs(ctx, bmc);
    if (secureBootOn) return secureBootOn;
    if (!state[STEP.agentFinished]) {
      await bmc.driver.boot.setBootDevice(bmc.target, { device: 'hdd', persistent: true, mode: bootModeOf(ctx) });
    }
    const finishing = await finishAgent(ctx, bmc);
    if (finishing) return finishing;
    const events: EventNote[] = [];
    delete status.provisioning.secureBoot;
    if (host.spec.online) {
      if (state[STEP.rebootAt] === undefined) {
        await bmc.driver.power.reboot(bmc.target, { mode: 'hard' });
        state[STEP.rebootAt] = ctx.clock.now();
        return { kind: 'save' };
      }
      const powering = (await powerTo(ctx, bmc, 'on')) ?? (await verifySecureBoot(ctx, bmc));
      if (powering) return powering;
      if (wantsSecureBoot(host)) {
        status.provisioning.secureBoot = true;
        events.push({ type: 'Normal', reason: 'SecureBootVerified', message: 'the BMC reports the new OS running with UEFI secure boot on (SecureBootCurrentBoot Enabled)' });
      }
    } else {
      const powering = await powerTo(ctx, bmc, 'off');
      if (powering) return powering;
      if (wantsSecureBoot(host)) {
        // Nothing runs, so nothing can be verified: the setting is what can be checked now.
        if (!(await bmc.driver.secureBoot!.get(bmc.target)).enabled) {
          return { kind: 'failed', errorType: 'provisioning', message: 'secure boot did not take effect: the BMC reports the secure boot setting disabled after enabling it; check the BMC, or set spec.bootMode to UEFI' };
        }
        events.push({ type: 'Normal', reason: 'SecureBootNotVerified', message: 'UEFI secure boot is enabled for the next boot; it was not verified on a running OS because spec.online is false' });
      }
    }
    status.provisioning.image = image;
    status.provisioning.bootMode = effectiveBootMode(host);
    return { kind: 'advance', event: 'provisioned', message: `provisioned ${image.url}`, events };
  });
