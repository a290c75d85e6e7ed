// `ingot approval …`: the two-person rule. A destructive host change over the configured rate,
// or one the policy marks approval:required, is held as a pending approval; another admin
// approves it (it then runs with their authority) or rejects it, before it expires.
import type { Command } from 'commander';
import type { ApprovalInfo } from '../../client/index.js';
import { CliError } from '../cli-error.js';
import type { CommandContext } from '../context.js';
import { formatAge, parseOutputFormat, render, renderTable } from '../output.js';

const OUTPUT_HELP = 'output format: table (default), json, yaml';
const APPROVAL_ID = /^[0-9a-f-]{36}$/;
const STATES = ['pending', 'approved', 'rejected', 'expired', 'executed'] as const;

function checkId(id: string): void {
  if (!APPROVAL_ID.test(id)) throw new CliError(`"${id.slice(0, 80)}" is not an approval id; take the ID column of \`ingot approval list\``);
}

function checkReason(reason: string | undefined): void {
  if (reason !== undefined && (reason.length === 0 || reason.length > 1024)) throw new CliError('--reason must be 1 to 1024 characters');
}

export function registerApprovals(program: Command, ctx: CommandContext): void {
  const approval = program.command('approval').alias('approvals').description('list, approve and reject changes held by the two-person rule');

  approval
    .command('list')
    .description('list approvals, newest first')
    .option('--state <state>', `only approvals in this state: ${STATES.join(', ')}`)
    .option('-o, --output <format>', OUTPUT_HELP)
    .action(ctx.run(async (opts: { state?: string; output?: string }) => {
      const format = parseOutputFormat(opts.output);
      if (opts.state !== undefined && !(STATES as readonly string[]).includes(opts.state)) throw new CliError(`--state "${opts.state}" is not one of ${STATES.join(', ')}`);
      const items = await ctx.client().approvals.list(opts.state ? { state: opts.state as ApprovalInfo['state'] } : {});
      if (format === 'table' && items.length === 0) {
        ctx.out.write('no approvals\n');
        return;
      }
      ctx.out.write(render({ items }, format, () => approvalsTable(items)));
    }));

  approval
    .command('approve')
    .description("approve someone else's held change; it runs at once with your authority")
    .argument('<id>', 'the approval id, from `ingot approval list`')
    .option('--reason <text>', 'why (recorded with the decision)')
    .option('-o, --output <format>', OUTPUT_HELP)
    .action(ctx.run(async (id: string, opts: { reason?: string; output?: string }) => {
      const format = parseOutputFormat(opts.output);
      checkId(id);
      checkReason(opts.reason);
      const done = await ctx.client().approvals.approve(id, opts.reason);
      ctx.out.write(render(done, format, () => `approval/${id} ${done.state}: ${done.action} on ${done.target.kind.toLowerCase()}/${done.target.name}\n`));
    }));

  approval
    .command('reject')
    .description('reject a held change; it never runs')
    .argument('<id>', 'the approval id, from `ingot approval list`')
    .option('--reason <text>', 'why (recorded with the decision)')
    .option('-o, --output <format>', OUTPUT_HELP)
    .action(ctx.run(async (id: string, opts: { reason?: string; output?: string }) => {
      const format = parseOutputFormat(opts.output);
      checkId(id);
      checkReason(opts.reason);
      const done = await ctx.client().approvals.reject(id, opts.reason);
      ctx.out.write(render(done, format, () => `approval/${id} rejected\n`));
    }));
}

export function approvalsTable(items: ApprovalInfo[], now = Date.now()): string {
  return renderTable(
    ['ID', 'STATE', 'ACTION', 'TARGET', 'REQUESTED BY', 'AGE', 'EXPIRES'],
    items.map((a) => [a.id, a.state, a.action, `${a.target.kind.toLowerCase()}/${a.target.name}`, a.requestedBy, formatAge(a.requestedAt, now), a.expiresAt]),
  );
}
