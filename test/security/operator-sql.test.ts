import mysql, { type Connection } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rbac } from '../../src/verbs/rbac.ts';
import { Chat } from '../../src/bot/chat.ts';
import { TERMINAL_STYLE } from '../../src/verbs/text-views.ts';
import { parseMysqlUrl } from '../../src/core/db/mysql-url.ts';
import { runCli } from '../support/cli.ts';
import { leaseMoodleDatabase, type TestDatabase } from '../support/databases.ts';
import { opsFixture, registerInstances, startWorker, type OpsFixture } from '../support/fleet.ts';
import { testServices } from '../support/services.ts';
import { knownSecret } from '../support/secrets.ts';

let fx: OpsFixture;
let site: TestDatabase;
let conn: Connection;
const run = (...args: string[]) => runCli(args, fx.env);
const DB_PASSWORD = 'Registry-Pa55-kept-in-vdbpass';

async function count(sql: string): Promise<number> {
  const [rows] = await conn.query(sql);
  return Number((rows as Array<{ n: number }>)[0]?.n);
}

describe.runIf(testServices().moodleDump)('operator SQL cannot read what it must not', () => {
  beforeAll(async () => {
    const master = await leaseMoodleDatabase();
    site = await leaseMoodleDatabase();
    fx = await opsFixture('opsql', master);
    await registerInstances(fx, [
      { shortname: 'alpha', database: site.name },
      { shortname: 'locked', database: 'moodle_locked' },
    ]);
    await fx.app.masterDb(fx.rt.registry.table).where({ shortname: 'locked' }).update({ vdbpass: DB_PASSWORD });
    startWorker(fx);
    conn = await mysql.createConnection(parseMysqlUrl(testServices().mysqlServer));
  });
  afterAll(() => conn.end());

  const modules = () => count(`SELECT COUNT(*) AS n FROM \`${site.name}\`.mdl_modules`);

  it.each([
    [
      'a UNION',
      `1=0 UNION SELECT id,shortname,vdblogin,0,vdbpass,0 FROM ${'`MASTER`'}.mdl_local_vmoodle`,
      /select: UNION/,
    ],
    ['a subquery', `id IN (SELECT id FROM ${'`MASTER`'}.mdl_local_vmoodle WHERE vdbpass <> '')`, /select: a subquery/],
    ['an executable comment', 'visible = 0 /*!50000 UNION SELECT 1,2,3,4,5,6 */', /select: comments are not allowed/],
    ['a MariaDB executable comment', 'visible = 0 /*M! OR 1=1 */', /select: comments are not allowed/],
    ['a line comment', "visible = 0 -- ' OR 1=1", /select: comments are not allowed/],
    [
      'a function off the allow-list',
      "name = LOAD_FILE('/etc/passwd')",
      /select: the function LOAD_FILE is not allowed/,
    ],
    ['a column of another table', 'mdl_local_vmoodle.vdbpass IS NOT NULL', /select: only the columns of modules/],
    ['an unknown column', 'vdbpass IS NOT NULL', /select: modules has no column vdbpass/],
    ['two conditions', 'visible = 0; DELETE FROM mdl_user', /select: one condition/],
  ])('refuses a WHERE clause with %s, before anything is planned or written', async (_label, clause, message) => {
    const before = await modules();
    const runsBefore = (await fx.rt.store.listRuns(1000)).length;
    const result = await run(
      'run',
      'generic/copytable',
      '--hosts',
      'alpha',
      'table=modules',
      `select=${clause.replaceAll('MASTER', fx.master.name)}`,
      '--confirm=1',
    );
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(result.stderr).not.toContain(DB_PASSWORD);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(await modules()).toBe(before);
    expect((await fx.rt.store.listRuns(1000)).length).toBe(runsBefore);
  });

  it.each([
    'local_vmoodle',
    'config',
    'config_plugins',
    'config_log',
    'user',
    'user_private_key',
    'external_tokens',
    'sessions',
    'mnet_host',
  ])('refuses to copy the %s table, which holds secrets or identity', async (table) => {
    const result = await run('run', 'generic/copytable', '--hosts', 'alpha', `table=${table}`, '--confirm=1');
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(new RegExp(`table: ${table} holds secrets or identity and is never copied`));
  });

  it('copies with an allowed WHERE clause rebuilt from its syntax tree, and previews what it will delete and insert', async () => {
    await conn.query(`UPDATE \`${fx.master.name}\`.mdl_modules SET visible = 0 WHERE name IN ('quiz', 'forum')`);
    const result = await run(
      'run',
      'generic/copytable',
      '--hosts',
      'alpha',
      'table=modules',
      "select=visible = 0 AND LOWER(name) NOT IN ('chat') AND id > :min",
      'min=0',
      '--confirm=1',
    );
    expect(result.stderr).toBe('');
    expect(result.stdout).toMatch(/alpha.*delete 24 rows, insert 5 rows/);
    expect(result.stdout).toContain('5 records imported.');
    const [rows] = await conn.query(`SELECT name FROM \`${site.name}\`.mdl_modules ORDER BY name`);
    expect((rows as Array<{ name: string }>).map((r) => r.name)).toEqual([
      'bigbluebuttonbn',
      'forum',
      'quiz',
      'subsection',
      'survey',
    ]);
  });

  it('refuses SELECT … INTO/**/OUTFILE and executable comments, and treats a locking read as destructive SQL', async () => {
    for (const [sql, message] of [
      ["SELECT * FROM {config} INTO/**/OUTFILE '/tmp/vmops-leak'", /SELECT … INTO is not allowed/],
      ["SELECT 1 /*!INTO OUTFILE '/tmp/vmops-leak2' */", /comments MariaDB runs .* are not allowed/],
      ['SELECT * FROM {config} FOR UPDATE', /is destructive: confirm with --confirm=1/],
    ] as const) {
      const result = await run('run', 'sql/sql', '--hosts', 'alpha', `sql=${sql}`, '--yes');
      expect(result.code, sql).toBe(2);
      expect(result.stderr, sql).toMatch(message);
    }
    const read = await run(
      '--json',
      'run',
      'sql/sql',
      '--hosts',
      'alpha',
      "sql=SELECT value FROM {config} WHERE name = 'theme'",
      '--yes',
    );
    expect(read.code).toBe(0);
  });

  it('keeps copytable from an operator barred from data-changing SQL', async () => {
    const rbac = new Rbac({ roles: { admin: ['boss'], operator: ['ops'] }, categories: { sql: 'admin' } });
    const router = new Chat(fx.app, rbac, { threshold: 50, ttlMs: 60_000 }, 'console', TERMINAL_STYLE);
    const reply = await router.handle('run generic/copytable --hosts alpha table=modules select=visible=0', {
      id: 'ops',
    });
    expect(reply.text).toBe('Warning: sql commands need the admin role; you are operator (access_denied)');
    expect((await router.handle('help', { id: 'ops' })).text).not.toContain('generic/copytable');
  });
});

describe.runIf(testServices().moodleDump)('numbers and sizes are checked before anything is written', () => {
  beforeAll(async () => {
    site = await leaseMoodleDatabase();
    fx = await opsFixture('bounds');
    await registerInstances(fx, [{ shortname: 'alpha', database: site.name }]);
  });

  it.each([
    [
      'a canary larger than the run',
      ['--canary', '99999999999999999999'],
      /^vmoodle: --canary takes a whole number from 0 to 1 \(the number of targets\) \[bad_plan\]\n$/,
    ],
    [
      'a failure brake past any count',
      ['--max-failures', '99999999999999999999'],
      /^vmoodle: --max-failures '99999999999999999999' must be a count from 0 to 1 or a percentage from 0% to 100% \[bad_plan\]\n$/,
    ],
    [
      'an oversized value',
      [`value=${'x'.repeat(70_000)}`],
      /^vmoodle: generic\/setconfig: value: at most 65,?\d{3} characters, got 70,?000 \[bad_parameter\]; vmoodle help generic\/setconfig lists its parameters\n$/,
    ],
  ])('refuses %s with one line, no statement and no secret', async (_label, extra, message) => {
    const secret = knownSecret('Smtp-Secret-Never-Printed');
    const words = extra[0]!.startsWith('value=')
      ? ['key=smtppass', ...extra]
      : ['key=smtppass', `value=${secret}`, ...extra];
    const result = await run('run', 'generic/setconfig', '--hosts', 'alpha', ...words, '--yes');
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(result.stderr + result.stdout).not.toMatch(/insert into|secret_params|Smtp-Secret/i);
    expect(await fx.rt.store.listRuns(10)).toEqual([]);
  });
});
