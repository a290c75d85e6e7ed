// `ingot host …`: list, show, events, create, delete, power, provision, deprovision.
import type { Command } from 'commander';
import type { IngotClient } from '../../client/index.js';
import { CHECKSUM_TYPES, IMAGE_FORMATS, type Host } from '../../model/host.js';
import { CliError } from '../cli-error.js';
import type { CommandContext } from '../context.js';
import { parseDuration } from '../duration.js';
import { describeHost, eventsTable, hostsTable, parseOutputFormat, render } from '../output.js';
import { parseWaitTarget, waitForHosts } from '../wait.js';
import { applyCommand } from './apply.js';

const OUTPUT_HELP = 'output format: table (default), json, yaml';

export function registerHosts(program: Command, ctx: CommandContext): void {
  const host = program.command('host').alias('hosts').description('list, inspect and operate hosts (physical servers)');

  host
    .command('list')
    .description('list hosts')
    .option('-l, --selector <selector>', 'label selector, e.g. rack=r1,tier!=gold')
    .option('-o, --output <format>', OUTPUT_HELP)
    .action(ctx.run(async (opts: { selector?: string; output?: string }) => {
      const format = parseOutputFormat(opts.output);
      const items = await ctx.client().hosts.listAll({ labelSelector: opts.selector });
      if (format === 'table' && items.length === 0) {
        ctx.out.write(opts.selector ? `no hosts match ${opts.selector}\n` : 'no hosts yet; enroll one with `ingot apply -f host.yaml`\n');
        return;
      }
      ctx.out.write(render({ apiVersion: 'ingot.dev/v1', kind: 'HostList', items }, format, () => hostsTable(items)));
    }));

  host
    .command('show')
    .alias('get')
    .description('show one host: state, power, errors, hardware, operation history')
    .argument('<name>')
    .option('-o, --output <format>', OUTPUT_HELP)
    .action(ctx.run(async (name: string, opts: { output?: string }) => {
      const format = parseOutputFormat(opts.output);
      const h = await ctx.client().hosts.get(name);
      ctx.out.write(render(h, format, () => describeHost(h)));
    }));

  host
    .command('events')
    .description("a host's timeline: state changes, power actions, errors")
    .argument('<name>')
    .option('--after-id <id>', 'only events after this id')
    .option('--limit <n>', 'at most this many events', '200')
    .option('-o, --output <format>', OUTPUT_HELP)
    .action(ctx.run(async (name: string, opts: { afterId?: string; limit?: string; output?: string }) => {
      const format = parseOutputFormat(opts.output);
      const limit = positiveInt(opts.limit ?? '200', '--limit', 1000);
      const afterId = opts.afterId === undefined ? undefined : positiveInt(opts.afterId, '--after-id', Number.MAX_SAFE_INTEGER, 0);
      const events = await ctx.client().hosts.events(name, { afterId, limit });
      if (format === 'table' && events.length === 0) {
        ctx.out.write(`no events for host/${name} yet\n`);
        return;
      }
      ctx.out.write(render({ items: events }, format, () => eventsTable(events)));
    }));

  host
    .command('create')
    .description('create or update hosts from a manifest file (like `ingot apply`, Hosts only)')
    .requiredOption('-f, --filename <file>', 'manifest file, or - for standard input')
    .option('--wait <state>', 'wait until every host reaches this state')
    .option('--timeout <duration>', 'how long --wait waits', '30m')
    .option('-o, --output <format>', OUTPUT_HELP)
    .action(ctx.run(async (opts: { filename: string; wait?: string; timeout?: string; output?: string }) => {
      await applyCommand(ctx, { file: opts.filename, wait: opts.wait, timeout: opts.timeout, output: opts.output }, ['Host']);
    }));

  host
    .command('delete')
    .description('delete a host: the conductor cleans it (if a tenant may have left data), powers it off and removes it')
    .argument('<name>')
    .option('--force', 'delete it although a claim holds it (always held for a second admin\'s approval)')
    .option('--wait', 'wait until the host is gone')
    .option('--timeout <duration>', 'how long --wait waits', '30m')
    .action(ctx.run(async (name: string, opts: { wait?: boolean; timeout?: string; force?: boolean }) => {
      if (opts.wait) parseDuration(opts.timeout ?? '30m');
      const client = ctx.client();
      const answer = (await client.hosts.delete(name, { force: opts.force === true })) as { kind?: string; id?: string; message?: string } | undefined;
      if (answer?.kind === 'Approval') {
        // The two-person rule held it (src/server/approvals/): nothing was deleted.
        ctx.out.write(`host/${name} deletion held for approval ${answer.id}: ${answer.message ?? 'another admin must approve it'}\n`);
        return;
      }
      ctx.out.write(`host/${name} deletion requested\n`);
      if (opts.wait) await waitForHosts(client, [name], 'deleted', { timeout: opts.timeout }, ctx.out);
    }));

  host
    .command('power')
    .description('set the desired power state (spec.online)')
    .argument('<name>')
    .argument('<state>', 'on or off')
    .option('--wait [state]', 'wait until the host reports the new power state, or (given a STATE) reaches that provisioning state')
    .option('--timeout <duration>', 'how long --wait waits', '30m')
    .option('-o, --output <format>', OUTPUT_HELP)
    .action(ctx.run(async (name: string, state: string, opts: { wait?: string | boolean; timeout?: string; output?: string }) => {
      if (state !== 'on' && state !== 'off') throw new CliError(`power state "${state}" is not valid; use on or off`);
      const format = parseOutputFormat(opts.output);
      const target = typeof opts.wait === 'string' ? parseWaitTarget(opts.wait) : undefined;
      const timeoutMs = parseDuration(opts.timeout ?? '30m');
      const client = ctx.client();
      const h = await client.hosts.patch(name, { spec: { online: state === 'on' } });
      ctx.out.write(render(h, format, () => `host/${name} power ${state} requested\n`));
      if (target) await waitForHosts(client, [name], target, { timeout: opts.timeout }, ctx.out);
      else if (opts.wait === true) await waitForPower(client, name, state === 'on', timeoutMs, ctx);
    }));

  host
    .command('provision')
    .description('write an OS image to the host (sets spec.image)')
    .argument('<name>')
    .requiredOption('--image-url <url>', 'where the image is downloaded from')
    .requiredOption('--checksum <hex>', 'hex digest of the image')
    .option('--checksum-type <type>', `one of ${CHECKSUM_TYPES.join(', ')}`, 'sha256')
    .option('--format <format>', `one of ${IMAGE_FORMATS.join(', ')}`)
    .option('--wait <state>', 'wait until the host reaches this state (e.g. provisioned)')
    .option('--timeout <duration>', 'how long --wait waits', '30m')
    .option('-o, --output <format>', OUTPUT_HELP)
    .action(ctx.run(async (name: string, opts: { imageUrl: string; checksum: string; checksumType: string; format?: string; wait?: string; timeout?: string; output?: string }) => {
      const format = parseOutputFormat(opts.output);
      if (!(CHECKSUM_TYPES as readonly string[]).includes(opts.checksumType)) throw new CliError(`--checksum-type ${opts.checksumType}: use one of ${CHECKSUM_TYPES.join(', ')}`);
      if (opts.format && !(IMAGE_FORMATS as readonly string[]).includes(opts.format)) throw new CliError(`--format ${opts.format}: use one of ${IMAGE_FORMATS.join(', ')}`);
      if (!/^[0-9a-fA-F]{32,128}$/.test(opts.checksum)) throw new CliError('--checksum must be the hex digest of the image (32 to 128 hex digits), e.g. the output of `sha256sum IMAGE`');
      const target = opts.wait ? parseWaitTarget(opts.wait) : undefined;
      parseDuration(opts.timeout ?? '30m');
      const image: Record<string, string> = { url: opts.imageUrl, checksum: opts.checksum, checksumType: opts.checksumType };
      if (opts.format) image.format = opts.format;
      const client = ctx.client();
      const h = await client.hosts.patch(name, { spec: { image } });
      ctx.out.write(render(h, format, () => `host/${name} provisioning requested (${opts.imageUrl})\n`));
      // "provisioned" counts only with this image: the host may have been provisioned with another.
      const withThisImage = (x: Host) => x.status?.provisioning?.image?.url === opts.imageUrl && x.status.provisioning.image?.checksum === opts.checksum;
      if (target) await waitForHosts(client, [name], target, { timeout: opts.timeout, ...(target === 'provisioned' ? { accept: withThisImage } : {}) }, ctx.out);
    }));

  host
    .command('deprovision')
    .description('remove the image (clears spec.image): the host is cleaned and becomes available')
    .argument('<name>')
    .option('--wait <state>', 'wait until the host reaches this state (e.g. available)')
    .option('--timeout <duration>', 'how long --wait waits', '30m')
    .option('-o, --output <format>', OUTPUT_HELP)
    .action(ctx.run(async (name: string, opts: { wait?: string; timeout?: string; output?: string }) => {
      const format = parseOutputFormat(opts.output);
      const target = opts.wait ? parseWaitTarget(opts.wait) : undefined;
      parseDuration(opts.timeout ?? '30m');
      const client = ctx.client();
      const h = await client.hosts.patch(name, { spec: { image: null } });
      ctx.out.write(render(h, format, () => `host/${name} deprovisioning requested\n`));
      if (target) await waitForHosts(client, [name], target, { timeout: opts.timeout }, ctx.out);
    }));
}

function positiveInt(text: string, flag: string, max: number, min = 1): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) throw new CliError(`${flag} ${text}: use a whole number from ${min} to ${max}`);
  return n;
}

async function waitForPower(client: IngotClient, name: string, on: boolean, timeoutMs: number, ctx: CommandContext): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: Host | undefined;
  while (Date.now() < deadline) {
    last = await client.hosts.get(name);
    if (last.status?.poweredOn === on) {
      ctx.out.write(`host/${name} is powered ${on ? 'on' : 'off'}\n`);
      return;
    }
    if (last.status?.provisioning?.state === 'error') {
      throw new CliError(`host ${name} failed in error: ${last.status.errorType}: ${last.status.errorMessage}\n  see what happened: ingot host events ${name}`);
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw new CliError(`host ${name} did not power ${on ? 'on' : 'off'} within ${Math.round(timeoutMs / 1000)}s; see \`ingot host events ${name}\``);
}
