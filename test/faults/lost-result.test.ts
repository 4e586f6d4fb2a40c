import { spawn } from 'node:child_process';
import { join } from 'node:path';
import mysql, { type Connection } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../src/core/config.ts';
import { parseMysqlUrl } from '../../src/core/db/mysql-url.ts';
import type { Params } from '../../src/ops/commands/command.ts';
import { createPlan } from '../../src/ops/executor/planner.ts';
import { startRun } from '../../src/ops/executor/run-actions.ts';
import type { TargetRow } from '../../src/ops/executor/run-model.ts';
import { ExecutorWorker } from '../../src/ops/executor/worker.ts';
import { runCli } from '../support/cli.ts';
import { leaseMoodleDatabase, type TestDatabase } from '../support/databases.ts';
import { endedRun, opsFixture, registerInstances, type OpsFixture } from '../support/fleet.ts';
import { siteQueries } from '../support/moodle-log.ts';
import { testServices } from '../support/services.ts';
import { waitFor } from '../support/wait.ts';

let fx: OpsFixture;
let site: TestDatabase;
let conn: Connection;
const onSite = siteQueries(
  () => conn,
  () => site.name,
);
const onMaster = siteQueries(
  () => conn,
  () => fx.master.name,
);

const one = async (sql: string, binds: unknown[] = []) => (await onSite.rows<{ v: unknown }>(sql, binds))[0]?.v ?? null;

/**
 * Runs a command on the site while its result never reaches the master: the worker is killed while the master holds
 * the result back (a row lock the test takes, as a master going away would), so the target's job is delivered again
 * to another worker, which finds the site already at the run's value.
 */
async function loseFirstResult(command: string, params: Params, written: () => Promise<boolean>): Promise<TargetRow> {
  const plan = await createPlan(fx.rt, {
    command,
    params,
    selector: { tohosts: ['site'] },
    requestedBy: 'tester',
    via: 'cli',
  });
  const [target] = (await fx.rt.store.getTargets(plan.run.id)) as [TargetRow];
  const holder = await mysql.createConnection(parseMysqlUrl(fx.env.MYSQL_URL as string));
  await holder.query('START TRANSACTION');
  await holder.query(`SELECT id FROM ${fx.rt.store.t.targets} WHERE id = ? FOR UPDATE`, [target.id]);
  const worker = spawn(process.execPath, [join(PROJECT_ROOT, 'bin', 'vmoodle.js'), 'worker'], {
    env: { ...process.env, ...fx.env },
    stdio: 'ignore',
  });
  const exited = new Promise((resolve) => worker.once('exit', resolve));
  try {
    await startRun(fx.rt, plan.run.id, 'tester', plan.run.plan_hash);
    await waitFor('the write on the site', written);
    worker.kill('SIGKILL');
    await exited;
    // The dead worker's result, still waiting for the lock, goes with it.
    const [waiting] = await holder.query(
      "SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND = 'Query' AND INFO LIKE ? AND ID <> CONNECTION_ID()",
      [`%${fx.rt.store.t.targets}%`],
    );
    for (const { ID } of waiting as Array<{ ID: number }>) await holder.query(`KILL ${Number(ID)}`);
  } finally {
    await holder.query('ROLLBACK');
    await holder.end();
  }

  const next = new ExecutorWorker(fx.rt);
  try {
    await next.waitUntilReady();
    await endedRun(fx, plan.run.id);
  } finally {
    await next.close();
  }
  return (await fx.rt.store.getTargets(plan.run.id))[0] as TargetRow;
}

const revert = async (target: TargetRow) =>
  JSON.parse((await runCli(['--json', 'runs', 'revert', String(target.run_id), '--yes'], fx.env)).stdout);

describe.runIf(testServices().moodleDump)('a result lost between the site and the master', () => {
  beforeAll(async () => {
    site = await leaseMoodleDatabase();
    fx = await opsFixture('lostresult', await leaseMoodleDatabase());
    await registerInstances(fx, [{ shortname: 'site', database: site.name }]);
    conn = await mysql.createConnection(parseMysqlUrl(testServices().mysqlServer));
  });
  afterAll(() => conn?.end());

  it("a setting: records the site's real old value, applied, and revert puts it back", async () => {
    const theme = () => one("SELECT value AS v FROM {config} WHERE name = 'theme'");
    const before = await theme();
    const target = await loseFirstResult(
      'generic/setconfig',
      { key: 'theme', value: 'crashproof' },
      async () => (await theme()) === 'crashproof',
    );
    expect(target).toMatchObject({ status: 'applied', old_value: before, new_value: 'crashproof' });
    expect(await one("SELECT COUNT(*) AS v FROM {config_log} WHERE name = 'theme' AND value = 'crashproof'")).toBe(1);

    expect(await revert(target)).toMatchObject({ state: 'succeeded', counts: { applied: 1 } });
    expect(await theme()).toBe(before);
  });

  it('a capability: records the permission the site had, applied, with one capability event', async () => {
    const cap = 'moodle/course:changeshortname';
    await onSite.rows('DELETE FROM {role_capabilities} WHERE roleid = 3 AND contextid = 1 AND capability = ?', [cap]);
    const events = await onSite.lastId('logstore_standard_log');
    const target = await loseFirstResult(
      'roles/capabilitysync',
      { role: 'editingteacher', capability: cap },
      async () =>
        (await one(
          'SELECT permission AS v FROM {role_capabilities} WHERE roleid = 3 AND contextid = 1 AND capability = ?',
          [cap],
        )) === 1,
    );
    expect(target).toMatchObject({ status: 'applied', old_value: 'INHERIT', new_value: 'ALLOW' });
    expect((await onSite.eventsSince(events)).map((e) => e.eventname)).toEqual(['\\core\\event\\capability_assigned']);
  });

  it('a category hidden: records that it was visible, applied, and revert shows it again', async () => {
    await onSite.rows("UPDATE {course_categories} SET idnumber = 'misc' WHERE id = 1");
    const visible = () => one('SELECT visible AS v FROM {course_categories} WHERE id = 1');
    const target = await loseFirstResult(
      'courses/categoryvisibility',
      { idnumber: 'misc', visible: '0' },
      async () => (await visible()) === 0,
    );
    expect(target).toMatchObject({ status: 'applied', old_value: 'visible', new_value: 'hidden' });

    expect(await revert(target)).toMatchObject({ state: 'succeeded', counts: { applied: 1 } });
    expect(await visible()).toBe(1);
  });

  it("a plugin's settings copied: applied, each setting written once", async () => {
    await onMaster.rows(
      "UPDATE {config_plugins} SET value = 'l' WHERE plugin = 'auth_cas' AND name = 'field_map_city'",
    );
    const city = () =>
      one("SELECT value AS v FROM {config_plugins} WHERE plugin = 'auth_cas' AND name = 'field_map_city'");
    const target = await loseFirstResult(
      'generic/copyfullpluginconfig',
      { plugin: 'auth_cas' },
      async () => (await city()) === 'l',
    );
    expect(target).toMatchObject({ status: 'applied' });
    expect(
      await one(
        "SELECT COUNT(*) AS v FROM {config_log} WHERE plugin = 'auth_cas' AND name = 'field_map_city' AND value = 'l'",
      ),
    ).toBe(1);
  });
});
