import { createHash, randomBytes } from 'node:crypto';
import mysql, { type Connection } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Backend } from '../../src/verbs/backend.ts';
import { loadConfig } from '../../src/core/config.ts';
import { parseMysqlUrl } from '../../src/core/db/mysql-url.ts';
import { startRun } from '../../src/ops/executor/run-actions.ts';
import { createPlan } from '../../src/ops/executor/planner.ts';
import { FINAL_STATES } from '../../src/ops/executor/run-model.ts';
import { runCli } from '../support/cli.ts';
import {
  leaseMoodleDatabase,
  serverConnection,
  thinInstances,
  createDatabase,
  type TestDatabase,
} from '../support/databases.ts';
import { opsFixture, registerInstances, startWorker, type OpsFixture } from '../support/fleet.ts';
import { testServices } from '../support/services.ts';
import { knownSecret } from '../support/secrets.ts';

let conn: Connection;
beforeAll(async () => {
  conn = await mysql.createConnection(parseMysqlUrl(testServices().mysqlServer));
});
afterAll(() => conn.end());

const sha256 = (v: string) => createHash('sha256').update(v).digest('hex');

/** Every row of every table of a database, as one text to search. */
async function dumpDatabase(database: string): Promise<string> {
  const [tables] = await conn.query('SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?', [
    database,
  ]);
  const parts: string[] = [];
  for (const { t } of tables as Array<{ t: string }>) {
    const [rows] = await conn.query(`SELECT * FROM \`${database}\`.\`${t}\``);
    parts.push(`${t}: ${JSON.stringify(rows)}`);
  }
  return parts.join('\n');
}

describe.runIf(testServices().moodleDump)('credentials: each instance connects with its own', () => {
  let fx: OpsFixture;
  const user = `${testServices().runId}_u`.slice(0, 16);
  const password = 'Right-Pa55-for-vmt';

  beforeAll(async () => {
    fx = await opsFixture('creds');
    const db = await createDatabase('creds');
    const prefixes = await thinInstances(db.name, 4, {
      tables: ['config', 'config_log', 'config_plugins'],
      rowsOf: ['config'],
    });
    const names = ['rootok', 'rootwrong', 'userwrong', 'userok'];
    await registerInstances(
      fx,
      prefixes.map((prefix, i) => ({ shortname: names[i] as string, database: db.name, prefix })),
    );
    const server = await serverConnection();
    await server.query(`CREATE USER IF NOT EXISTS ?@'%' IDENTIFIED BY ?`, [user, password]);
    await server.query(`CREATE USER IF NOT EXISTS ?@'localhost' IDENTIFIED BY ?`, [user, password]);
    await server.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON \`${db.name}\`.* TO ?@'%'`, [user]);
    await server.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON \`${db.name}\`.* TO ?@'localhost'`, [user]);
    await server.end();
    const registry = () => fx.app.masterDb(fx.rt.registry.table);
    await registry().where({ shortname: 'rootwrong' }).update({ vdbpass: 'Not-Roots-Password' });
    await registry().where({ shortname: 'userwrong' }).update({ vdblogin: user, vdbpass: 'Wrong-Pa55' });
    await registry().where({ shortname: 'userok' }).update({ vdblogin: user, vdbpass: password });
    startWorker(fx);
  });
  afterAll(async () => {
    const server = await serverConnection();
    await server.query(`DROP USER IF EXISTS ?@'%'`, [user]);
    await server.query(`DROP USER IF EXISTS ?@'localhost'`, [user]);
    await server.end();
  });

  it('fails an instance whose registry password is wrong, alone, while the others apply', async () => {
    const first = await runCli(
      [
        '--json',
        'run',
        'generic/setconfig',
        '--hosts',
        'rootok,rootwrong',
        'key=theme',
        'value=classic',
        '--max-failures=2',
        '--yes',
      ],
      fx.env,
    );
    const byName = (out: string) =>
      Object.fromEntries(
        JSON.parse(out).targets.map((t: { shortname: string; status: string; message: string }) => [t.shortname, t]),
      );
    const a = byName(first.stdout);
    expect(a.rootok.status).toBe('applied');
    expect(a.rootwrong.status).toBe('failed');
    expect(a.rootwrong.message).toMatch(/^database login refused \(ER_ACCESS_DENIED_ERROR\)/);
    expect(first.stdout).not.toContain('Not-Roots-Password');

    const wrongFirst = await runCli(
      [
        '--json',
        'run',
        'generic/setconfig',
        '--hosts',
        'userwrong',
        'key=theme',
        'value=classic',
        '--max-failures=1',
        '--yes',
      ],
      fx.env,
    );
    expect(byName(wrongFirst.stdout).userwrong.status).toBe('failed');
    const rightAfter = await runCli(
      ['--json', 'run', 'generic/setconfig', '--hosts', 'userok', 'key=theme', 'value=classic', '--yes'],
      fx.env,
    );
    expect(byName(rightAfter.stdout).userok.status).toBe('applied');
  });
});

describe.runIf(testServices().moodleDump)('secrets at rest', () => {
  let fx: OpsFixture;
  let sites: TestDatabase[];
  const OLD = knownSecret('Old-Smtp-Pa55-at-rest');
  const NEW = knownSecret('New-Smtp-Pa55-at-rest');

  beforeAll(async () => {
    sites = [await leaseMoodleDatabase(), await leaseMoodleDatabase()];
    fx = await opsFixture('secrets');
    await registerInstances(fx, [
      { shortname: 'alpha', database: sites[0]!.name },
      { shortname: 'beta', database: sites[1]!.name },
    ]);
    await conn.query(`UPDATE \`${sites[0]!.name}\`.mdl_config SET value = ? WHERE name = 'smtppass'`, [OLD]);
    startWorker(fx);
  });

  it('refuses to plan a sensitive write without a key, naming the setting to set', async () => {
    const result = await runCli(
      ['run', 'generic/setconfig', '--hosts', 'alpha', 'key=smtppass', `value=${NEW}`, '--yes'],
      { ...fx.env, VMOODLE_SECRET_KEYS: undefined },
    );
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      'vmoodle: generic/setconfig: value holds a secret; set VMOODLE_SECRET_KEYS (secrets.keys) so it can be kept encrypted while the run waits [bad_parameter]\n',
    );
    expect(await fx.rt.store.listRuns(10)).toEqual([]);
  });

  it('leaves no secret, nor a plain hash of one, in any table of the master, and logs ******** in the target', async () => {
    const result = await runCli(
      ['--json', 'run', 'generic/setconfig', '--hosts', 'alpha,beta', 'key=smtppass', `value=${NEW}`, '--yes'],
      fx.env,
    );
    expect(result.code).toBe(0);
    const runId = JSON.parse(result.stdout).run as number;
    const master = await dumpDatabase(fx.master.name);
    for (const secret of [NEW, OLD, sha256(NEW), sha256(OLD)]) expect(master).not.toContain(secret);
    expect((await fx.rt.store.getRun(runId)).secret_params).toBe('');

    const [alpha] = await conn.query(
      `SELECT value, oldvalue FROM \`${sites[0]!.name}\`.mdl_config_log WHERE name = 'smtppass' ORDER BY id DESC LIMIT 1`,
    );
    expect(alpha).toEqual([{ value: '********', oldvalue: '********' }]);
    const [beta] = await conn.query(
      `SELECT value, oldvalue FROM \`${sites[1]!.name}\`.mdl_config_log WHERE name = 'smtppass' ORDER BY id DESC LIMIT 1`,
    );
    expect(beta).toEqual([{ value: '********', oldvalue: '' }]);
    const [set] = await conn.query(`SELECT value FROM \`${sites[0]!.name}\`.mdl_config WHERE name = 'smtppass'`);
    expect(set).toEqual([{ value: NEW }]);
  });

  it('asks for the value again to retry a sensitive write once its run has ended', async () => {
    const result = await runCli(
      ['--json', 'run', 'generic/setconfig', '--hosts', 'beta', 'key=smtppass', `value=${NEW}x`, '--yes'],
      fx.env,
    );
    const runId = JSON.parse(result.stdout).run as number;
    await conn.query(`UPDATE \`${sites[1]!.name}\`.mdl_config SET value = '' WHERE name = 'smtppass'`);
    const noValue = await runCli(['runs', 'retry', String(runId), '--host', 'beta', '--yes'], fx.env);
    expect(noValue.code).toBe(2);
    expect(noValue.stderr).toBe(
      `vmoodle: run ${runId} wrote a secret (value), which is not kept after a run ends; give it again with the retry, e.g. value=… [bad_parameter]\n`,
    );
    const again = await runCli(
      ['--json', 'runs', 'retry', String(runId), '--host', 'beta', `value=${NEW}y`, '--yes'],
      fx.env,
    );
    expect(again.code).toBe(0);
    const [set] = await conn.query(`SELECT value FROM \`${sites[1]!.name}\`.mdl_config WHERE name = 'smtppass'`);
    expect(set).toEqual([{ value: `${NEW}y` }]);
    expect(await dumpDatabase(fx.master.name)).not.toContain(`${NEW}y`);
  });

  it('rotates keys: a run sealed under the old key still starts once a new key is put first, and new runs use the new key', async () => {
    const plan = await createPlan(fx.rt, {
      command: 'generic/setconfig',
      params: { key: 'smtppass', value: `${NEW}z` },
      selector: { tohosts: ['alpha'] },
      requestedBy: 'tester',
      via: 'cli',
    });
    const oldKey = fx.env.VMOODLE_SECRET_KEYS as string;
    expect(plan.run.key_id).toBe(oldKey.split(':')[0]);
    const rotated = new Backend(
      loadConfig({ ...fx.env, VMOODLE_SECRET_KEYS: `k2:${randomBytes(32).toString('base64')},${oldKey}` }),
    );
    try {
      const rt = await rotated.ops();
      const { started } = await startRun(rt, plan.run.id, 'tester', plan.run.plan_hash);
      expect(started).toBe(true);
      await rt.progress.follow(
        plan.run.id,
        () => undefined,
        (e) => e.type === 'state' && FINAL_STATES.includes(e.state),
      );
      expect((await rt.store.getRun(plan.run.id)).state).toBe('succeeded');
      const [set] = await conn.query(`SELECT value FROM \`${sites[0]!.name}\`.mdl_config WHERE name = 'smtppass'`);
      expect(set).toEqual([{ value: `${NEW}z` }]);
      const next = await createPlan(rt, {
        command: 'generic/setconfig',
        params: { key: 'smtppass', value: `${NEW}w` },
        selector: { tohosts: ['alpha'] },
        requestedBy: 'tester',
        via: 'cli',
      });
      expect(next.run.key_id).toBe('k2');
    } finally {
      await rotated.close();
    }
  });
});
