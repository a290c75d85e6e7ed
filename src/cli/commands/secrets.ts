// `ingot secret …`: write-only values. Nothing here ever prints a value: reads show keys and
// the version only.
import { readFileSync, statSync } from 'node:fs';
import type { Command } from 'commander';
import { MAX_SECRET_BYTES, SECRET_KEY_PATTERN, type SecretInput } from '../../model/secret.js';
import { DNS_LABEL } from '../../model/envelope.js';
import { CliError } from '../cli-error.js';
import type { CommandContext } from '../context.js';
import { describeSecret, parseOutputFormat, render, secretsTable } from '../output.js';

const OUTPUT_HELP = 'output format: table (default), json, yaml';
const KEY = new RegExp(SECRET_KEY_PATTERN);

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

interface ValueFlags {
  fromLiteral?: string[];
  fromFile?: string[];
  type?: string;
  output?: string;
  /** A project's secret (user data for its claims) instead of a platform one. */
  project?: string;
}

// Secrets are the platform's unless --project is given: the login default project does not
// apply here, so a platform admin never writes a BMC credential into a project by accident.
const PROJECT_HELP = "a project's secret (user data for its claims) instead of a platform one";
const where = (project: string | undefined) => (project ? ` in project ${project}` : '');

export function registerSecrets(program: Command, ctx: CommandContext): void {
  const secret = program.command('secret').alias('secrets').description('manage secrets (BMC credentials, user data); values are write-only');

  const withValueFlags = (c: Command) =>
    c
      .argument('<name>')
      .option('--from-literal <key=value>', 'a key and its value (repeatable)', collect)
      .option('--from-file <key=path>', 'a key and a file holding its value (repeatable)', collect)
      .option('--type <type>', 'secret type, e.g. bmc-credentials')
      .option('-p, --project <project>', PROJECT_HELP)
      .option('-o, --output <format>', OUTPUT_HELP);

  withValueFlags(secret.command('create').description('create a secret (fails if it exists; see `secret apply`)')).action(
    ctx.run(async (name: string, opts: ValueFlags) => {
      const format = parseOutputFormat(opts.output);
      const input = secretInput(name, opts);
      const project = opts.project !== undefined ? ctx.project(opts.project) : undefined;
      const client = ctx.client();
      const s = project ? await client.projectSecrets.create(project, input) : await client.secrets.create(input);
      ctx.out.write(render(s, format, () => `secret/${name} created${where(project)} (keys: ${s.status?.keys?.join(', ') ?? ''})\n`));
    }),
  );

  withValueFlags(secret.command('apply').description('create a secret or replace its values')).action(
    ctx.run(async (name: string, opts: ValueFlags) => {
      const format = parseOutputFormat(opts.output);
      const input = secretInput(name, opts);
      const project = opts.project !== undefined ? ctx.project(opts.project) : undefined;
      const client = ctx.client();
      const { object, created } = project ? await client.projectSecrets.apply(project, input) : await client.secrets.apply(input);
      ctx.out.write(render(object, format, () => `secret/${name} ${created ? 'created' : 'configured'}${where(project)} (version ${object.status?.version})\n`));
    }),
  );

  secret
    .command('list')
    .description('list secrets (names, keys and versions)')
    .option('-p, --project <project>', "a project's secrets instead of the platform's")
    .option('-o, --output <format>', OUTPUT_HELP)
    .action(ctx.run(async (opts: { output?: string; project?: string }) => {
      const format = parseOutputFormat(opts.output);
      const project = opts.project !== undefined ? ctx.project(opts.project) : undefined;
      const client = ctx.client();
      const list = project ? await client.projectSecrets.list(project, { limit: 1000 }) : await client.secrets.list({ limit: 1000 });
      if (format === 'table' && list.items.length === 0) {
        ctx.out.write(
          project
            ? `no secrets in project ${project} yet; create one with \`ingot secret create NAME --project ${project} --from-file userData=cloud-init.yaml\`\n`
            : 'no secrets yet; create one with `ingot secret create NAME --from-literal username=… --from-literal password=…`\n',
        );
        return;
      }
      ctx.out.write(render(list, format, () => secretsTable(list.items)));
    }));

  secret
    .command('show')
    .alias('get')
    .description("show a secret's keys and version (never its values)")
    .argument('<name>')
    .option('-p, --project <project>', "a project's secret instead of a platform one")
    .option('-o, --output <format>', OUTPUT_HELP)
    .action(ctx.run(async (name: string, opts: { output?: string; project?: string }) => {
      const format = parseOutputFormat(opts.output);
      const project = opts.project !== undefined ? ctx.project(opts.project) : undefined;
      const client = ctx.client();
      const s = project ? await client.projectSecrets.get(project, name) : await client.secrets.get(name);
      ctx.out.write(render(s, format, () => describeSecret(s)));
    }));

  secret
    .command('delete')
    .description('delete a secret')
    .argument('<name>')
    .option('-p, --project <project>', "a project's secret instead of a platform one")
    .action(ctx.run(async (name: string, opts: { project?: string }) => {
      const project = opts.project !== undefined ? ctx.project(opts.project) : undefined;
      const client = ctx.client();
      if (project) await client.projectSecrets.delete(project, name);
      else await client.secrets.delete(name);
      ctx.out.write(`secret/${name} deleted${where(project)}\n`);
    }));
}

/** Builds the SecretInput from --from-literal/--from-file, checking keys and sizes locally. */
export function secretInput(name: string, opts: ValueFlags): SecretInput {
  if (!DNS_LABEL.test(name) || name.length > 63) throw new CliError(`secret name "${name}" is not a DNS label: use lower-case letters, digits and "-", at most 63 characters`);
  const data: Record<string, string> = {};
  let total = 0;
  const put = (key: string, value: string, flag: string) => {
    if (!KEY.test(key)) throw new CliError(`${flag}: key "${key}" may contain only letters, digits, "-", "_" and "."`);
    if (key in data) throw new CliError(`${flag}: key "${key}" is given twice; give each key once`);
    total += Buffer.byteLength(value);
    if (total > MAX_SECRET_BYTES) throw new CliError(`the values add up to more than ${MAX_SECRET_BYTES} bytes; a secret holds at most that`);
    data[key] = value;
  };
  for (const pair of opts.fromLiteral ?? []) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new CliError('--from-literal must look like KEY=VALUE (e.g. --from-literal username=admin)');
    put(pair.slice(0, eq), pair.slice(eq + 1), '--from-literal');
  }
  for (const pair of opts.fromFile ?? []) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new CliError('--from-file must look like KEY=PATH (e.g. --from-file ca.crt=./bmc-ca.pem)');
    const path = pair.slice(eq + 1);
    let size: number;
    try {
      size = statSync(path).size;
    } catch {
      throw new CliError(`--from-file: cannot read ${path}; check the path`);
    }
    if (size > MAX_SECRET_BYTES) throw new CliError(`--from-file: ${path} is larger than ${MAX_SECRET_BYTES} bytes`);
    put(pair.slice(0, eq), readFileSync(path, 'utf8'), '--from-file');
  }
  if (Object.keys(data).length === 0) throw new CliError('give at least one value: --from-literal KEY=VALUE or --from-file KEY=PATH');
  const input: SecretInput = { apiVersion: 'ingot.dev/v1', kind: 'Secret', metadata: { name }, stringData: data };
  if (opts.type) input.type = opts.type;
  return input;
}
