#!/usr/bin/env node
// The CLI runs its TypeScript sources directly, so a fresh clone needs `npm ci` and nothing else.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli.ts');
process.exitCode = await main(process.argv.slice(2));
