// `ingot secrets rekey`: asks the server to make a new secret key current and re-seal every
// secret value under it (POST /api/v1/secrets/-/rekey, action secret:rekey). The key never
// leaves the server; this prints counts and key ids only.
import type { Command } from 'commander';
import { CliError } from '../cli-error.js';
import type { CommandContext } from '../context.js';
import { parseOutputFormat, render } from '../output.js';
import { parseWholeNumber } from '../positive-int.js';

export function registerSecretsRekey(program: Command, ctx: CommandContext): void {
  const secret = program.commands.find((c) => c.name() === 'secret');
  if (!secret) throw new Error('registerSecretsRekey needs the secret command (registerSecrets) first');
  secret
    .command('rekey')
    .description('rotate the server\'s secret key and re-seal every secret value under the new key (no downtime)')
    .option('--retire-old', 'after re-sealing, delete previous keys that no secret value references')
    .option('--retire-only', 'do not rotate: only delete previous keys that no secret value references')
    .option('--batch-size <n>', 'secret values re-sealed per transaction (default 50)')
    .option('-o, --output <format>', 'output format: table (default), json, yaml')
    .action(
      ctx.run(async (opts: { retireOld?: boolean; retireOnly?: boolean; batchSize?: string; output?: string }) => {
        const format = parseOutputFormat(opts.output);
        if (opts.retireOld && opts.retireOnly) throw new CliError('--retire-old and --retire-only cannot be used together: --retire-only does not rotate');
        const report = await ctx.client().secrets.rekey({
          ...(opts.retireOld ? { retireOld: true } : {}),
          ...(opts.retireOnly ? { retireOnly: true } : {}),
          ...(opts.batchSize !== undefined ? { batchSize: parseWholeNumber(opts.batchSize, '--batch-size', 1000) } : {}),
        });
        ctx.out.write(
          render(report, format, () =>
            [
              opts.retireOnly ? `current key ${report.keyId}` : `new key ${report.keyId} is current (was ${report.previousKeyId ?? '?'})`,
              `secret values: ${report.rows} seen, ${report.moved} re-sealed, ${report.remaining} still under an older key`,
              `previous keys kept: ${report.previousKeyIds.length > 0 ? report.previousKeyIds.join(', ') : 'none'}`,
              ...(report.retiredKeyIds.length > 0 ? [`retired keys: ${report.retiredKeyIds.join(', ')}`] : []),
              report.message,
              '',
            ].join('\n'),
          ),
        );
      }),
    );
}
