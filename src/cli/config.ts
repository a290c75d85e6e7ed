// Where the CLI finds its API address and token. INGOT_SERVER / INGOT_TOKEN win (so scripts
// and CI need no file); otherwise the file `ingot login` wrote, at $INGOT_CONFIG or
// ~/.config/ingot/config.json, readable by its owner only since it holds a credential.
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { createClient, type IngotClient } from '../client/index.js';
import { DNS_LABEL } from '../model/envelope.js';
import { CliError, LOGIN_HINT } from './cli-error.js';

export interface SavedConfig {
  server: string;
  token: string;
  /** The default project for project commands (`ingot login --project P`). */
  project?: string;
}

export interface ResolvedConfig {
  server?: string;
  token?: string;
  path: string;
}

const MAX_CONFIG_BYTES = 64 * 1024;

export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.INGOT_CONFIG) return env.INGOT_CONFIG;
  const base = env.XDG_CONFIG_HOME || join(homedir(), '.config');
  return join(base, 'ingot', 'config.json');
}

export function readConfigFile(path: string): Partial<SavedConfig> {
  if (!existsSync(path)) return {};
  const text = readFileSync(path);
  if (text.byteLength > MAX_CONFIG_BYTES) throw new CliError(`the config file ${path} is larger than ${MAX_CONFIG_BYTES} bytes; remove it and run \`ingot login\` again`);
  try {
    const parsed = JSON.parse(text.toString('utf8')) as Record<string, unknown>;
    return {
      server: typeof parsed.server === 'string' ? parsed.server : undefined,
      token: typeof parsed.token === 'string' ? parsed.token : undefined,
      project: typeof parsed.project === 'string' ? parsed.project : undefined,
    };
  } catch {
    throw new CliError(`the config file ${path} is not valid JSON; remove it and run \`ingot login\` again`);
  }
}

export function resolveConfig(env: NodeJS.ProcessEnv = process.env, serverFlag?: string): ResolvedConfig {
  const path = configPath(env);
  const file = env.INGOT_SERVER && env.INGOT_TOKEN ? {} : readConfigFile(path);
  const server = serverFlag || env.INGOT_SERVER || file.server;
  // The saved token belongs to the saved server: never send it to another one.
  const fileToken = file.token && file.server && sameServer(file.server, server) ? file.token : undefined;
  return { server, token: env.INGOT_TOKEN || fileToken, path };
}

/**
 * The project for a project command: --project, else INGOT_PROJECT, else the one `ingot login
 * --project` saved (only for the server it was saved with, like the token); a CliError saying
 * how to give one when there is none.
 */
export function resolveProject(flag: string | undefined, env: NodeJS.ProcessEnv = process.env, serverFlag?: string): string {
  const given = flag ?? (env.INGOT_PROJECT || undefined);
  let project = given;
  let from = flag !== undefined ? '--project' : 'INGOT_PROJECT';
  if (project === undefined) {
    const path = configPath(env);
    const file = readConfigFile(path);
    const server = serverFlag || env.INGOT_SERVER || file.server;
    if (file.project && file.server && sameServer(file.server, server)) {
      project = file.project;
      from = path;
    }
  }
  if (project === undefined || project === '') {
    throw new CliError('no project given: use --project PROJECT, set INGOT_PROJECT, or save a default with `ingot login --server URL --token TOKEN --project PROJECT`');
  }
  if (!DNS_LABEL.test(project) || project.length > 63) {
    throw new CliError(`project "${project}" (from ${from}) is not a project name: use lower-case letters, digits and "-", at most 63 characters`);
  }
  return project;
}

function sameServer(a: string, b: string | undefined): boolean {
  return b !== undefined && a.replace(/\/+$/, '') === b.replace(/\/+$/, '');
}

export function saveConfig(path: string, config: SavedConfig): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(config, null, 2) + '\n', { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

/** A client for the configured server, or a CliError saying what is missing and how to set it. */
export function clientFromConfig(serverFlag?: string): IngotClient {
  const config = resolveConfig(process.env, serverFlag);
  if (!config.server) throw new CliError(`no Ingot API address is configured: ${LOGIN_HINT}`);
  if (!config.token) throw new CliError(`no API token is configured for ${config.server}: ${LOGIN_HINT}`);
  try {
    return createClient({ server: config.server, token: config.token });
  } catch (err) {
    throw new CliError(`${(err as Error).message} (from ${process.env.INGOT_SERVER ? 'INGOT_SERVER' : serverFlag ? '--server' : config.path})`);
  }
}
