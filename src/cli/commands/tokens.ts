// `ingot token …`: API tokens. A token's value is printed once, by `create`, and never again:
// the server keeps only its hash (src/server/routes/tokens.ts), so `list` cannot show it.
import type { Command } from 'commander';
import type { TokenInfo } from '../../client/index.js';
import { generateToken } from '../../model/api-token.js';
import { CliError } from '../cli-error.js';
import type { CommandContext } from '../context.js';
import { parseDuration } from '../duration.js';
import { formatAge, parseOutputFormat, render, renderTable } from '../output.js';

const OUTPUT_HELP = 'output format: table (default), json, yaml';
/** The server has the final word (default maximum 90 days); this only bounds what we send. */
const MAX_LIFETIME_MS = 3650 * 86_400_000;
const ROLE = /^[a-z][a-z0-9-]{0,62}$/;
const TOKEN_ID = /^[0-9a-f-]{1,64}$/;

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export function registerTokens(program: Command, ctx: CommandContext): void {
  const token = program.command('token').alias('tokens').description('create, list and revoke API tokens (a value is shown once, on create)');

  token
    .command('create')
    .description('create an API token; its value is printed once and cannot be read again')
    .requiredOption('--role <role>', 'a role the token carries, e.g. platform-reader (repeatable)', collect)
    .option('--project <project>', 'the project, for project-* roles')
    .option('--description <text>', 'what the token is for (shown in lists and the audit trail)')
    .requiredOption('--expires-in <duration>', 'lifetime, e.g. 12h, 30d (the server caps it, 90d by default)')
    .option('-o, --output <format>', OUTPUT_HELP)
    .action(ctx.run(async (opts: { role: string[]; project?: string; description?: string; expiresIn: string; output?: string }) => {
      const format = parseOutputFormat(opts.output);
      const roles = [...new Set(opts.role)];
      for (const r of roles) {
        if (!ROLE.test(r)) throw new CliError(`--role "${r}" is not a role name; use one such as platform-admin, platform-reader, controller`);
      }
      if (roles.length > 8) throw new CliError('--role is given more than 8 times; a token carries at most 8 roles');
      const ms = parseDuration(opts.expiresIn, '--expires-in', { maxMs: MAX_LIFETIME_MS });
      const expiresInSeconds = Math.ceil(ms / 1000);
      if (expiresInSeconds < 60) throw new CliError(`--expires-in ${opts.expiresIn}: a token lives at least 60s; ask for longer`);
      const description = (opts.description ?? `created by ingot token create (${roles.join(', ')})`).trim();
      if (description.length === 0 || description.length > 200) throw new CliError('--description must be 1 to 200 characters');
      const created = await ctx.client().tokens.create({ roles, description, expiresInSeconds, ...(opts.project ? { project: opts.project } : {}) });
      // The value goes to stdout (alone on its line, for scripts); the warning to stderr, so
      // `ingot token create … > file` keeps the value and still tells the person.
      ctx.out.write(
        render(created, format, () =>
          [
            `token/${created.id} created (roles: ${created.roles.join(', ')}${created.project ? `, project ${created.project}` : ''}, expires ${created.expiresAt ?? 'never'})`,
            created.token,
            '',
          ].join('\n'),
        ),
      );
      ctx.err.write(
        `warning: this is the only time the token value is shown; store it now (a password manager or a secret store). ` +
          `It cannot be read again, only revoked: ingot token revoke ${created.id}\n`,
      );
    }));

  token
    .command('generate')
    .description('print a new random token value without contacting a server, e.g. for INGOT_BOOTSTRAP_TOKEN before the first start')
    .action(ctx.run(async () => {
      // Nothing is stored anywhere: the value means something only once a server is given it.
      ctx.out.write(`${generateToken()}\n`);
    }));

  token
    .command('list')
    .description('list API tokens (never their values)')
    .option('-o, --output <format>', OUTPUT_HELP)
    .action(ctx.run(async (opts: { output?: string }) => {
      const format = parseOutputFormat(opts.output);
      const items = await ctx.client().tokens.list();
      if (format === 'table' && items.length === 0) {
        ctx.out.write('no API tokens yet; create one with `ingot token create --role platform-reader --expires-in 30d --description …`\n');
        return;
      }
      ctx.out.write(render({ items }, format, () => tokensTable(items)));
    }));

  token
    .command('revoke')
    .description('revoke an API token (it is refused from then on)')
    .argument('<id>', 'the token id, from `ingot token list`')
    .option('-o, --output <format>', OUTPUT_HELP)
    .action(ctx.run(async (id: string, opts: { output?: string }) => {
      const format = parseOutputFormat(opts.output);
      // Not echoed: a person who pastes the token value here must not see it in logs or scrollback.
      if (!TOKEN_ID.test(id)) {
        const hint = id.startsWith('ingot_') ? 'that is a token value; ' : '';
        throw new CliError(`the argument is not a token id: ${hint}take the ID column of \`ingot token list\` (not the token value)`);
      }
      const revoked = await ctx.client().tokens.revoke(id);
      ctx.out.write(render(revoked, format, () => `token/${id} revoked\n`));
    }));
}

export function tokensTable(tokens: TokenInfo[], now = Date.now()): string {
  return renderTable(
    ['ID', 'DESCRIPTION', 'ROLES', 'PROJECT', 'EXPIRES', 'LAST USED'],
    tokens.map((t) => [t.id, oneLine(t.description), t.roles.join(','), t.project, expiry(t, now), t.lastUsedAt ? `${formatAge(t.lastUsedAt, now)} ago` : 'never']),
  );
}

function expiry(t: TokenInfo, now: number): string {
  if (t.revokedAt) return `revoked ${formatAge(t.revokedAt, now)} ago`;
  if (!t.expiresAt) return 'never';
  const at = Date.parse(t.expiresAt);
  if (Number.isNaN(at)) return t.expiresAt;
  if (at <= now) return `expired ${formatAge(t.expiresAt, now)} ago`;
  // formatAge measures from a past instant; mirror the future one around now.
  return `${t.expiresAt.slice(0, 10)} (in ${formatAge(new Date(now - (at - now)).toISOString(), now)})`;
}

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ').slice(0, 60);
}
