// The agent bundled into one ES module file for the ramdisk: the agent's code and the packages
// it imports (typebox, undici...), nothing else, so the ramdisk needs no node_modules. esbuild
// (a development dependency) does the bundling; its output depends only on its version and the
// sources, which keeps the ramdisk reproducible.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export class BundleError extends Error {}

/** The bundle's source: the compiled entry in dist/, or the TypeScript one when run from src/ (tests). */
function agentEntry(): string {
  for (const name of ['../agent/standalone.js', '../agent/standalone.ts']) {
    const path = fileURLToPath(new URL(name, import.meta.url));
    if (existsSync(path)) return path;
  }
  throw new BundleError('the agent\'s entry point (src/agent/standalone.ts) is missing from this installation');
}

export async function bundleAgent(): Promise<Buffer> {
  let esbuild: typeof import('esbuild');
  try {
    esbuild = await import('esbuild');
  } catch {
    throw new BundleError('esbuild is not installed: run `npm ci` (or `npm install`) in the Ingot checkout; the ramdisk build bundles the agent with it');
  }
  const result = await esbuild.build({
    entryPoints: [agentEntry()],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    write: false,
    minify: true,
    legalComments: 'none',
    logLevel: 'silent',
    // Bundled CommonJS packages call require() for Node's own modules.
    banner: { js: "import { createRequire as __ingotCreateRequire } from 'node:module'; const require = __ingotCreateRequire(import.meta.url);" },
  }).catch((err: Error) => {
    throw new BundleError(`bundling the agent failed: ${err.message}`);
  });
  const file = result.outputFiles[0];
  if (!file) throw new BundleError('bundling the agent produced no output');
  return Buffer.from(file.contents);
}
