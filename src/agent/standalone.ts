// The agent as a program of its own: the entry point bundled into one file for the agent's
// ramdisk (src/boot/agent-bundle.ts), where there is no CLI and no node_modules. Arguments are
// those of `ingot agent` (src/agent/main.ts). Exit status: 0 when the session ended or the
// agent was stopped, 1 when the server refused it, 2 when it could not start.
import { agentMain } from './main.js';

const stop = new AbortController();
process.once('SIGINT', () => stop.abort());
process.once('SIGTERM', () => stop.abort());
try {
  const exit = await agentMain(process.argv.slice(2), stop.signal);
  process.stderr.write(`ingot agent: ${exit.reason}: ${exit.message}\n`);
  process.exitCode = exit.reason === 'refused' ? 1 : 0;
} catch (err) {
  process.stderr.write(`ingot agent: could not start: ${(err as Error).message}\n`);
  process.exitCode = 2;
}
