// provisioning: boot the agent, have it write spec.image and a config drive, make the disk the
// persistent boot device, end the agent session and power the host per spec.online (a reboot
// into the new OS when online). The image is fixed in stepState when the step starts, so an
// edit of spec.image mid-deploy finishes the deploy in progress and is then handled by
// provisioned (deprovision, then provision the new image).
import type { ImageSpec } from '../../model/host.js';
import { guarded } from './failures.js';
import { noAgentMessage } from './no-agent.js';
import { bootAgent, bootModeOf, finishAgent, powerTo, runAgentOperation, step, STEP } from './steps.js';
import type { Handler } from './types.js';

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
      state[STEP.image] = host.spec.image;
      return { kind: 'save' };
    }
    const image = state[STEP.image] as ImageSpec;
    const bmc = await ctx.bmc();
    const pending =
      (await bootAgent(ctx, bmc)) ??
      (await runAgentOperation(ctx, {
        errorType: 'provisioning',
        progressStep: 'deploy',
        request: async () => {
          const userData = await ctx.credentials.userData(host);
          return {
            kind: 'deploy',
            deploy: {
              image,
              ...(host.spec.rootDeviceHints ? { rootDeviceHints: host.spec.rootDeviceHints } : {}),
              configDrive: {
                // OpenStack config-drive meta_data keys, as cloud-init reads them.
                metaData: { uuid: host.metadata.uid, name: host.metadata.name, hostname: host.metadata.name },
                ...(userData !== undefined ? { userData } : {}),
              },
            },
          };
        },
      }));
    if (pending) return pending;
    if (!state[STEP.agentFinished]) {
      await bmc.driver.boot.setBootDevice(bmc.target, { device: 'hdd', persistent: true, mode: bootModeOf(ctx) });
    }
    const finishing = await finishAgent(ctx, bmc);
    if (finishing) return finishing;
    if (host.spec.online) {
      if (state[STEP.rebootAt] === undefined) {
        await bmc.driver.power.reboot(bmc.target, { mode: 'hard' });
        state[STEP.rebootAt] = ctx.clock.now();
        return { kind: 'save' };
      }
      const powering = await powerTo(ctx, bmc, 'on');
      if (powering) return powering;
    } else {
      const powering = await powerTo(ctx, bmc, 'off');
      if (powering) return powering;
    }
    status.provisioning.image = image;
    status.provisioning.bootMode = host.spec.bootMode ?? 'UEFI';
    return { kind: 'advance', event: 'provisioned', message: `provisioned ${image.url}` };
  });
