// `ingot login`: check a token against the API, then save server + token for later commands.
import type { Command } from 'commander';
import { ApiError, createClient } from '../../client/index.js';
import { DNS_LABEL } from '../../model/envelope.js';
import { CliError, explainApiError } from '../cli-error.js';
import { configPath, saveConfig } from '../config.js';
import type { CommandContext } from '../context.js';

export function registerLogin(program: Command, ctx: CommandContext): void {
  program
    .command('login')
    .description('check an API token and save it (with the server address) for later commands')
    .requiredOption('--server <url>', 'the Ingot API, e.g. http://127.0.0.1:7385')
    .option('--token <token>', 'API token (or set INGOT_TOKEN, or use --token-stdin to keep it out of shell history)')
    .option('--token-stdin', 'read the token from standard input')
    .option('--project <project>', 'the default project for project commands (claims, claim sets, project secrets)')
    .action(ctx.run(async (opts: { server: string; token?: string; tokenStdin?: boolean; project?: string }) => {
      if (opts.project !== undefined && (!DNS_LABEL.test(opts.project) || opts.project.length > 63)) {
        throw new CliError(`--project "${opts.project}" is not a project name: use lower-case letters, digits and "-", at most 63 characters`);
      }
      let token = opts.token;
      if (opts.tokenStdin) token = (await readStdin(4096)).trim();
      token ??= process.env.INGOT_TOKEN;
      if (!token) throw new CliError('no token given: use --token TOKEN, --token-stdin, or set INGOT_TOKEN');
      const server = opts.server.replace(/\/+$/, '');
      let client;
      try {
        client = createClient({ server, token });
      } catch (err) {
        throw new CliError((err as Error).message);
      }
      let note = '';
      try {
        await client.hosts.list({ limit: 1 });
      } catch (err) {
        if (err instanceof ApiError && err.status === 403) {
          note = ' (the token is valid but may not list hosts)';
        } else if (err instanceof ApiError && err.status === 401) {
          throw new CliError(`the token was refused by ${server}: ${err.message}; nothing was saved. Check the token (the bootstrap token is printed once, when \`ingot server\` first starts)`);
        } else if (err instanceof ApiError) {
          throw new CliError(`${explainApiError(err)}; nothing was saved`);
        } else throw err;
      }
      if (opts.project !== undefined) {
        try {
          await client.projects.get(opts.project);
          note = ''; // a project token may not list hosts, and need not
        } catch (err) {
          // 403: a project token asking for another project; a default it cannot use is no default.
          if (err instanceof ApiError && (err.status === 404 || err.status === 403)) {
            throw new CliError(`project "${opts.project}" does not exist (or the token is not a member of it); nothing was saved. Check the name with \`ingot project list\` or ask a platform admin`);
          }
          throw err instanceof ApiError ? new CliError(`${explainApiError(err)}; nothing was saved`) : err;
        }
      }
      const path = configPath();
      saveConfig(path, { server, token, ...(opts.project !== undefined ? { project: opts.project } : {}) });
      ctx.out.write(`logged in to ${server}${note}${opts.project !== undefined ? `, default project ${opts.project}` : ''}; saved to ${path}\n`);
    }));
}

async function readStdin(max: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    size += (chunk as Buffer).byteLength;
    if (size > max) throw new CliError(`standard input is longer than ${max} bytes; it should hold just the token`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}
