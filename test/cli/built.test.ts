import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, symlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../src/core/config.ts';
import { createDatabase } from '../support/databases.ts';
import { knownSecret } from '../support/secrets.ts';
import { testServices } from '../support/services.ts';

/**
 * The command line as a package installs it: the build (tsc, then scripts/copy-assets.mjs) in a folder of its own
 * with bin/ and the dependencies, and no sources beside it, so that what the compiled modules read (the gate's Lua,
 * the compact Moodle schema) must come from the build.
 */
describe('the built command line, without its sources', () => {
  let install: string;
  let env: Record<string, string | undefined>;
  const vmoodle = (...args: string[]) =>
    spawnSync(process.execPath, [join(install, 'bin', 'vmoodle.js'), ...args], {
      env: { ...process.env, ...env },
      encoding: 'utf8',
      timeout: 120_000,
    });

  beforeAll(async () => {
    install = mkdtempSync(join(tmpdir(), 'vmops-install-'));
    const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
    execFileSync(process.execPath, [
      tsc,
      '-p',
      join(PROJECT_ROOT, 'tsconfig.build.json'),
      '--outDir',
      join(install, 'dist'),
    ]);
    execFileSync(process.execPath, [join(PROJECT_ROOT, 'scripts', 'copy-assets.mjs'), join(install, 'dist')], {
      cwd: PROJECT_ROOT,
    });
    mkdirSync(join(install, 'bin'));
    cpSync(join(PROJECT_ROOT, 'bin', 'vmoodle.js'), join(install, 'bin', 'vmoodle.js'));
    cpSync(join(PROJECT_ROOT, 'package.json'), join(install, 'package.json'));
    symlinkSync(join(PROJECT_ROOT, 'node_modules'), join(install, 'node_modules'));
    const master = await createDatabase('built');
    env = {
      MYSQL_URL: master.url,
      REDIS_URL: testServices().redisUrl,
      VMOODLE_DATA_DIR: mkdtempSync(join(tmpdir(), 'vmops-built-')),
      VMOODLE_MASTER_WWWROOT: 'https://master.example.org',
      // No dump: the sandbox is made from the compact schema, which the build must carry.
      VMOODLE_MOODLE_DUMP: undefined,
      VMOODLE_QUEUE_PREFIX: `${testServices().runId}-built`,
      VMOODLE_SECRET_KEYS: `k1:${knownSecret(randomBytes(32).toString('base64'))}`,
    };
  }, 180_000);

  it('makes a sandbox from the schema in dist/ and runs a command through the gate scripts in dist/', () => {
    expect(existsSync(join(install, 'src'))).toBe(false);
    expect(existsSync(join(install, 'dist', 'core', 'redis-scripts', 'admit-5.lua'))).toBe(true);
    const made = vmoodle('--json', 'sandbox', 'create', '--count', '2');
    expect(made.stderr).toBe('');
    expect(JSON.parse(made.stdout).created).toHaveLength(2);
    const run = vmoodle('--json', 'run', 'generic/setconfig', '--tohosts', '*', 'key=theme', 'value=classic', '--yes');
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ state: 'succeeded', counts: { applied: 2 } });
  });
});
