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
}

export function registerSecrets(program: Command, ctx: CommandContext): void {
  const secret = program.command('secret').alias('secrets').description('manage secrets (BMC credentials, user data); values are write-only');

  const withValueFlags = (c: Command) =>
    c
      .argument('<name>')
      .option('--from-literal <key=value>', 'a key and its value (repeatable)', collect)
      .option('--from-file <key=path>', 'a key and a file holding its value (repeatable)', collect)
      .option('--type <type>', 'secret type, e.g. bmc-credentials')
      .option('-o, --output <format>', OUTPUT_HELP);

  withValueFlags(secret.command('create').description('create a secret (fails if it exists; see `secret apply`)')).action(
    ctx.run(async (name: string, opts: ValueFlags) => {
      const format = parseOutputFormat(opts.output);
      const input = secretInput(name, opts);
      const s = await ctx.client().secrets.create(input);
      ctx.out.write(render(s, format, () => `secret/${name} created (keys: ${s.status?.keys?.join(', ') ?? ''})\n`));
    }),
  );

  withValueFlags(secret.command('apply').description('create a secret or replace its values')).action(
    ctx.run(async (name: string, opts: ValueFlags) => {
      const format = parseOutputFormat(opts.output);
      const input = secretInput(name, opts);
      const { object, created } = await ctx.client().secrets.apply(input);
      ctx.out.write(render(object, format, () => `secret/${name} ${created ? 'created' : 'configured'} (version ${object.status?.version})\n`));
    }),
  );

  secret
    .command('list')
    .description('list secrets (names, keys and versions)')
    .option('-o, --output <format>', OUTPUT_HELP)
    .action(ctx.run(async (opts: { output?: string }) => {
      const format = parseOutputFormat(opts.output);
      const list = await ctx.client().secrets.list({ limit: 1000 });
      if (format === 'table' && list.items.length === 0) {
        ctx.out.write('no secrets yet; create one with `ingot secret create NAME --from-literal username=… --from-literal password=…`\n');
        return;
      }
      ctx.out.write(render(list, format, () => secretsTable(list.items)));
    }));

  secret
    .command('show')
    .alias('get')
    .description("show a secret's keys and version (never its values)")
    .argument('<name>')
    .option('-o, --output <format>', OUTPUT_HELP)
    .action(ctx.run(async (name: string, opts: { output?: string }) => {
      const format = parseOutputFormat(opts.output);
      const s = await ctx.client().secrets.get(name);
      ctx.out.write(render(s, format, () => describeSecret(s)));
    }));

  secret
    .command('delete')
    .description('delete a secret')
    .argument('<name>')
    .action(ctx.run(async (name: string) => {
      await ctx.client().secrets.delete(name);
      ctx.out.write(`secret/${name} deleted\n`);
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
