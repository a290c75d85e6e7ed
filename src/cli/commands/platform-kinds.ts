// `ingot osimage|nodetype|project|ippool …`: the platform kinds of the tenancy API. Admins
// write them with `ingot apply -f`; these commands read and delete them. `nodetype list
// --project P` shows what a project may claim (the view its members have).
import type { Command } from 'commander';
import { ApiError, type DeleteResult, type NodeType } from '../../client/index.js';
import type { CommandContext } from '../context.js';
import { parseOutputFormat, render } from '../output.js';
import { describeIPPool, describeNodeType, describeOSImage, describeProject, ipPoolsTable, nodeTypesTable, osImagesTable, projectsTable } from '../tenancy-output.js';

const OUTPUT_HELP = 'output format: table (default), json, yaml';

/** What a delete printed: removed at once, accepted for a controller, or held by the two-person rule. */
export function deleteMessage(ref: string, result: DeleteResult<unknown>): string {
  const held = result.object as { kind?: string; id?: string; message?: string } | undefined;
  if (held?.kind === 'Approval') return `${ref} deletion held for approval ${held.id}: ${held.message ?? 'another admin must approve it'}\n`;
  return result.accepted ? `${ref} deletion requested\n` : `${ref} deleted\n`;
}

export function registerPlatformKinds(program: Command, ctx: CommandContext): void {
  const osimage = program.command('osimage').alias('osimages').description('OS images admins publish for node types (write them with `ingot apply -f`)');
  osimage
    .command('list')
    .description('list OS images')
    .option('-l, --selector <selector>', 'label selector, e.g. os=ubuntu')
    .option('-o, --output <format>', OUTPUT_HELP)
    .action(ctx.run(async (opts: { selector?: string; output?: string }) => {
      const format = parseOutputFormat(opts.output);
      const items = await ctx.client().osImages.listAll({ labelSelector: opts.selector });
      if (format === 'table' && items.length === 0) return void ctx.out.write('no OS images yet; publish one with `ingot apply -f image.yaml` (kind: OSImage)\n');
      ctx.out.write(render({ apiVersion: 'ingot.dev/v1', kind: 'OSImageList', items }, format, () => osImagesTable(items)));
    }));
  osimage
    .command('show')
    .alias('get')
    .description('show an OS image: URL, checksum, verification')
    .argument('<name>')
    .option('-o, --output <format>', OUTPUT_HELP)
    .action(ctx.run(async (name: string, opts: { output?: string }) => {
      const format = parseOutputFormat(opts.output);
      const i = await ctx.client().osImages.get(name);
      ctx.out.write(render(i, format, () => describeOSImage(i)));
    }));
  osimage
    .command('delete')
    .description('delete an OS image no node type uses')
    .argument('<name>')
    .action(ctx.run(async (name: string) => {
      ctx.out.write(deleteMessage(`osimage/${name}`, await ctx.client().osImages.delete(name)));
    }));

  const nodetype = program.command('nodetype').alias('nodetypes').description('node types: the kinds of machine a project may claim');
  nodetype
    .command('list')
    .description('list node types (with --project: the ones that project may claim)')
    .option('-p, --project <project>', 'only the node types this project may claim (what its members see)')
    .option('-l, --selector <selector>', 'label selector')
    .option('-o, --output <format>', OUTPUT_HELP)
    .action(ctx.run(async (opts: { project?: string; selector?: string; output?: string }) => {
      const format = parseOutputFormat(opts.output);
      // Platform-wide unless a project is asked for, by flag or INGOT_PROJECT (tenants may read only their project's view).
      let project = opts.project !== undefined || process.env.INGOT_PROJECT ? ctx.project(opts.project) : undefined;
      const client = ctx.client();
      let items: NodeType[] | undefined;
      if (!project) {
        items = await client.nodeTypes.listAll({ labelSelector: opts.selector }).catch((err: unknown) => {
          // A tenant may not list the platform's node types; its login default project's view is what it means.
          if (err instanceof ApiError && err.status === 403 && !err.code.startsWith('INGOT_ERR_QUOTA')) return undefined;
          throw err;
        });
        if (!items) project = ctx.project();
      }
      if (project) items = (await client.nodeTypes.listForProject(project, { labelSelector: opts.selector, limit: 1000 })).items;
      items ??= [];
      if (format === 'table' && items.length === 0) {
        return void ctx.out.write(project ? `project ${project} may claim no node type; ask a platform admin (spec.allowedNodeTypes)\n` : 'no node types yet; publish one with `ingot apply -f nodetype.yaml` (kind: NodeType)\n');
      }
      ctx.out.write(render({ apiVersion: 'ingot.dev/v1', kind: 'NodeTypeList', items }, format, () => nodeTypesTable(items)));
    }));
  nodetype
    .command('show')
    .alias('get')
    .description('show a node type')
    .argument('<name>')
    .option('-p, --project <project>', "read it through this project's view")
    .option('-o, --output <format>', OUTPUT_HELP)
    .action(ctx.run(async (name: string, opts: { project?: string; output?: string }) => {
      const format = parseOutputFormat(opts.output);
      const project = opts.project !== undefined || process.env.INGOT_PROJECT ? ctx.project(opts.project) : undefined;
      const client = ctx.client();
      const t = project ? await client.nodeTypes.getForProject(project, name) : await client.nodeTypes.get(name);
      ctx.out.write(render(t, format, () => describeNodeType(t)));
    }));
  nodetype
    .command('delete')
    .description('delete a node type no claim uses')
    .argument('<name>')
    .action(ctx.run(async (name: string) => {
      ctx.out.write(deleteMessage(`nodetype/${name}`, await ctx.client().nodeTypes.delete(name)));
    }));

  const project = program.command('project').alias('projects').description('projects (tenants): members, allowed node types, quotas');
  project
    .command('list')
    .description('list projects (platform roles)')
    .option('-l, --selector <selector>', 'label selector')
    .option('-o, --output <format>', OUTPUT_HELP)
    .action(ctx.run(async (opts: { selector?: string; output?: string }) => {
      const format = parseOutputFormat(opts.output);
      const items = await ctx.client().projects.listAll({ labelSelector: opts.selector });
      if (format === 'table' && items.length === 0) return void ctx.out.write('no projects yet; create one with `ingot apply -f project.yaml` (kind: Project)\n');
      ctx.out.write(render({ apiVersion: 'ingot.dev/v1', kind: 'ProjectList', items }, format, () => projectsTable(items)));
    }));
  project
    .command('show')
    .alias('get')
    .description('show a project (default: --project, INGOT_PROJECT or the login default)')
    .argument('[name]')
    .option('-o, --output <format>', OUTPUT_HELP)
    .action(ctx.run(async (name: string | undefined, opts: { output?: string }) => {
      const format = parseOutputFormat(opts.output);
      const p = await ctx.client().projects.get(ctx.project(name));
      ctx.out.write(render(p, format, () => describeProject(p)));
    }));
  project
    .command('delete')
    .description('delete a project that holds no claims, claim sets or secrets')
    .argument('<name>')
    .action(ctx.run(async (name: string) => {
      ctx.out.write(deleteMessage(`project/${name}`, await ctx.client().projects.delete(name)));
    }));

  const ippool = program.command('ippool').alias('ippools').description('static IP address pools claims take addresses from');
  ippool
    .command('list')
    .description('list IP pools')
    .option('-l, --selector <selector>', 'label selector')
    .option('-o, --output <format>', OUTPUT_HELP)
    .action(ctx.run(async (opts: { selector?: string; output?: string }) => {
      const format = parseOutputFormat(opts.output);
      const items = await ctx.client().ipPools.listAll({ labelSelector: opts.selector });
      if (format === 'table' && items.length === 0) return void ctx.out.write('no IP pools yet; create one with `ingot apply -f pool.yaml` (kind: IPPool)\n');
      ctx.out.write(render({ apiVersion: 'ingot.dev/v1', kind: 'IPPoolList', items }, format, () => ipPoolsTable(items)));
    }));
  ippool
    .command('show')
    .alias('get')
    .description('show an IP pool and the addresses allocated from it')
    .argument('<name>')
    .option('-o, --output <format>', OUTPUT_HELP)
    .action(ctx.run(async (name: string, opts: { output?: string }) => {
      const format = parseOutputFormat(opts.output);
      const client = ctx.client();
      const [pool, addresses] = await Promise.all([client.ipPools.get(name), client.ipPools.addresses(name)]);
      // json/yaml: the pool object, with its allocations beside it (not inside status, which is the server's).
      ctx.out.write(render({ ...pool, addresses }, format, () => describeIPPool(pool, addresses)));
    }));
}
