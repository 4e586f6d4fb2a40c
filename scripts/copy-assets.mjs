// The build's second half: what the compiled modules read beside themselves (Lua scripts, SQL) copied from src/
// to the build's folder (dist/, or the one given), at the same relative paths.
import { cpSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const ASSETS = /\.(lua|sql)$/;
const walk = (dir) =>
  readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
const out = process.argv[2] ?? 'dist';
for (const file of walk('src').filter((f) => ASSETS.test(f))) cpSync(file, join(out, relative('src', file)));
