import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import mysql, { type Connection } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../src/core/config.ts';
import { parseMysqlUrl } from '../../src/core/db/mysql-url.ts';
import { cancelRun, goRun, revertRun, startRun } from '../../src/ops/executor/run-actions.ts';
import { createPlan, type PlanRequest } from '../../src/ops/executor/planner.ts';
import type { RunServices } from '../../src/ops/executor/run-services.ts';
import { FINAL_STATES, type RunRow, type TargetRow } from '../../src/ops/executor/run-model.ts';
import { runCli } from '../support/cli.ts';
import {
  allowTestServer,
  opsFixture,
  registerInstances,
  startWorker,
  thinFleet,
  type OpsFixture,
} from '../support/fleet.ts';
import { testServices } from '../support/services.ts';
import { knownSecret } from '../support/secrets.ts';
import { passTime, waitFor } from '../support/wait.ts';

let conn: Connection;
beforeAll(async () => {
  conn = await mysql.createConnection(parseMysqlUrl(testServices().mysqlServer));
});
afterAll(() => conn.end());

const request = (
  command: string,
  params: Record<string, string>,
  hosts: string[] | '*',
  extra: Partial<PlanRequest> = {},
): PlanRequest => ({
  command,
  params,
  selector: { tohosts: hosts },
  requestedBy: 'tester',
  via: 'cli',
  ...extra,
});

async function waitForRun(rt: RunServices, runId: number): Promise<{ run: RunRow; targets: TargetRow[] }> {
  await rt.progress.follow(
    runId,
    () => undefined,
    (e) => e.type === 'state' && FINAL_STATES.includes(e.state),
  );
  return { run: await rt.store.getRun(runId), targets: await rt.store.getTargets(runId) };
}

async function plannedAndStarted(rt: RunServices, req: PlanRequest) {
  const plan = await createPlan(rt, req);
  await startRun(rt, plan.run.id, 'tester', plan.run.plan_hash);
  return waitForRun(rt, plan.run.id);
}

const statuses = (targets: TargetRow[]) => {
  const counts: Record<string, number> = {};
  for (const t of targets) counts[t.status] = (counts[t.status] ?? 0) + 1;
  return counts;
};

/** config_log rows a target's setting change left: one per real write. */
async function logRows(target: TargetRow, name: string, value: string): Promise<number> {
  const [rows] = await conn.query(
    `SELECT COUNT(*) AS n FROM \`${target.db_name}\`.\`${target.db_prefix}config_log\` WHERE name = ? AND value = ?`,
    [name, value],
  );
  return Number((rows as Array<{ n: number }>)[0]?.n);
}

async function settingOf(target: TargetRow, name: string): Promise<string | undefined> {
  const [rows] = await conn.query(
    `SELECT value FROM \`${target.db_name}\`.\`${target.db_prefix}config\` WHERE name = ?`,
    [name],
  );
  return (rows as Array<{ value: string }>)[0]?.value;
}

describe.runIf(testServices().moodleDump)('executor', () => {
  let fx: OpsFixture;
  let fleet: string[];

  beforeAll(async () => {
    // A short deadline: a target whose server refuses is tried again until it has passed.
    fx = await opsFixture('exec', undefined, { VMOODLE_TARGET_TIMEOUT: '4' });
    fleet = await thinFleet(fx, 60);
    await registerInstances(fx, [{ shortname: 'unreachable', database: 'moodle_gone', vdbhost: '127.0.0.1:1' }]);
    await allowTestServer(fx.app, ['127.0.0.1:1']);
    startWorker(fx);
  });

  it('fails a target whose database is unreachable, once its retries reached its deadline, while every other target succeeds', async () => {
    const result = await runCli(
      [
        '--json',
        'run',
        'generic/setconfig',
        '--hosts',
        't1,t2,t3,unreachable,t4',
        'key=theme',
        'value=classic',
        '--max-failures=1',
        '--yes',
      ],
      fx.env,
    );
    expect(result.code).toBe(1);
    const json = JSON.parse(result.stdout);
    expect(json.state).toBe('partly_failed');
    const bad = json.targets.find((t: { shortname: string }) => t.shortname === 'unreachable');
    expect(bad.status).toBe('failed');
    expect(bad.message).toMatch(/^database server refused the connection \(ECONNREFUSED\).*\(after \d+ attempts\)$/);
    expect(bad.attempts).toBeGreaterThan(2);
    expect(bad.message).toContain(`(after ${bad.attempts} attempts)`);
    expect(json.targets.filter((t: { status: string }) => t.status === 'applied')).toHaveLength(4);
  });

  it('starts a plan submitted twice at once only once, and applies it once', async () => {
    const plan = await createPlan(
      fx.rt,
      request('generic/setconfig', { key: 'lang', value: 'fr' }, ['t5', 't6', 't7']),
    );
    const starts = await Promise.all([1, 2, 3].map(() => startRun(fx.rt, plan.run.id, 'tester', plan.run.plan_hash)));
    expect(starts.filter((s) => s.started)).toHaveLength(1);
    const { targets } = await waitForRun(fx.rt, plan.run.id);
    expect(statuses(targets)).toEqual({ applied: 3 });
    for (const t of targets) expect(await logRows(t, 'lang', 'fr')).toBe(1);
  });

  it('refuses to start a plan whose parameters or targets changed since it was shown', async () => {
    const plan = await createPlan(fx.rt, request('generic/setconfig', { key: 'lang', value: 'de' }, ['t8']));
    await expect(startRun(fx.rt, plan.run.id, 'tester', 'f'.repeat(64))).rejects.toThrow(
      /is not the plan that was shown/,
    );
    await fx.app
      .masterDb(fx.rt.store.t.runs)
      .where({ id: plan.run.id })
      .update({ params: JSON.stringify({ key: 'lang', value: 'es', unset: '0' }) });
    await expect(startRun(fx.rt, plan.run.id, 'tester', plan.run.plan_hash)).rejects.toThrow(
      /was changed after it was planned/,
    );
    const other = await createPlan(fx.rt, request('generic/setconfig', { key: 'lang', value: 'de' }, ['t9']));
    await fx.app.masterDb(fx.rt.registry.table).where({ shortname: 't9' }).update({ vdbprefix: 'zz_' });
    await expect(startRun(fx.rt, other.run.id, 'tester', other.run.plan_hash)).rejects.toThrow(
      /registry changed since run \d+ was planned: t9 \(database or wwwroot changed\)/,
    );
    expect((await fx.rt.store.getRun(other.run.id)).state).toBe('planned');
  });

  it('reports a redelivered target whose worker died after writing as already applied, writing nothing twice', async () => {
    const plan = await createPlan(
      fx.rt,
      request('generic/setconfig', { key: 'theme', value: 'boost_union' }, ['t10', 't11']),
    );
    const dead = plan.targets[0] as TargetRow;
    // What a worker killed between its commit and its report leaves behind.
    await conn.query(
      `UPDATE \`${dead.db_name}\`.\`${dead.db_prefix}config\` SET value = 'boost_union' WHERE name = 'theme'`,
    );
    await conn.query(
      `INSERT INTO \`${dead.db_name}\`.\`${dead.db_prefix}config_log\` (userid, timemodified, name, value, oldvalue) VALUES (0, 1, 'theme', 'boost_union', 'boost')`,
    );
    await fx.app.masterDb(fx.rt.store.t.targets).where({ id: dead.id }).update({ status: 'applying', attempts: 1 });
    await startRun(fx.rt, plan.run.id, 'tester', plan.run.plan_hash);
    const { targets } = await waitForRun(fx.rt, plan.run.id);
    expect(targets.map((t) => t.status)).toEqual(['already_applied', 'applied']);
    for (const t of targets) expect(await logRows(t, 'theme', 'boost_union')).toBe(1);
  });

  it('reports a redelivered target of a command that is unsafe to repeat as interrupted, and does not run it again', async () => {
    const plan = await createPlan(
      fx.rt,
      request('sql/multisql', { sql: "UPDATE {config} SET value = 'fr' WHERE name = 'lang'" }, ['t12']),
    );
    await fx.app
      .masterDb(fx.rt.store.t.targets)
      .where({ id: plan.targets[0]!.id })
      .update({ status: 'applying', attempts: 1 });
    await startRun(fx.rt, plan.run.id, 'tester', plan.run.plan_hash);
    const { targets } = await waitForRun(fx.rt, plan.run.id);
    expect(targets[0]).toMatchObject({ status: 'interrupted' });
    expect(targets[0]!.message).toMatch(/^interrupted — verify/);
    expect(await settingOf(targets[0]!, 'lang')).toBe('en');
  });

  it('waits after the canary targets until told to go on', async () => {
    const plan = await createPlan(
      fx.rt,
      request('generic/setconfig', { key: 'theme', value: 'classic' }, ['t13', 't14', 't15', 't16', 't17', 't18'], {
        canary: 2,
      }),
    );
    await startRun(fx.rt, plan.run.id, 'tester', plan.run.plan_hash);
    let seen = 0;
    await fx.rt.progress.follow(
      plan.run.id,
      () => void seen++,
      () => seen === 2,
    );
    await passTime(2500, 'the run, were it not waiting for a go, would have gone on by now');
    expect(statuses(await fx.rt.store.getTargets(plan.run.id))).toEqual({ applied: 2, pending: 4 });
    await goRun(fx.rt, plan.run.id, 'tester');
    const { run, targets } = await waitForRun(fx.rt, plan.run.id);
    expect(run.state).toBe('succeeded');
    expect(statuses(targets)).toEqual({ applied: 6 });
  });

  it('cancel starts no more targets; those done stay done and are reported', async () => {
    const names = fleet.slice(20, 40);
    const plan = await createPlan(
      fx.rt,
      request('generic/setconfig', { key: 'theme', value: 'classic' }, names, { canary: 3 }),
    );
    await startRun(fx.rt, plan.run.id, 'tester', plan.run.plan_hash);
    let seen = 0;
    await fx.rt.progress.follow(
      plan.run.id,
      () => void seen++,
      () => seen === 3,
    );
    expect((await cancelRun(fx.rt, plan.run.id, 'tester')).state).toBe('cancelling');
    const { run, targets } = await waitForRun(fx.rt, plan.run.id);
    expect(run.state).toBe('cancelled');
    expect(statuses(targets)).toEqual({ applied: 3, cancelled: 17 });
    const untouched = targets.filter((t) => t.status === 'cancelled');
    for (const t of untouched) expect(await settingOf(t, 'theme')).toBe('boost');
    expect((await fx.rt.store.events(run.id)).map((e) => e.kind)).toEqual(['plan', 'start', 'cancel']);
  });

  it('puts back the recorded old values with a revert run', async () => {
    const names = fleet.slice(40, 45);
    const first = await plannedAndStarted(
      fx.rt,
      request('generic/setconfig', { key: 'theme', value: 'classic' }, names),
    );
    expect(first.run.state).toBe('succeeded');
    const revert = await revertRun(fx.rt, first.run.id, 'tester');
    expect(revert.run).toMatchObject({ kind: 'revert', parent_id: first.run.id });
    await startRun(fx.rt, revert.run.id, 'tester', revert.run.plan_hash);
    const { run, targets } = await waitForRun(fx.rt, revert.run.id);
    expect(run.state).toBe('succeeded');
    for (const t of targets) {
      expect(await settingOf(t, 'theme')).toBe('boost');
      expect(await logRows(t, 'theme', 'boost')).toBe(1);
    }
  });

  it('keeps only the targets where a --by-value query returns something', async () => {
    await conn.query(
      `UPDATE \`${(await fx.rt.store.db(fx.rt.registry.table).where({ shortname: 't50' }).first()).vdbname}\`.i50_config SET value = 'fr' WHERE name = 'lang'`,
    );
    const result = await runCli(
      [
        '--json',
        'run',
        'generic/purgecaches',
        '--hosts',
        't50,t51,t52',
        '--by-value',
        "SELECT value FROM {config} WHERE name = 'lang' AND value = 'fr'",
        '--yes',
      ],
      fx.env,
    );
    expect(JSON.parse(result.stdout).targets.map((t: { shortname: string }) => t.shortname)).toEqual(['t50']);
  });

  it('never lets two runs write one instance at once', async () => {
    const slow = await createPlan(fx.rt, request('sql/sql', { sql: 'SELECT SLEEP(1.5)' }, ['t53']));
    const quick = await createPlan(fx.rt, request('generic/setconfig', { key: 'lang', value: 'it' }, ['t53']));
    await startRun(fx.rt, slow.run.id, 'tester', slow.run.plan_hash);
    await waitFor('the slow run holding t53', async () =>
      (await fx.rt.store.getTargets(slow.run.id)).some((t) => t.status === 'applying'),
    );
    await startRun(fx.rt, quick.run.id, 'tester', quick.run.plan_hash);
    const [a, b] = await Promise.all([waitForRun(fx.rt, slow.run.id), waitForRun(fx.rt, quick.run.id)]);
    expect(b.targets[0]!.status).toBe('applied');
    expect(b.targets[0]!.started_at).toBeGreaterThanOrEqual(a.targets[0]!.finished_at as number);
  });

  it('reports a write whose dataroot no worker reaches as applied, cache not purged, and exits non-zero', async () => {
    const twin = await fx.rt.store.db(fx.rt.registry.table).where({ shortname: 't59' }).first();
    await registerInstances(fx, [
      { shortname: 'nocache', database: twin.vdbname, prefix: twin.vdbprefix, unreachableDataroot: true },
    ]);
    const result = await runCli(
      ['--json', 'run', 'generic/setconfig', '--hosts', 'nocache', 'key=lang', 'value=pt', '--yes'],
      fx.env,
    );
    expect(result.code).toBe(1);
    const json = JSON.parse(result.stdout);
    expect(json.state).toBe('succeeded');
    expect(json.targets[0]).toMatchObject({ status: 'applied_cache_not_purged' });
    expect(json.targets[0].message).toMatch(/cache not purged/);
  });

  it('keeps a sensitive setting’s value out of Redis, job data, result rows and output', async () => {
    const secret = knownSecret('S3cret-smtp-Pa55');
    const names = fleet.slice(45, 50);
    const result = await runCli(
      ['run', 'generic/setconfig', '--hosts', names.join(','), 'key=smtppass', `value=${secret}`, '--yes'],
      fx.env,
    );
    expect(result.code).toBe(0);
    const runId = Number(/Run (\d+) started/.exec(result.stdout)?.[1]);
    const targets = await fx.rt.store.getTargets(runId);
    for (const t of targets) expect(await settingOf(t, 'smtppass')).toBe(secret);

    const redisDump: string[] = [];
    for (const key of await fx.rt.redis.keys(`${fx.env.VMOODLE_QUEUE_PREFIX}*`)) {
      const type = await fx.rt.redis.type(key);
      if (type === 'string') redisDump.push((await fx.rt.redis.get(key)) ?? '');
      if (type === 'hash') redisDump.push(JSON.stringify(await fx.rt.redis.hgetall(key)));
      if (type === 'list') redisDump.push(JSON.stringify(await fx.rt.redis.lrange(key, 0, -1)));
      if (type === 'zset' || type === 'set')
        redisDump.push(
          JSON.stringify(type === 'zset' ? await fx.rt.redis.zrange(key, '0', '-1') : await fx.rt.redis.smembers(key)),
        );
      if (type === 'stream') redisDump.push(JSON.stringify(await fx.rt.redis.xrange(key, '-', '+')));
    }
    expect(redisDump.join('\n')).toContain(`r${runId}-t`);
    expect(redisDump.join('\n')).not.toContain(secret);
    const [run] = await fx.app.masterDb(fx.rt.store.t.runs).where({ id: runId }).select('params', 'summary');
    expect(JSON.stringify(run)).not.toContain(secret);
    expect(JSON.stringify(await fx.app.masterDb(fx.rt.store.t.targets).where({ run_id: runId }))).not.toContain(secret);
    expect(result.stdout + result.stderr).not.toContain(secret);
    const shown = await runCli(['runs', 'show', String(runId)], fx.env);
    expect(shown.stdout).toContain('value = ••••••');
    expect(shown.stdout + shown.stderr).not.toContain(secret);
    await expect(revertRun(fx.rt, runId, 'tester')).rejects.toThrow(
      /sensitive setting; its old value was never stored/,
    );
  });
});

describe.runIf(testServices().moodleDump)('executor brakes', () => {
  it('stops a target that outlives its timeout, keeping its instance lock until its query is killed', async () => {
    const fx = await opsFixture('timeout', undefined, { VMOODLE_TARGET_TIMEOUT: '1' });
    await thinFleet(fx, 1);
    startWorker(fx);
    const plan = await createPlan(fx.rt, request('sql/sql', { sql: 'SELECT SLEEP(30) AS held' }, ['t1']));
    const [target] = plan.targets as [TargetRow];
    const lockKey = fx.rt.keys.instanceLock(target.db_server, target.db_name, target.db_prefix);
    const samples: Array<{ locked: boolean; sleeping: boolean }> = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        // The query first, then the lock: a lock seen gone while the query still runs is a lock let go too early.
        const [rows] = await conn.query(
          "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT SLEEP(30) AS held%'",
        );
        const sleeping = Number((rows as Array<{ n: number }>)[0]?.n) > 0;
        samples.push({ locked: (await fx.rt.redis.exists(lockKey)) === 1, sleeping });
        await passTime(25, 'the sampling interval');
      }
    })();
    const started = Date.now();
    await startRun(fx.rt, plan.run.id, 'tester', plan.run.plan_hash);
    const { targets } = await waitForRun(fx.rt, plan.run.id);
    const seconds = (Date.now() - started) / 1000;
    sampling = false;
    await sampler;
    expect(targets[0]).toMatchObject({
      status: 'interrupted',
      message: 'timed out after 1 s; its work was stopped; the change may or may not be made — verify',
    });
    expect(seconds).toBeLessThan(10);
    expect(samples.some((x) => x.sleeping && x.locked)).toBe(true);
    expect(samples.filter((x) => x.sleeping && !x.locked)).toEqual([]);
    // The run may be reported ended a moment before the worker lets go of the lock.
    await expect.poll(() => fx.rt.redis.exists(lockKey), { timeout: 5000 }).toBe(0);
    // A fresh look once the run has ended: the sampler's last round may have read the process list before the kill.
    const [after] = await conn.query(
      "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT SLEEP(30) AS held%'",
    );
    expect(Number((after as Array<{ n: number }>)[0]?.n)).toBe(0);
  });

  it('stops starting targets once more than --max-failures have failed', async () => {
    const fx = await opsFixture('brake', undefined, { VMOODLE_WORKER_CONCURRENCY: '1' });
    const fleet = await thinFleet(fx, 2);
    await registerInstances(
      fx,
      Array.from({ length: 12 }, (_, i) => ({ shortname: `broken${i}`, database: 'vmt_no_such_db', prefix: 'mdl_' })),
    );
    startWorker(fx);
    const result = await runCli(
      [
        '--json',
        'run',
        'generic/setconfig',
        '--tohosts',
        '*',
        'key=theme',
        'value=classic',
        '--max-failures=3',
        '--yes',
      ],
      fx.env,
    );
    const json = JSON.parse(result.stdout);
    expect(result.code).toBe(1);
    expect(json.counts.failed).toBe(4);
    expect(json.counts.skipped + json.counts.failed + (json.counts.applied ?? 0)).toBe(14);
    expect(json.counts.skipped).toBeGreaterThanOrEqual(8);
    const skipped = json.targets.find((t: { status: string }) => t.status === 'skipped');
    expect(skipped.message).toBe('not started: more than 3 targets failed (--max-failures)');
    expect(fleet).toHaveLength(2);
  });

  it('lets one failure of a six-target run pass under the default 10 % brake, which is at least one target', async () => {
    const fx = await opsFixture('smallbrake', undefined, { VMOODLE_WORKER_CONCURRENCY: '1' });
    await registerInstances(fx, [{ shortname: 'broken', database: 'vmt_no_such_db', prefix: 'mdl_' }]);
    await thinFleet(fx, 5);
    startWorker(fx);
    const result = await runCli(
      ['--json', 'run', 'generic/setconfig', '--tohosts', '*', 'key=theme', 'value=classic', '--yes'],
      fx.env,
    );
    const json = JSON.parse(result.stdout);
    expect(json.counts).toEqual({ failed: 1, applied: 5 });
  });
});

describe.runIf(testServices().moodleDump)('executor across worker processes', () => {
  it('finishes a run whose worker is killed mid-run on another worker, applying no target twice', async () => {
    const fx = await opsFixture('kill', undefined, { VMOODLE_WORKER_CONCURRENCY: '2' });
    await thinFleet(fx, 150);
    const spawnWorker = (): ChildProcess =>
      spawn(process.execPath, [join(PROJECT_ROOT, 'bin/vmoodle.js'), 'worker'], {
        env: { ...process.env, ...fx.env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    const ready = (child: ChildProcess) =>
      new Promise<void>((resolve, reject) => {
        child.stdout?.on('data', (d) => String(d).includes('ready') && resolve());
        child.once('exit', (code) => reject(new Error(`worker exited with ${code}`)));
      });
    const first = spawnWorker();
    await ready(first);
    const plan = await createPlan(fx.rt, request('generic/setconfig', { key: 'theme', value: 'classic' }, '*'));
    await startRun(fx.rt, plan.run.id, 'tester', plan.run.plan_hash);
    let seen = 0;
    await fx.rt.progress.follow(
      plan.run.id,
      () => void seen++,
      () => seen >= 20,
    );
    first.kill('SIGKILL');
    await new Promise((r) => first.once('exit', r));
    const second = spawnWorker();
    try {
      await ready(second);
      const { run, targets } = await waitForRun(fx.rt, plan.run.id);
      expect(run.state).toBe('succeeded');
      expect(targets.every((t) => t.status === 'applied' || t.status === 'already_applied')).toBe(true);
      const rows = await Promise.all(targets.map((t) => logRows(t, 'theme', 'classic')));
      expect(rows.every((n) => n === 1)).toBe(true);
    } finally {
      second.kill('SIGTERM');
      await new Promise((r) => second.once('exit', r));
    }
  }, 90_000);
});
