// `ingot claim …` and `ingot claimset …`: a project's machines. Claims are made in a project
// (--project, INGOT_PROJECT or the login default); user data goes in from a file or a project
// secret and is never printed (the API answers it as "[sealed]").
import type { Command } from 'commander';
import type { ClaimInput, ClaimSetInput } from '../../client/index.js';
import { MAX_USER_DATA_BYTES } from '../../model/claim.js';
import { CLAIM_SET_LABEL } from '../../model/claim.js';
import { checkName, claimSpecFromFlags, collect, parseLabels, type ClaimFlags } from '../claim-input.js';
import { waitClaim, waitClaimSetGone, waitClaimSet } from '../claim-wait.js';
import type { CommandContext } from '../context.js';
import { parseDuration } from '../duration.js';
import { parseOutputFormat, render } from '../output.js';
import { parseWholeNumber } from '../positive-int.js';
import { claimSetsTable, claimsTable, describeClaim, describeClaimSet } from '../tenancy-output.js';
import { deleteMessage } from './platform-kinds.js';

const OUTPUT_HELP = 'output format: table (default), json, yaml';
const PROJECT_HELP = 'the project (default INGOT_PROJECT, then the login default)';
const MAX_REPLICAS = 10_000;

function writeWarnings(ctx: CommandContext, ref: string, warnings: string[]): void {
  for (const w of warnings) ctx.err.write(`warning: ${ref}: ${w}\n`);
}

/** The flags claim create and claimset create share. */
function withClaimFlags(c: Command): Command {
  return c
    .option('-p, --project <project>', PROJECT_HELP)
    .option('--node-type <type>', 'the node type to claim (see `ingot nodetype list --project P`)')
    .option('--user-data-file <file>', `cloud-init user data, sent sealed and never shown again (at most ${MAX_USER_DATA_BYTES / 1024} KiB)`)
    .option('--user-data-secret <secret>', "a secret of the project holding the key userData (`ingot secret create NAME --project P --from-file userData=FILE`)")
    .option('--ssh-key-file <file>', 'public SSH keys to install, one per line (repeatable)', collect)
    .option('--network <pool[=address]>', 'an address from this IP pool, the lowest free one or the one given (repeatable)', collect)
    .option('--label <key=value>', 'a label on the object (repeatable)', collect)
    .option('--wait', 'wait and show progress until it is ready')
    .option('--timeout <duration>', 'how long --wait waits', '30m')
    .option('-o, --output <format>', OUTPUT_HELP);
}

type CreateFlags = ClaimFlags & { project?: string; label?: string[]; wait?: boolean; timeout?: string; output?: string };

export function registerClaims(program: Command, ctx: CommandContext): void {
  const claim = program.command('claim').alias('claims').description("claim machines of a node type in a project, and release them");

  withClaimFlags(claim.command('create').description('claim one machine of a node type').argument('<name>')).action(
    ctx.run(async (name: string, opts: CreateFlags) => {
      const format = parseOutputFormat(opts.output);
      checkName(name, 'claim');
      if (opts.wait) parseDuration(opts.timeout ?? '30m');
      const project = ctx.project(opts.project);
      const labels = parseLabels(opts.label);
      const input: ClaimInput = { apiVersion: 'ingot.dev/v1', kind: 'Claim', metadata: { name, ...(labels ? { labels } : {}) }, spec: claimSpecFromFlags(opts) };
      const client = ctx.client();
      const { object, warnings } = await client.claims.create(project, input);
      writeWarnings(ctx, `claim/${name}`, warnings);
      ctx.out.write(render(object, format, () => `claim/${name} created in project ${project} (${object.status?.state ?? 'pending'}${object.status?.reason ? `: ${object.status.reason}` : ''})\n`));
      if (opts.wait) await waitClaim(client, project, name, 'ready', { timeout: opts.timeout }, format === 'table' ? ctx.out : ctx.err);
    }),
  );

  claim
    .command('list')
    .description("list a project's claims (--all-projects: every project's, for platform roles)")
    .option('-p, --project <project>', PROJECT_HELP)
    .option('-A, --all-projects', 'claims of every project (platform roles)')
    .option('-l, --selector <selector>', 'label selector, e.g. app=web')
    .option('-o, --output <format>', OUTPUT_HELP)
    .action(ctx.run(async (opts: { project?: string; allProjects?: boolean; selector?: string; output?: string }) => {
      const format = parseOutputFormat(opts.output);
      const client = ctx.client();
      if (opts.allProjects) {
        const list = await client.claims.listAllProjects({ labelSelector: opts.selector, limit: 1000 });
        if (format === 'table' && list.items.length === 0) return void ctx.out.write('no claims in any project\n');
        return void ctx.out.write(render(list, format, () => claimsTable(list.items, { withProject: true })));
      }
      const project = ctx.project(opts.project);
      const items = await client.claims.listAll(project, { labelSelector: opts.selector });
      if (format === 'table' && items.length === 0) {
        return void ctx.out.write(`no claims in project ${project}${opts.selector ? ` match ${opts.selector}` : ''}; claim a machine with \`ingot claim create NAME --node-type TYPE --project ${project}\`\n`);
      }
      ctx.out.write(render({ apiVersion: 'ingot.dev/v1', kind: 'ClaimList', items }, format, () => claimsTable(items)));
    }));

  claim
    .command('show')
    .alias('get')
    .description('show a claim: state, reason, host, addresses (never its user data)')
    .argument('<name>')
    .option('-p, --project <project>', PROJECT_HELP)
    .option('-o, --output <format>', OUTPUT_HELP)
    .action(ctx.run(async (name: string, opts: { project?: string; output?: string }) => {
      const format = parseOutputFormat(opts.output);
      const c = await ctx.client().claims.get(ctx.project(opts.project), name);
      ctx.out.write(render(c, format, () => describeClaim(c)));
    }));

  claim
    .command('delete')
    .description('release a claim: the controller cleans the host, then the claim is gone')
    .argument('<name>')
    .option('-p, --project <project>', PROJECT_HELP)
    .option('--wait', 'wait until the claim is gone')
    .option('--timeout <duration>', 'how long --wait waits', '30m')
    .action(ctx.run(async (name: string, opts: { project?: string; wait?: boolean; timeout?: string }) => {
      if (opts.wait) parseDuration(opts.timeout ?? '30m');
      const project = ctx.project(opts.project);
      const client = ctx.client();
      const result = await client.claims.delete(project, name);
      ctx.out.write(deleteMessage(`claim/${name}`, result));
      if (opts.wait && (result.object as { kind?: string } | undefined)?.kind !== 'Approval') await waitClaim(client, project, name, 'deleted', { timeout: opts.timeout }, ctx.out);
    }));

  const claimset = program.command('claimset').alias('claimsets').description('claim sets: a claim template plus a number of replicas');

  withClaimFlags(claimset.command('create').description('create a claim set: the controller keeps REPLICAS claims of the template').argument('<name>'))
    .option('--replicas <n>', 'how many claims to keep', '1')
    .action(
      ctx.run(async (name: string, opts: CreateFlags & { replicas: string }) => {
        const format = parseOutputFormat(opts.output);
        checkName(name, 'claim set');
        const replicas = parseWholeNumber(opts.replicas, '--replicas', MAX_REPLICAS, 0);
        if (opts.wait) parseDuration(opts.timeout ?? '30m');
        const project = ctx.project(opts.project);
        const labels = parseLabels(opts.label);
        const input: ClaimSetInput = {
          apiVersion: 'ingot.dev/v1',
          kind: 'ClaimSet',
          metadata: { name, ...(labels ? { labels } : {}) },
          spec: { replicas, template: { spec: claimSpecFromFlags(opts) } },
        };
        const client = ctx.client();
        const { object, warnings } = await client.claimSets.create(project, input);
        writeWarnings(ctx, `claimset/${name}`, warnings);
        ctx.out.write(render(object, format, () => `claimset/${name} created in project ${project} (${replicas} replica${replicas === 1 ? '' : 's'})\n`));
        if (opts.wait) await waitClaimSet(client, project, name, { timeout: opts.timeout }, format === 'table' ? ctx.out : ctx.err);
      }),
    );

  claimset
    .command('list')
    .description("list a project's claim sets")
    .option('-p, --project <project>', PROJECT_HELP)
    .option('-l, --selector <selector>', 'label selector')
    .option('-o, --output <format>', OUTPUT_HELP)
    .action(ctx.run(async (opts: { project?: string; selector?: string; output?: string }) => {
      const format = parseOutputFormat(opts.output);
      const project = ctx.project(opts.project);
      const items = await ctx.client().claimSets.listAll(project, { labelSelector: opts.selector });
      if (format === 'table' && items.length === 0) {
        return void ctx.out.write(`no claim sets in project ${project}; create one with \`ingot claimset create NAME --node-type TYPE --replicas N --project ${project}\`\n`);
      }
      ctx.out.write(render({ apiVersion: 'ingot.dev/v1', kind: 'ClaimSetList', items }, format, () => claimSetsTable(items)));
    }));

  claimset
    .command('show')
    .alias('get')
    .description('show a claim set and its claims')
    .argument('<name>')
    .option('-p, --project <project>', PROJECT_HELP)
    .option('-o, --output <format>', OUTPUT_HELP)
    .action(ctx.run(async (name: string, opts: { project?: string; output?: string }) => {
      const format = parseOutputFormat(opts.output);
      const project = ctx.project(opts.project);
      const client = ctx.client();
      const set = await client.claimSets.get(project, name);
      if (format !== 'table') return void ctx.out.write(render(set, format, () => ''));
      const claims = await client.claims.listAll(project, { labelSelector: `${CLAIM_SET_LABEL}=${name}` });
      ctx.out.write(describeClaimSet(set, claims));
    }));

  claimset
    .command('scale')
    .description('change how many claims the set keeps (spec.replicas)')
    .argument('<name>')
    .requiredOption('--replicas <n>', 'the new number of replicas')
    .option('-p, --project <project>', PROJECT_HELP)
    .option('--wait', 'wait until that many claims are ready and no extra ones remain')
    .option('--timeout <duration>', 'how long --wait waits', '30m')
    .option('-o, --output <format>', OUTPUT_HELP)
    .action(ctx.run(async (name: string, opts: { replicas: string; project?: string; wait?: boolean; timeout?: string; output?: string }) => {
      const format = parseOutputFormat(opts.output);
      const replicas = parseWholeNumber(opts.replicas, '--replicas', MAX_REPLICAS, 0);
      if (opts.wait) parseDuration(opts.timeout ?? '30m');
      const project = ctx.project(opts.project);
      const client = ctx.client();
      const { object, warnings } = await client.claimSets.patch(project, name, { spec: { replicas } });
      writeWarnings(ctx, `claimset/${name}`, warnings);
      ctx.out.write(render(object, format, () => `claimset/${name} scaled to ${replicas} replica${replicas === 1 ? '' : 's'}\n`));
      if (opts.wait) await waitClaimSet(client, project, name, { timeout: opts.timeout }, format === 'table' ? ctx.out : ctx.err);
    }));

  claimset
    .command('delete')
    .description('delete a claim set: the controller releases its claims, then removes it')
    .argument('<name>')
    .option('-p, --project <project>', PROJECT_HELP)
    .option('--wait', 'wait until its claims are released and the set is gone')
    .option('--timeout <duration>', 'how long --wait waits', '30m')
    .action(ctx.run(async (name: string, opts: { project?: string; wait?: boolean; timeout?: string }) => {
      if (opts.wait) parseDuration(opts.timeout ?? '30m');
      const project = ctx.project(opts.project);
      const client = ctx.client();
      ctx.out.write(deleteMessage(`claimset/${name}`, await client.claimSets.delete(project, name)));
      if (opts.wait) await waitClaimSetGone(client, project, name, { timeout: opts.timeout }, ctx.out);
    }));
}
