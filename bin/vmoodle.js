#!/usr/bin/env node
// The compiled command line (dist/, built by `npm ci` through the prepare script, or by `npm run build`).
// `npm run dev -- <args>` runs the TypeScript sources instead, while developing.
let cli;
try {
  cli = await import('../dist/bin.js');
} catch (err) {
  if (err?.code !== 'ERR_MODULE_NOT_FOUND' || !String(err.message).includes('dist/bin.js')) throw err;
  process.stderr.write('vmoodle: the compiled command line is missing; run `npm ci` or `npm run build` in the project folder\n');
  process.exitCode = 3;
}
