// `ingot server`: the API, agent API and conductor in one process (or one role of them).
import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { LevelWithSilent } from 'pino';
import { createLogger } from '../../server/logger.js';
import { runServer } from '../../server/run-server.js';
import { loadServerConfig, serverOptionsFromConfig } from '../../server/server-config.js';
import { CliError } from '../cli-error.js';
import type { CommandContext } from '../context.js';
import { parseListen } from '../listen-address.js';

/** How long a graceful shutdown may take before the process exits anyway. */
const SHUTDOWN_DEADLINE_MS = 60_000;

const ROLES = ['all', 'api', 'conductor'] as const;
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export interface ServerFlags {
  dataDir: string;
  listen?: string;
  agentListen?: string;
  database?: string;
  role: string;
  logLevel: string;
  keyFile?: string;
  config?: string;
  policyFile?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsClientCa?: string;
  tlsDev?: boolean;
}

export function registerServer(program: Command, ctx: CommandContext): void {
  program
    .command('server')
    .description('run the Ingot API, agent API and conductor')
    .option('--data-dir <dir>', 'where the embedded database and keys live', './.ingot')
    .option('--listen <host:port>', 'public API address (default 127.0.0.1:7385)')
    .option('--agent-listen <host:port>', 'agent API address, on the provisioning network (default 127.0.0.1:7386)')
    .option('--database <url>', 'postgres://… to share one PostgreSQL between servers (default: SQLite in the data dir)')
    .option('--role <role>', `what this process runs: ${ROLES.join(', ')}`, 'all')
    .option('--key-file <path>', 'the secret-encryption key file (default: in the data dir)')
    .option('--config <file>', 'a YAML file of server settings (see docs/server-config.md); flags win over it')
    .option('--policy-file <file>', 'a YAML file of authorization rules overriding the defaults (docs/authz-matrix.md); reloaded on SIGHUP')
    .option('--tls-cert <file>', 'serve the public API over HTTPS with this PEM certificate (with --tls-key)')
    .option('--tls-key <file>', 'the PEM private key of --tls-cert')
    .option('--tls-client-ca <file>', 'require client certificates issued by this PEM CA (mutual TLS; the bearer token is still needed)')
    .option('--tls-dev', 'HTTPS with a generated self-signed development CA in the data dir (never in production)')
    .option('--log-level <level>', `log level: ${LOG_LEVELS.join(', ')}`, 'info')
    .action(ctx.run(async (opts: ServerFlags) => {
      await serverCommand(ctx, opts);
    }));
}

async function serverCommand(ctx: CommandContext, opts: ServerFlags): Promise<void> {
  if (!(ROLES as readonly string[]).includes(opts.role)) throw new CliError(`--role ${opts.role}: use one of ${ROLES.join(', ')}`);
  if (!(LOG_LEVELS as readonly string[]).includes(opts.logLevel)) throw new CliError(`--log-level ${opts.logLevel}: use one of ${LOG_LEVELS.join(', ')}`);
  const listen = opts.listen ? parseListen(opts.listen, '--listen') : undefined;
  const agentListen = opts.agentListen ? parseListen(opts.agentListen, '--agent-listen') : undefined;
  const dataDir = resolve(opts.dataDir);

  const fromFile = opts.config ? serverOptionsFromConfig(await loadServerConfig(resolve(opts.config))) : {};
  if (opts.tlsDev && (opts.tlsCert || opts.tlsKey)) throw new CliError('--tls-dev generates its own certificate: give either --tls-dev or --tls-cert and --tls-key');
  if (!opts.tlsCert !== !opts.tlsKey) throw new CliError('--tls-cert and --tls-key go together: give both (PEM certificate and its private key)');
  // TLS flags replace the file's certificate settings as a whole (mixing a flag's cert with the file's key would be a mistake).
  const tlsFromFlags = opts.tlsDev || opts.tlsCert;
  const tls = tlsFromFlags || opts.tlsClientCa
    ? {
        ...(tlsFromFlags ? {} : fromFile.tls),
        ...(opts.tlsDev ? { dev: true } : {}),
        ...(opts.tlsCert ? { certFile: resolve(opts.tlsCert), keyFile: resolve(opts.tlsKey!) } : {}),
        ...(opts.tlsClientCa ? { clientCaFile: resolve(opts.tlsClientCa) } : tlsFromFlags && fromFile.tls?.clientCaFile ? { clientCaFile: fromFile.tls.clientCaFile } : {}),
      }
    : fromFile.tls;
  if (tls && !tls.dev && !tls.certFile) throw new CliError('--tls-client-ca needs HTTPS: give --tls-cert and --tls-key (or --tls-dev), or a tls: section in --config');

  let server: Awaited<ReturnType<typeof runServer>>;
  try {
    server = await runServer({
      ...fromFile,
      dataDir,
      database: opts.database ?? fromFile.database,
      listen: listen ? opts.listen!.trim() : fromFile.listen,
      agentListen: agentListen ? opts.agentListen!.trim() : fromFile.agentListen,
      role: opts.role as (typeof ROLES)[number],
      keyFile: opts.keyFile ?? fromFile.keyFile,
      ...(opts.policyFile ? { policyFile: resolve(opts.policyFile) } : {}),
      ...(tls ? { tls } : {}),
      // Logs (JSON) go to stderr, so standard output carries only the banner a person or script reads.
      log: createLogger({ level: opts.logLevel as LevelWithSilent, destination: process.stderr }),
    });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException)?.code;
    if (code === 'EADDRINUSE') throw new CliError(`cannot listen: ${(err as Error).message}; another process uses that address: stop it or choose another with --listen / --agent-listen`);
    if (code === 'EACCES') throw new CliError(`cannot listen: ${(err as Error).message}; ports below 1024 need privileges: choose another with --listen`);
    throw err;
  }

  const out = ctx.out;
  if (server.apiUrl) out.write(`Ingot API listening on ${server.apiUrl}\n`);
  if (server.agentUrl) out.write(`Ingot agent API listening on ${server.agentUrl}\n`);
  if (server.tlsCaFile) {
    out.write(`WARNING: development TLS certificate (self-signed CA, not for production). Clients must trust the CA: export INGOT_CA_FILE=${server.tlsCaFile}\n`);
  }
  out.write(`Data directory: ${dataDir}${opts.database ? '' : ' (embedded SQLite database)'}\n`);
  if (server.bootstrapToken) {
    out.write(`Bootstrap admin token (shown once; store it safely): ${server.bootstrapToken}\n`);
    out.write('Use it with the CLI:\n');
    out.write(`  export INGOT_SERVER=${server.apiUrl} INGOT_TOKEN=${server.bootstrapToken}\n`);
    out.write('  ingot host list\n');
    out.write(`or save it: ingot login --server ${server.apiUrl} --token <token>\n`);
  } else if (server.apiUrl) {
    out.write(`Use the admin token printed on the first start: export INGOT_SERVER=${server.apiUrl} INGOT_TOKEN=<token>, or \`ingot login\`\n`);
  }
  out.write('Press Ctrl-C to stop.\n');

  await new Promise<void>((resolveStop) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        ctx.err.write(`ingot: ${signal} again: exiting without waiting\n`);
        process.exit(130);
      }
      stopping = true;
      ctx.err.write(`ingot: ${signal} received, shutting down (again to force)\n`);
      // A referenced timer keeps the process alive while the shutdown waits on timers that are
      // not referenced (loops sleeping between passes): without it Node could find nothing left
      // to wait for and exit with 13 before close() settles. It also bounds a shutdown that hangs.
      const deadline = setTimeout(() => {
        ctx.err.write(`ingot: shutdown did not finish within ${SHUTDOWN_DEADLINE_MS / 1000} s; exiting\n`);
        process.exit(1);
      }, SHUTDOWN_DEADLINE_MS);
      server
        .close()
        .then(() => {
          ctx.err.write('ingot: server stopped\n');
          resolveStop();
        })
        .catch((err: unknown) => {
          ctx.err.write(`ingot: error while shutting down: ${(err as Error)?.message ?? String(err)}\n`);
          process.exitCode = 1;
          resolveStop();
        })
        .finally(() => clearTimeout(deadline));
    };
    // SIGHUP reloads the policy file and the config file's alert rules; a bad file is refused
    // and what runs is kept.
    process.on('SIGHUP', () => {
      void server.reloadPolicy().then((result) => {
        ctx.err.write(result.ok ? 'ingot: SIGHUP: policy reloaded\n' : `ingot: SIGHUP: policy not reloaded: ${result.error}\n`);
      });
      if (opts.config) {
        const path = resolve(opts.config);
        void loadServerConfig(path)
          .then((config) => {
            const rules = serverOptionsFromConfig(config).audit?.alertRules ?? [];
            server.audit.setAlertRules(rules);
            ctx.err.write(`ingot: SIGHUP: ${rules.length} alert rule${rules.length === 1 ? '' : 's'} loaded from ${path}\n`);
          })
          .catch((err: unknown) => ctx.err.write(`ingot: SIGHUP: alert rules not reloaded (the running rules stay): ${(err as Error).message}\n`));
      }
    });
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
