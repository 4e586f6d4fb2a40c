import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/core/services/private-server.ts';
import { createPlan } from '../../src/ops/executor/planner.ts';
import { startRun } from '../../src/ops/executor/run-actions.ts';
import { RunWatchdog } from '../../src/ops/executor/watchdog.ts';
import { ExecutorWorker } from '../../src/ops/executor/worker.ts';
import { FLEET_SCHEDULES } from '../../src/ops/schedules/index.ts';
import { endedRun, opsFixture, startedThemeRun, startWorker, thinFleet, type OpsFixture } from '../support/fleet.ts';
import { OwnRedis } from '../support/own-redis.ts';
import { testServices } from '../support/services.ts';
import { passTime, waitFor } from '../support/wait.ts';

/** Redis restarted empty in the middle of a run: nobody types runs recover. */
describe.runIf(testServices().moodleDump)('a run whose queued work Redis lost', () => {
  let fx: OpsFixture;
  let redis: OwnRedis;

  beforeAll(async () => {
    redis = new OwnRedis(await freePort(), mkdtempSync(join(tmpdir(), 'vmops-emptied-')));
    await redis.start();
    fx = await opsFixture('emptied', undefined, {
      REDIS_URL: redis.url,
      VMOODLE_WORKER_CONCURRENCY: '1',
      VMOODLE_WATCHDOG_INTERVAL: '1000',
      VMOODLE_TARGET_TIMEOUT: '5',
    });
    await thinFleet(fx, 4);
    await startWorker(fx).waitUntilReady();
  });
  afterAll(() => redis?.stop());

  it('is recovered by the workers, told in its events, and ends with every target applied once', async () => {
    const plan = await createPlan(fx.rt, {
      command: 'sql/sql',
      params: { sql: 'SELECT SLEEP(1)' },
      selector: { tohosts: ['t1', 't2', 't3', 't4'] },
      requestedBy: 'tester',
      via: 'cli',
    });
    await startRun(fx.rt, plan.run.id, 'tester', plan.run.plan_hash);
    await waitFor('the first target applied', async () =>
      (await fx.rt.store.getTargets(plan.run.id)).some((t) => t.status === 'applied'),
    );
    await redis.empty();
    const run = await endedRun(fx, plan.run.id, 40_000);
    const targets = await fx.rt.store.getTargets(plan.run.id);
    expect(run.state).toBe('succeeded');
    expect(targets.map((t) => [t.status, t.attempts <= 1])).toEqual(Array(4).fill(['applied', true]));
    const recoveries = (await fx.rt.store.events(plan.run.id)).filter((e) => e.kind === 'recover');
    expect(recoveries).toHaveLength(1);
    expect(recoveries[0]?.actor).toBe('watchdog');
  }, 60_000);
});

describe.runIf(testServices().moodleDump)('two workers finding one run whose work was lost', () => {
  let fx: OpsFixture;
  let redis: OwnRedis;

  beforeAll(async () => {
    redis = new OwnRedis(await freePort(), mkdtempSync(join(tmpdir(), 'vmops-emptied2-')));
    await redis.start();
    fx = await opsFixture('emptiedrace', undefined, { REDIS_URL: redis.url, VMOODLE_WATCHDOG_INTERVAL: '500' });
    await thinFleet(fx, 2);
  });
  afterAll(() => redis?.stop());

  it('recover it once', async () => {
    const run = await startedThemeRun(fx, ['t1', 't2'], 'raced');
    await redis.empty();
    await passTime(600, 'the run is older than one look of the watchdog');
    const [a, b] = [new RunWatchdog(fx.rt, fx.app.log), new RunWatchdog(fx.rt, fx.app.log)];
    const found = (await Promise.all([a.tick(), b.tick()])).flat();
    expect(found).toEqual([run.id]);
    const recoveries = (await fx.rt.store.events(run.id)).filter((e) => e.kind === 'recover');
    expect(recoveries.map((e) => e.detail)).toEqual(['2 queued again, 0 interrupted']);
  });

  it('once recovered, is left to its new work by the next looks', async () => {
    const run = await startedThemeRun(fx, ['t1', 't2'], 'once');
    await redis.empty();
    await passTime(600, 'the run is older than one look of the watchdog');
    const watchdog = new RunWatchdog(fx.rt, fx.app.log);
    expect(await watchdog.tick()).toContain(run.id);
    // No worker serves this suite: the recovered work waits in the queue, as it would behind other runs.
    await passTime(600, 'another look of the watchdog is due');
    expect(await watchdog.tick()).toEqual([]);
    const recoveries = (await fx.rt.store.events(run.id)).filter((e) => e.kind === 'recover');
    expect(recoveries).toHaveLength(1);
  });

  it('whose every target ended but whose own job was lost before it could end it: ended by the watchdog', async () => {
    const run = await startedThemeRun(fx, ['t1', 't2'], 'settled');
    // Each target's result reached the master; the run's job, which ends the run, went with Redis.
    await fx.rt.store
      .db(fx.rt.store.t.targets)
      .where({ run_id: run.id })
      .update({ status: 'applied', finished_at: Date.now() });
    await redis.empty();
    await passTime(600, 'the run is older than one look of the watchdog');
    expect(await new RunWatchdog(fx.rt, fx.app.log).tick()).toContain(run.id);
    expect(await fx.rt.store.getRun(run.id)).toMatchObject({ state: 'succeeded' });
  });
});

describe.runIf(testServices().moodleDump)("the fleet's schedules after Redis restarted empty", () => {
  let fx: OpsFixture;
  let redis: OwnRedis;

  beforeAll(async () => {
    redis = new OwnRedis(await freePort(), mkdtempSync(join(tmpdir(), 'vmops-emptied3-')));
    await redis.start();
    fx = await opsFixture('schedules', undefined, { REDIS_URL: redis.url, VMOODLE_MNET_AUTORENEW: '02:00-05:00' });
    const worker = new ExecutorWorker(fx.rt, { schedules: FLEET_SCHEDULES });
    afterAll(() => worker.close());
    await worker.waitUntilReady();
  });
  afterAll(() => redis?.stop());

  it('are declared again by the workers once Redis is back', async () => {
    const schedulers = async () => (await fx.rt.queue.getJobSchedulers()).map((s) => s.key);
    await waitFor('the key renewal schedule', async () => (await schedulers()).includes('mnet-autorenew'));
    await redis.stop();
    await redis.start();
    await waitFor('the key renewal schedule again', async () => (await schedulers()).includes('mnet-autorenew'), {
      timeoutMs: 20_000,
    });
  });
});
