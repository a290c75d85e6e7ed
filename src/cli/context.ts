// What every command gets: where to print, how to get a client, and a wrapper that turns any
// error into a message and an exit code (so no command handles that on its own).
import type { IngotClient } from '../client/index.js';
import { clientFromConfig, resolveProject } from './config.js';
import { CliError, explainError } from './cli-error.js';

export interface CommandContext {
  out: NodeJS.WriteStream;
  err: NodeJS.WriteStream;
  /** A client for the configured server (throws CliError when none is configured). */
  client(): IngotClient;
  /** The project for a project command: `flag`, else INGOT_PROJECT, else the saved default (throws CliError when none). */
  project(flag?: string): string;
  /** Wraps an action: errors are printed as `ingot: error: …` and set the exit code. */
  run<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void>;
}

export function createContext(getServerFlag: () => string | undefined): CommandContext {
  const ctx: CommandContext = {
    out: process.stdout,
    err: process.stderr,
    client: () => clientFromConfig(getServerFlag()),
    project: (flag) => resolveProject(flag, process.env, getServerFlag()),
    run:
      (fn) =>
      async (...args) => {
        try {
          await fn(...args);
        } catch (err) {
          ctx.err.write(`ingot: error: ${explainError(err)}\n`);
          process.exitCode = err instanceof CliError ? err.exitCode : 1;
          if (process.env.INGOT_DEBUG && err instanceof Error && err.stack) ctx.err.write(err.stack + '\n');
        }
      },
  };
  return ctx;
}
