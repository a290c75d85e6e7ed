#!/usr/bin/env node
// The `ingot` command. The TypeScript sources are compiled to dist/ by `npm ci`/`npm run build`
// (the package's `prepare` script), so this shim only loads the compiled CLI.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(main))) {
  process.stderr.write('ingot: the compiled CLI is missing (dist/). Run `npm ci` or `npm run build` first.\n');
  process.exit(2);
}
await import(main.href);
