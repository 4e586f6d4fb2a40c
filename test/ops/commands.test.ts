import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mysql, { type Connection } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMysqlUrl } from '../../src/core/db/mysql-url.ts';
import { runCli } from '../support/cli.ts';
import { leaseMoodleDatabase, type TestDatabase } from '../support/databases.ts';
import { opsFixture, registerInstances, startWorker, type OpsFixture } from '../support/fleet.ts';
import { testServices } from '../support/services.ts';

let fx: OpsFixture;
let sites: TestDatabase[];
let conn: Connection;
const run = (...args: string[]) => runCli(args, fx.env);

async function value(db: string, name: string): Promise<string | undefined> {
  const [rows] = await conn.query(`SELECT value FROM \`${db}\`.mdl_config WHERE name = ?`, [name]);
  return (rows as Array<{ value: string }>)[0]?.value;
}

async function count(sql: string, binds: unknown[] = []): Promise<number> {
  const [rows] = await conn.query(sql, binds);
  return Number((rows as Array<{ n: number }>)[0]?.n);
}

/** A dataroot cache as Moodle's file store leaves it. */
function seedCache(shortname: string): string {
  const dir = join(fx.dataDir, shortname, 'cache', 'cachestore_file', 'default_application', 'core_config');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.cache'), 'cached config');
  mkdirSync(join(fx.dataDir, shortname, 'localcache', 'theme'), { recursive: true });
  writeFileSync(join(fx.dataDir, shortname, 'localcache', 'theme', 'x.css'), 'css');
  return dir;
}

describe.runIf(testServices().moodleDump)('commands on databases restored from the real Moodle dump', () => {
  beforeAll(async () => {
    const master = await leaseMoodleDatabase();
    sites = [await leaseMoodleDatabase(), await leaseMoodleDatabase()];
    fx = await opsFixture('commands', master);
    await registerInstances(fx, [
      { shortname: 'alpha', database: sites[0]!.name },
      { shortname: 'beta', database: sites[1]!.name },
    ]);
    startWorker(fx);
    conn = await mysql.createConnection(parseMysqlUrl(testServices().mysqlServer));
  });
  afterAll(() => conn.end());

  it('setconfig changes config, adds the config_log row Moodle would add, and empties the dataroot cache', async () => {
    const cache = seedCache('alpha');
    seedCache('beta');
    const logsBefore = await count(`SELECT COUNT(*) AS n FROM \`${sites[0]!.name}\`.mdl_config_log`);
    const result = await run(
      'run',
      'generic/setconfig',
      '--hosts',
      'alpha,beta',
      'key=theme',
      'value=classic',
      '--yes',
    );
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/alpha\s+boost\s+classic/);
    expect(result.stdout).toContain('succeeded: 2 applied');
    for (const site of sites) expect(await value(site.name, 'theme')).toBe('classic');
    const [logs] = await conn.query(
      `SELECT userid, plugin, name, value, oldvalue FROM \`${sites[0]!.name}\`.mdl_config_log ORDER BY id DESC LIMIT 1`,
    );
    expect(logs).toEqual([{ userid: 0, plugin: null, name: 'theme', value: 'classic', oldvalue: 'boost' }]);
    expect(await count(`SELECT COUNT(*) AS n FROM \`${sites[0]!.name}\`.mdl_config_log`)).toBe(logsBefore + 1);
    expect(existsSync(cache)).toBe(false);
  });

  it('reports a target already at the value as already applied, and writes nothing to it', async () => {
    const logsBefore = await count(`SELECT COUNT(*) AS n FROM \`${sites[1]!.name}\`.mdl_config_log`);
    const result = await run(
      '--json',
      'run',
      'generic/setconfig',
      '--hosts',
      'beta',
      'key=theme',
      'value=classic',
      '--yes',
    );
    expect(JSON.parse(result.stdout).targets[0].status).toBe('already_applied');
    expect(await count(`SELECT COUNT(*) AS n FROM \`${sites[1]!.name}\`.mdl_config_log`)).toBe(logsBefore);
  });

  it('purgecaches moves every revision and every course cacherev forward and empties cache and localcache', async () => {
    const revs = ['themerev', 'jsrev', 'langrev', 'templaterev', 'localcachedirpurged', 'scheduledtaskreset'];
    const before = Object.fromEntries(
      await Promise.all(revs.map(async (r) => [r, Number(await value(sites[0]!.name, r))] as const)),
    );
    const cacherev = await count(`SELECT MIN(cacherev) AS n FROM \`${sites[0]!.name}\`.mdl_course`);
    seedCache('alpha');
    const result = await run('run', 'generic/purgecaches', '--hosts', 'alpha', '--yes');
    expect(result.code).toBe(0);
    for (const rev of revs)
      expect(Number(await value(sites[0]!.name, rev)), rev).toBeGreaterThan(before[rev] as number);
    expect(await count(`SELECT MIN(cacherev) AS n FROM \`${sites[0]!.name}\`.mdl_course`)).toBeGreaterThan(cacherev);
    expect(readdirSync(join(fx.dataDir, 'alpha', 'cache'))).toEqual([]);
    expect(readdirSync(join(fx.dataDir, 'alpha', 'localcache'))).toEqual([]);
  });

  it('copytable copies only the rows the WHERE clause selects on the source, and needs typed confirmation', async () => {
    const refused = await run(
      'run',
      'generic/copytable',
      '--hosts',
      'alpha',
      'table=modules',
      'select=visible = 0',
      '--yes',
    );
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/is destructive: confirm with --confirm=1/);
    expect(await count(`SELECT COUNT(*) AS n FROM \`${sites[0]!.name}\`.mdl_modules`)).toBe(24);

    await conn.query(`UPDATE \`${fx.master.name}\`.mdl_modules SET visible = 0 WHERE name IN ('quiz', 'forum')`);
    const result = await run(
      'run',
      'generic/copytable',
      '--hosts',
      'alpha',
      'table=modules',
      'select=visible = 0',
      '--confirm=1',
    );
    expect(result.stderr).toBe('');
    expect(result.stdout).toContain('6 records imported.');
    const [rows] = await conn.query(`SELECT name FROM \`${sites[0]!.name}\`.mdl_modules ORDER BY name`);
    expect((rows as Array<{ name: string }>).map((r) => r.name)).toEqual([
      'bigbluebuttonbn',
      'chat',
      'forum',
      'quiz',
      'subsection',
      'survey',
    ]);
    expect(await count(`SELECT COUNT(*) AS n FROM \`${sites[1]!.name}\`.mdl_modules`)).toBe(24);
  });

  it('a failing multisql leaves no partial change and says which statement failed', async () => {
    const sql =
      "UPDATE {config} SET value = 'x' WHERE name = 'theme';\nUPDATE {nosuchtable} SET a = 1;\nUPDATE {config} SET value = 'y' WHERE name = 'lang'";
    const result = await run('--json', 'run', 'sql/multisql', '--hosts', 'beta', `sql=${sql}`, '--confirm=1');
    expect(result.code).toBe(1);
    const target = JSON.parse(result.stdout).targets[0];
    expect(target.status).toBe('failed');
    expect(target.message).toMatch(/^statement 2 of 3 failed: .*nosuchtable.* nothing was changed \(rolled back\)/);
    expect(target.attempts).toBe(1);
    expect(await value(sites[1]!.name, 'theme')).toBe('classic');
  });

  it('sql with returned=1 brings back the first row, with named parameters bound, never interpolated', async () => {
    const result = await run(
      '--json',
      'run',
      'sql/sql',
      '--hosts',
      'alpha,beta',
      'sql=SELECT name, value FROM {config} WHERE name = :n',
      "n=theme' OR '1'='1",
      'returned=1',
      '--yes',
    );
    const json = JSON.parse(result.stdout);
    expect(json.targets.map((t: { value: string }) => t.value)).toEqual(['', '']);
    const ok = JSON.parse(
      (
        await run(
          '--json',
          'run',
          'sql/sql',
          '--hosts',
          'alpha',
          'sql=SELECT value FROM {config} WHERE name = :n',
          'n=theme',
          'returned=1',
          '--yes',
        )
      ).stdout,
    );
    expect(ok.targets[0].value).toBe('{"value":"classic"}');
  });

  it('copyfullpluginconfig copies every setting but the version from the master', async () => {
    await conn.query(
      `UPDATE \`${fx.master.name}\`.mdl_config_plugins SET value = 'l' WHERE plugin = 'auth_cas' AND name = 'field_map_city'`,
    );
    const result = await run('run', 'generic/copyfullpluginconfig', '--hosts', 'alpha', 'plugin=auth_cas', '--yes');
    expect(result.stdout).toMatch(/1 setting copied/);
    const [rows] = await conn.query(
      `SELECT value FROM \`${sites[0]!.name}\`.mdl_config_plugins WHERE plugin = 'auth_cas' AND name = 'field_map_city'`,
    );
    expect(rows).toEqual([{ value: 'l' }]);
  });

  it('maintenance turns the web flag and message on, with the CLI maintenance file, and off again', async () => {
    const on = await run(
      'run',
      'generic/maintenance',
      '--hosts',
      'alpha',
      'mmode=1',
      'mmessage=Back at 6',
      'climaintenance=1',
      '--yes',
    );
    expect(on.code).toBe(0);
    expect(await value(sites[0]!.name, 'maintenance_enabled')).toBe('1');
    expect(await value(sites[0]!.name, 'maintenance_message')).toBe('Back at 6');
    expect(existsSync(join(fx.dataDir, 'alpha', 'climaintenance.html'))).toBe(true);
    const off = await run('run', 'generic/maintenance', '--hosts', 'alpha', 'mmode=0', 'climaintenance=1', '--yes');
    expect(off.code).toBe(0);
    expect(await value(sites[0]!.name, 'maintenance_enabled')).toBe('0');
    expect(existsSync(join(fx.dataDir, 'alpha', 'climaintenance.html'))).toBe(false);
  });

  it('refuses unknown commands and parameters with a hint, before planning anything', async () => {
    const unknown = await run('run', 'generic/setconfg', '--hosts', 'alpha', '--yes');
    expect(unknown).toMatchObject({
      code: 2,
      stderr:
        "vmoodle: unknown command 'generic/setconfg' (did you mean 'generic/setconfig'?) [unknown_command]; vmoodle help lists the commands\n",
    });
    const param = await run('run', 'generic/setconfig', '--hosts', 'alpha', 'kye=theme', '--yes');
    expect(param.stderr).toBe(
      "vmoodle: generic/setconfig has no parameter 'kye' (did you mean 'key'?) [bad_parameter]; vmoodle help generic/setconfig lists its parameters\n",
    );
    const missing = await run('run', 'generic/setconfig', '--hosts', 'alpha', '--yes');
    expect(missing.stderr).toBe(
      'vmoodle: generic/setconfig: missing parameter key [bad_parameter]; vmoodle help generic/setconfig lists its parameters\n',
    );
    expect((await fx.rt.store.listRuns(100)).some((r) => r.command === 'generic/setconfg')).toBe(false);
  });
});
