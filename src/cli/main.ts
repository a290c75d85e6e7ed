// The `ingot` command line. Commands talk to the API only through src/client (DESIGN.md:
// "cli only through client"); `server`, `quickstart` and `lab` start the processes themselves.
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { createContext } from './context.js';
import { registerApply } from './commands/apply.js';
import { registerHosts } from './commands/hosts.js';
import { registerLogin } from './commands/login.js';
import { registerQuickstart } from './commands/quickstart.js';
import { registerSecrets } from './commands/secrets.js';
import { registerSecretsRekey } from './commands/secrets-rekey.js';
import { registerServer } from './commands/server.js';
import { registerLab } from './commands/lab.js';
import { registerAgent } from './commands/agent.js';
import { registerRamdisk } from './commands/ramdisk.js';
import { registerTokens } from './commands/tokens.js';
import { registerApprovals } from './commands/approvals.js';
import { registerAudit } from './commands/audit.js';
import { registerPlatformKinds } from './commands/platform-kinds.js';
import { registerClaims } from './commands/claims.js';

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

export function buildProgram(): Command {
  const program = new Command('ingot');
  program
    .description('Ingot: enroll, inspect, clean and provision bare-metal servers through their BMCs')
    .version(version(), '-V, --version')
    .enablePositionalOptions()
    .addHelpText('after', '\nThe API address and token come from INGOT_SERVER and INGOT_TOKEN, else from `ingot login`.\nProject commands (claim, claimset) take --project, else INGOT_PROJECT, else `ingot login --project`.')
    .showHelpAfterError('(run with --help for usage)')
    .configureHelp({ sortSubcommands: false });
  // The API address and token come from INGOT_SERVER / INGOT_TOKEN or `ingot login`'s file
  // (no global --server flag: `login` and `lab enroll` use --server for their own meaning).
  const ctx = createContext(() => undefined);
  registerServer(program, ctx);
  registerQuickstart(program, ctx);
  registerLogin(program, ctx);
  registerApply(program, ctx);
  registerHosts(program, ctx);
  registerSecrets(program, ctx);
  registerPlatformKinds(program, ctx);
  registerClaims(program, ctx);
  registerSecretsRekey(program, ctx);
  registerLab(program, ctx);
  registerAgent(program, ctx);
  registerRamdisk(program, ctx);
  registerTokens(program, ctx);
  registerApprovals(program, ctx);
  registerAudit(program, ctx);
  return program;
}

export async function main(argv: string[] = process.argv): Promise<void> {
  const program = buildProgram();
  program.exitOverride();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // commander already printed the message (or the help/version text)
      process.exitCode = err.exitCode;
      return;
    }
    process.stderr.write(`ingot: error: ${(err as Error)?.message ?? String(err)}\n`);
    process.exitCode = 1;
  }
}

await main();
// Idle keep-alive sockets of fetch would hold the process open for a few seconds after the
// command is done; leave once what was written has been flushed.
process.stdout.write('', () => process.stderr.write('', () => process.exit()));
