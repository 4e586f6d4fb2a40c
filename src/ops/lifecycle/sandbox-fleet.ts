import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import type { Config } from '../../core/config.ts';
import { grantLogin } from '../moodle/db-logins.ts';
import { parseMysqlUrl, type MysqlServer } from '../../core/db/mysql-url.ts';
import { restoreSql, runSqlIn } from '../moodle/dump.ts';
import { moodleSource } from '../moodle/moodle-source.ts';
import { makeDistinctSite, readWwwroot } from '../moodle/site-identity.ts';
import type { Instance } from '../../registry/instance.ts';
import type { Registry } from '../../registry/registry.ts';
import { ValidationError } from '../../registry/validation.ts';
import { errorKind, UsageError } from '../../core/errors.ts';

/** Some of the sandbox's instances could not be made; those made are named. */
class SandboxError extends errorKind('target') {}

/** Sandbox instance databases are named after the master database, so they are easy to tell apart and to drop. */
export const sandboxDbPrefix = (masterDatabase: string) => `${masterDatabase}_`;

const DEPARTMENTS = [
  'physics',
  'chemistry',
  'biology',
  'history',
  'law',
  'medicine',
  'music',
  'economics',
  'geography',
  'languages',
  'maths',
  'arts',
];

export interface SandboxInstancePlan {
  shortname: string;
  name: string;
  vhostname: string;
  enabled: boolean;
}

/**
 * The n-th sandbox instance (1-based). The mix is deliberate, so that globs, excludes and the disabled rule all
 * have something to select: two campus hosts in three, every fourth a test site, every fifth disabled.
 */
export function sandboxInstance(n: number): SandboxInstancePlan {
  const dept = DEPARTMENTS[(n - 1) % DEPARTMENTS.length] as string;
  const round = Math.floor((n - 1) / DEPARTMENTS.length);
  const base = round === 0 ? dept : `${dept}${round + 1}`;
  const test = n % 4 === 0;
  const domain = n % 3 === 0 ? 'example.net' : 'campus.example.org';
  const title = dept[0]!.toUpperCase() + dept.slice(1) + (round === 0 ? '' : ` ${round + 1}`);
  return {
    shortname: test ? `${base}_test` : base,
    name: test ? `${title} (test)` : title,
    vhostname: `https://${test ? `${base}-test` : base}.${domain}`,
    enabled: n % 5 !== 0,
  };
}

export interface SandboxContext {
  config: Config;
  mysqlUrl: string;
  registry: Registry;
  log: (line: string) => void;
}

async function restoreSite(
  server: MysqlServer,
  database: string,
  sql: string,
  identity: Omit<Parameters<typeof makeDistinctSite>[1], 'oldWwwroot' | 'database' | 'prefix'>,
): Promise<void> {
  await runSqlIn(server, database, sql);
  const conn = await mysql.createConnection(server);
  try {
    const oldWwwroot = await readWwwroot(conn, database, 'mdl_');
    await makeDistinctSite(conn, { ...identity, database, prefix: 'mdl_', oldWwwroot });
  } finally {
    await conn.end();
  }
}

/**
 * The sandbox master is a Moodle too (copy commands read from it); it is restored once into the configured
 * master database, which must be empty of Moodle tables.
 */
export async function ensureSandboxMaster(ctx: Omit<SandboxContext, 'registry'>): Promise<boolean> {
  const { database, ...server } = parseMysqlUrl(ctx.mysqlUrl, { requireDatabase: true });
  const conn = await mysql.createConnection(server);
  const [rows] = await conn.query(
    'SELECT COUNT(*) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?',
    [database, `${ctx.config.masterPrefix}config`],
  );
  await conn.end();
  if (Number((rows as Array<{ n: number }>)[0]?.n) > 0) return false;
  const source = moodleSource(ctx.config.moodleDump);
  ctx.log(`Restoring the sandbox master ${database} from ${source.compact ? 'the compact schema' : source.path}…`);
  const dataroot = ctx.config.master.dataroot ?? join(ctx.config.dataDir, 'sandbox', 'master');
  mkdirSync(dataroot, { recursive: true });
  await restoreSite(server, database as string, restoreSql(await source.load(), { prefix: ctx.config.masterPrefix }), {
    wwwroot: ctx.config.master.wwwroot as string,
    dataroot,
    fullname: 'Sandbox master',
    shortname: ctx.config.master.shortname,
  });
  return true;
}

/**
 * The account a sandbox's instances are registered with: an instance account's rights on that sandbox's databases,
 * not root's. One per master database (VMoodle's vdblogin holds 16 characters), so sandboxes never share one.
 */
export const sandboxAccountName = (masterDatabase: string) =>
  `vms_${createHash('sha256').update(masterDatabase).digest('hex').slice(0, 12)}`;

/**
 * Creates (or finds) the sandbox's instance account, with rights on the databases named after the master only. Its
 * password lives where VMoodle keeps one, in the instances' registry rows; a new one is set when no row holds it.
 */
async function sandboxAccount(
  server: MysqlServer,
  masterDatabase: string,
  existing: readonly Instance[],
): Promise<{ user: string; password: string }> {
  const user = sandboxAccountName(masterDatabase);
  const dbPrefix = sandboxDbPrefix(masterDatabase);
  const password =
    existing.find((i) => i.vdblogin === user && i.vdbpass)?.vdbpass ?? randomBytes(18).toString('base64url');
  const conn = await mysql.createConnection(server);
  try {
    await grantLogin(conn, user, password, { like: dbPrefix });
  } finally {
    await conn.end();
  }
  return { user, password };
}

/**
 * Adds `count` working instances: each a Moodle database restored from the configured dump (or the compact
 * schema), made a distinct site, with its own dataroot folder and registry row. Two restores run at a time
 * (one per core); an instance is registered only once its database is ready.
 */
export async function createSandbox(ctx: SandboxContext, count: number): Promise<Instance[]> {
  if (!Number.isInteger(count) || count < 1 || count > 1000)
    throw new UsageError(`--count must be a whole number from 1 to 1000, got ${count}`);
  const { database: masterDatabase, ...server } = parseMysqlUrl(ctx.mysqlUrl, { requireDatabase: true });
  const dbPrefix = sandboxDbPrefix(masterDatabase as string);
  const existing = await ctx.registry.loadAll();
  const first = existing.filter((i) => i.vdbname.startsWith(dbPrefix)).length + 1;
  const plans = Array.from({ length: count }, (_, k) => sandboxInstance(first + k));
  const source = moodleSource(ctx.config.moodleDump);
  const sql = restoreSql(await source.load());
  const account = await sandboxAccount(server, masterDatabase as string, existing);
  ctx.log(
    `Creating ${count} sandbox instance${count > 1 ? 's' : ''} from ${source.compact ? 'the compact schema' : source.path}…`,
  );

  const created: Instance[] = [];
  const failures: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < plans.length) {
      const plan = plans[next++] as SandboxInstancePlan;
      const vdatapath = join(ctx.config.dataDir, 'sandbox', plan.shortname);
      const vdbname = dbPrefix + plan.shortname;
      try {
        mkdirSync(vdatapath, { recursive: true });
        await restoreSite(server, vdbname, sql, {
          wwwroot: plan.vhostname,
          dataroot: vdatapath,
          fullname: plan.name,
          shortname: plan.shortname,
        });
        const instance = await ctx.registry.add({
          ...plan,
          description: 'Sandbox instance created by vmoodle sandbox create',
          vdbtype: 'mariadb',
          vdbhost: `${server.host}:${server.port}`,
          vdblogin: account.user,
          vdbpass: account.password,
          vdbname,
          vdbprefix: 'mdl_',
          vdatapath,
        });
        created.push(instance);
        ctx.log(`  ${instance.shortname.padEnd(20)} ${instance.vhostname}${instance.enabled ? '' : ' (disabled)'}`);
      } catch (err) {
        const reason = err instanceof ValidationError ? err.message : (err as Error).message;
        failures.push(`${plan.shortname}: ${reason}`);
      }
    }
  };
  await Promise.all([worker(), worker()]);
  if (failures.length > 0) {
    throw new SandboxError(
      `${failures.length} of ${count} sandbox instances failed (${created.length} created): ${failures.join('; ')}`,
    );
  }
  const order = new Map(plans.map((p, i) => [p.shortname, i]));
  return created.sort((a, b) => (order.get(a.shortname) ?? 0) - (order.get(b.shortname) ?? 0));
}
