import { spawn } from 'node:child_process';
import { join } from 'node:path';
import mysql, { type Connection } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../src/core/config.ts';
import { parseMysqlUrl } from '../../src/core/db/mysql-url.ts';
import { createPlan } from '../../src/ops/executor/planner.ts';
import { startRun } from '../../src/ops/executor/run-actions.ts';
import type { TargetRow } from '../../src/ops/executor/run-model.ts';
import { runCli } from '../support/cli.ts';
import { opsFixture, startedThemeRun, thinFleet, type OpsFixture } from '../support/fleet.ts';
import { testServices } from '../support/services.ts';
import { passTime } from '../support/wait.ts';

let fx: OpsFixture;
let conn: Connection;

/** A started run no worker has touched: its jobs wait in the queue. */
const startedRun = async (hosts: string[], value: string) => (await startedThemeRun(fx, hosts, value)).id;

/** config_log rows a value's write left on a target: one per real write. */
async function writes(target: TargetRow, value: string): Promise<number> {
  const [rows] = await conn.query(
    `SELECT COUNT(*) AS n FROM \`${target.db_name}\`.\`${target.db_prefix}config_log\` WHERE name = 'theme' AND value = ?`,
    [value],
  );
  return Number((rows as Array<{ n: number }>)[0]?.n);
}

describe.runIf(testServices().moodleDump)('runs that lost their worker', () => {
  beforeAll(async () => {
    fx = await opsFixture('recover');
    await thinFleet(fx, 6);
    conn = await mysql.createConnection(parseMysqlUrl(testServices().mysqlServer));
  });
  afterAll(() => conn?.end());

  it('recover queues lost targets again, marks the one being applied interrupted, and the run ends with each write made once', async () => {
    const runId = await startedRun(['t1', 't2', 't3'], 'recovered');
    // The queue lost the run's work (a flushed Redis, a removed job) while a worker was applying t1.
    await fx.rt.queue.obliterate({ force: true });
    const [t1] = (await fx.rt.store.getTargets(runId)) as [TargetRow];
    await fx.rt.store.db(fx.rt.store.t.targets).where({ id: t1.id }).update({ status: 'applying' });

    const result = await runCli(['runs', 'recover', String(runId)], fx.env);
    expect(result.stdout).toContain(`Run ${runId} running: 2 targets queued again, 1 marked interrupted — verify.`);
    expect(result.stdout).toMatch(
      new RegExp(
        `Run ${runId} partly_failed: 1 interrupted, 2 applied|Run ${runId} partly_failed: 2 applied, 1 interrupted`,
      ),
    );
    expect(result.code).toBe(1);
    const targets = await fx.rt.store.getTargets(runId);
    expect(targets.map((t) => t.status)).toEqual(['interrupted', 'applied', 'applied']);
    for (const t of targets.slice(1)) expect(await writes(t, 'recovered')).toBe(1);
    expect((await fx.rt.store.events(runId)).map((e) => e.kind)).toContain('recover');
  });

  it('recover on a run whose work is still queued says so, and with no worker the command line runs it', async () => {
    const runId = await startedRun(['t4'], 'queued');
    const result = await runCli(['runs', 'recover', String(runId)], fx.env);
    expect(result.stdout).toContain(`Run ${runId} running: 1 still queued or under way.`);
    expect(result.stdout).toContain(`Run ${runId} succeeded: 1 applied`);
    expect(result.code).toBe(0);
  });

  it('cancel reaches a final state with no worker alive', async () => {
    const runId = await startedRun(['t5', 't6'], 'never');
    const result = await runCli(['--json', 'runs', 'cancel', String(runId)], fx.env);
    expect(JSON.parse(result.stdout)).toMatchObject({ run: runId, state: 'cancelled' });
    expect((await fx.rt.store.getRun(runId)).state).toBe('cancelled');
    expect((await fx.rt.store.getTargets(runId)).map((t) => t.status)).toEqual(['cancelled', 'cancelled']);
  });

  it('refuses to recover a run that has ended', async () => {
    const ended = (await fx.rt.store.listRuns(10)).find((r) => r.state === 'cancelled');
    const result = await runCli(['runs', 'recover', String(ended?.id)], fx.env);
    expect(result).toMatchObject({
      code: 1,
      stderr: `vmoodle: run ${ended?.id} is cancelled: only a running or cancelling run is recovered [run_state]; vmoodle runs show <id> shows where it stands\n`,
    });
  });

  it.each(['recover', 'cancel'])(
    'a run whose only worker was killed mid-target reaches a final state by %s',
    async (verb) => {
      const plan = await createPlan(fx.rt, {
        command: 'sql/sql',
        params: { sql: 'SELECT SLEEP(1)' },
        selector: { tohosts: ['t1', 't2', 't3'] },
        requestedBy: 'tester',
        via: 'cli',
      });
      await startRun(fx.rt, plan.run.id, 'tester', plan.run.plan_hash);
      const worker = spawn(process.execPath, [join(PROJECT_ROOT, 'bin/vmoodle.js'), 'worker'], {
        env: { ...process.env, ...fx.env, VMOODLE_WORKER_CONCURRENCY: '1' },
        stdio: 'ignore',
      });
      // Killed while it applies its first target: that job stays active with a lock nobody renews.
      await expect
        .poll(async () => (await fx.rt.store.getTargets(plan.run.id)).some((t) => t.status === 'applying'), {
          timeout: 15_000,
          interval: 50,
        })
        .toBe(true);
      worker.kill('SIGKILL');
      await new Promise((resolve) => worker.once('exit', resolve));
      await passTime(Number(fx.env.VMOODLE_LOCK_DURATION) + 500, "the dead worker's job lock runs out");

      const result = await runCli(['runs', verb, String(plan.run.id)], fx.env);
      const run = await fx.rt.store.getRun(plan.run.id);
      const targets = await fx.rt.store.getTargets(plan.run.id);
      if (verb === 'recover') {
        expect(result.stdout).toContain('1 marked interrupted — verify');
        expect(run.state).toBe('partly_failed');
        expect(targets.filter((t) => t.status === 'interrupted')).toHaveLength(1);
        expect(targets.filter((t) => t.status === 'applied')).toHaveLength(2);
      } else {
        expect(run.state).toBe('cancelled');
        expect(targets.every((t) => ['applied', 'cancelled', 'interrupted'].includes(t.status))).toBe(true);
      }
    },
    60_000,
  );
});
