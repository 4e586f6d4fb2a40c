import { spawn } from 'node:child_process';
import { join } from 'node:path';
import mysql, { type Connection } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../src/core/config.ts';
import { parseMysqlUrl } from '../../src/core/db/mysql-url.ts';
import { createPlan } from '../../src/ops/executor/planner.ts';
import { startRun } from '../../src/ops/executor/run-actions.ts';
import { FINAL_STATES, type TargetRow } from '../../src/ops/executor/run-model.ts';
import { runCli } from '../support/cli.ts';
import { opsFixture, startWorker, thinFleet, type OpsFixture } from '../support/fleet.ts';
import { testServices } from '../support/services.ts';
import { waitFor } from '../support/wait.ts';

let fx: OpsFixture;
let conn: Connection;

const setting = async (t: TargetRow) => {
  const [rows] = await conn.query(`SELECT value FROM \`${t.db_name}\`.\`${t.db_prefix}config\` WHERE name = 'theme'`);
  return (rows as Array<{ value: string }>)[0]?.value;
};
const logRows = async (t: TargetRow, value: string) => {
  const [rows] = await conn.query(
    `SELECT COUNT(*) AS n FROM \`${t.db_name}\`.\`${t.db_prefix}config_log\` WHERE name = 'theme' AND value = ?`,
    [value],
  );
  return Number((rows as Array<{ n: number }>)[0]?.n);
};

/**
 * A write that committed on the site while its result never reached the master: the worker is killed while the
 * master holds the result back (a row lock the test takes, as a master going away would), so the target's job is
 * delivered again to another worker, which finds the site already at the run's value.
 */
describe.runIf(testServices().moodleDump)('a result lost between the site and the master', () => {
  beforeAll(async () => {
    fx = await opsFixture('lostresult');
    await thinFleet(fx, 1);
    conn = await mysql.createConnection(parseMysqlUrl(testServices().mysqlServer));
  });
  afterAll(() => conn?.end());

  it("records the site's real old value, applied, and revert puts it back", async () => {
    const plan = await createPlan(fx.rt, {
      command: 'generic/setconfig',
      params: { key: 'theme', value: 'crashproof' },
      selector: { tohosts: ['t1'] },
      requestedBy: 'tester',
      via: 'cli',
    });
    const [target] = (await fx.rt.store.getTargets(plan.run.id)) as [TargetRow];
    const before = await setting(target);
    expect(before).not.toBe('crashproof');

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
      await waitFor('the write on the site', async () => (await setting(target)) === 'crashproof');
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

    await startWorker(fx).waitUntilReady();
    await waitFor('the run to end', async () => FINAL_STATES.includes((await fx.rt.store.getRun(plan.run.id)).state), {
      timeoutMs: 30_000,
    });
    const [after] = (await fx.rt.store.getTargets(plan.run.id)) as [TargetRow];
    expect(after).toMatchObject({ status: 'applied', old_value: before, new_value: 'crashproof' });
    expect(await logRows(target, 'crashproof')).toBe(1);

    const reverted = await runCli(['--json', 'runs', 'revert', String(plan.run.id), '--yes'], fx.env);
    expect(JSON.parse(reverted.stdout)).toMatchObject({ state: 'succeeded', counts: { applied: 1 } });
    expect(await setting(target)).toBe(before);
  });
});
