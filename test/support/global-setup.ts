import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Redis } from 'ioredis';
import mysql from 'mysql2/promise';
import type { TestProject } from 'vitest/node';
import { loadConfig, PROJECT_ROOT } from '../../src/core/config.ts';
import { parseMysqlUrl, withDatabase } from '../../src/core/db/mysql-url.ts';
import { loadDump, restoreSql, runSqlIn } from '../../src/ops/moodle/dump.ts';
import { ensureServices } from '../../src/core/services/index.ts';
import type { TestServices } from './services.ts';

/** Restored Moodle databases made ready before the suites start; a suite that finds none left restores its own. */
export const MOODLE_POOL_SIZE = 3;

/**
 * Uses the same bootstrap as `npm start`: servers at MYSQL_URL / REDIS_URL (default 127.0.0.1), or private ones
 * when nothing answers at the defaults. Restores a pool of Moodle databases in parallel and drops everything
 * the run created at the end.
 */
/** The newest modification time under a folder. */
function newest(dir: string): number {
  return Math.max(
    0,
    ...readdirSync(dir, { withFileTypes: true }).map((e) =>
      e.isDirectory() ? newest(join(dir, e.name)) : statSync(join(dir, e.name)).mtimeMs,
    ),
  );
}

/**
 * Tests that start `bin/vmoodle.js` as a process run the compiled command line, as users do: it is rebuilt when a
 * source is newer than it (a fresh clone has it from `npm ci`).
 */
function ensureCompiled(): void {
  const bin = join(PROJECT_ROOT, 'dist', 'bin.js');
  if (existsSync(bin) && newest(join(PROJECT_ROOT, 'dist')) >= newest(join(PROJECT_ROOT, 'src'))) return;
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: PROJECT_ROOT, stdio: 'inherit' });
}

/**
 * The whole run's log must hold none of the secrets the tests handed the product. (That the log is written at all,
 * through the same settings, is a test of its own: test/security/log.test.ts.)
 */
function searchLogForSecrets(logFile: string, secretsFile: string): void {
  const log = readFileSync(logFile, 'utf8');
  const secrets = [...new Set(readFileSync(secretsFile, 'utf8').split('\n').filter(Boolean))];
  const found = secrets.filter((s) => log.includes(s) || log.includes(JSON.stringify(s).slice(1, -1)));
  if (found.length > 0)
    throw new Error(
      `the test run's log (${logFile}) holds ${found.length} known secret(s), starting ${found.map((s) => `${s.slice(0, 3)}…`).join(', ')}`,
    );
  if (!process.env.KEEP_TEST_LOG) rmSync(logFile);
  rmSync(secretsFile);
}

export default async function setup(project: TestProject) {
  ensureCompiled();
  const env: Record<string, string | undefined> = {
    ...process.env,
    VMOODLE_DATA_DIR: `${PROJECT_ROOT}/data/test-services`,
  };
  // Tests take MYSQL_URL as the server to use; each suite makes its own databases on it.
  if (env.MYSQL_URL) env.MYSQL_URL = withDatabase(env.MYSQL_URL, 'vmt_probe');
  const config = loadConfig(env);
  if (process.env.CI === 'true' && !config.moodleDump) {
    throw new Error('CI needs the Moodle dump at ../shared/fixtures/moodle-4.5.6-tpl.sql.gz (or VMOODLE_MOODLE_DUMP)');
  }
  const services = await ensureServices(config);
  const mysqlServer = withDatabase(services.mysqlUrl, '');
  const runId = `vmt${Date.now().toString(36)}`;
  const poolKey = `${runId}:moodle-pool`;
  const redis = new Redis(services.redisUrl);

  if (config.moodleDump) {
    const sql = restoreSql(await loadDump(config.moodleDump));
    const server = parseMysqlUrl(mysqlServer);
    const names = Array.from({ length: MOODLE_POOL_SIZE }, (_, i) => `${runId}_pool${i}`);
    await Promise.all(names.map((name) => runSqlIn(server, name, sql)));
    await redis.rpush(poolKey, ...names);
  }

  const logFile = join(PROJECT_ROOT, 'data', 'test-logs', `${runId}.log`);
  const secretsFile = `${logFile}.secrets`;
  mkdirSync(dirname(logFile), { recursive: true });
  writeFileSync(logFile, '');
  writeFileSync(secretsFile, '');
  const provided: TestServices = {
    mysqlServer,
    redisUrl: services.redisUrl,
    runId,
    moodleDump: config.moodleDump,
    poolKey,
    logFile,
    secretsFile,
  };
  project.provide('services', provided);

  return async () => {
    searchLogForSecrets(logFile, secretsFile);
    const conn = await mysql.createConnection(parseMysqlUrl(mysqlServer));
    const [rows] = await conn.query(
      'SELECT SCHEMA_NAME AS name FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ?',
      [`${runId}%`],
    );
    for (const { name } of rows as Array<{ name: string }>) await conn.query(`DROP DATABASE \`${name}\``);
    // Sandboxes made by the suites registered their instances with accounts of their own, granted on this run's databases.
    const [accounts] = await conn.query(
      "SELECT DISTINCT User AS user, Host AS host FROM mysql.db WHERE REPLACE(Db, '\\\\', '') LIKE ?",
      [`${runId}%`],
    );
    for (const { user, host } of accounts as Array<{ user: string; host: string }>)
      await conn.query('DROP USER IF EXISTS ?@?', [user, host]);
    await conn.end();
    const keys = await redis.keys(`${runId}*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
    await services.stop();
  };
}
