#!/usr/bin/env node
// The package registry reachable from our machines does not carry every platform build of
// packages such as rollup (android, darwin, win32 …). `npm install` skips those optional
// dependencies, but still lists them under their parent in package-lock.json, and `npm ci`
// then refuses the lock as out of sync. This drops optional dependencies that have no entry
// of their own in the lock, so `npm ci` installs exactly what `npm install` resolved.
// Run it after any `npm install` that changes package-lock.json.
import { readFileSync, writeFileSync } from 'node:fs';

const path = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(path, 'utf8'));
let dropped = 0;
for (const [where, pkg] of Object.entries(lock.packages ?? {})) {
  if (!pkg.optionalDependencies) continue;
  for (const name of Object.keys(pkg.optionalDependencies)) {
    // npm resolves a dependency in the nearest node_modules up the tree.
    const candidates = [];
    let base = where;
    while (true) {
      candidates.push(`${base ? base + '/' : ''}node_modules/${name}`);
      const idx = base.lastIndexOf('node_modules/');
      if (idx < 0) break;
      base = base.slice(0, idx).replace(/\/$/, '');
    }
    if (!candidates.some((c) => lock.packages[c])) {
      delete pkg.optionalDependencies[name];
      dropped += 1;
    }
  }
}
writeFileSync(path, JSON.stringify(lock, null, 2) + '\n');
process.stdout.write(`prune-lock-optionals: dropped ${dropped} optional dependencies the registry does not serve\n`);
