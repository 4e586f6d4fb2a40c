import { beforeAll, describe, expect, it } from 'vitest';
import { createPlan } from '../../src/ops/executor/planner.ts';
import { startRun } from '../../src/ops/executor/run-actions.ts';
import { followRun } from '../../src/verbs/follow.ts';
import { endedRun, opsFixture, registerInstances, startWorker, thinFleet, type OpsFixture } from '../support/fleet.ts';
import { testServices } from '../support/services.ts';
import { waitFor } from '../support/wait.ts';

describe.runIf(testServices().moodleDump)('Redis after runs end', () => {
  let fx: OpsFixture;

  beforeAll(async () => {
    fx = await opsFixture('keptjobs', undefined, { VMOODLE_KEPT_JOBS: '3' });
    await thinFleet(fx, 6);
    await registerInstances(fx, [{ shortname: 'gone', database: 'moodle_no_such_database' }]);
    await startWorker(fx).waitUntilReady();
  });

  it('keeps only the newest ended jobs, however many targets ran, with every result in the master', async () => {
    for (const value of ['one', 'two']) {
      const plan = await createPlan(fx.rt, {
        command: 'generic/setconfig',
        params: { key: 'theme', value },
        selector: { tohosts: ['t1', 't2', 't3', 't4', 't5', 't6'] },
        requestedBy: 'tester',
        via: 'cli',
      });
      await startRun(fx.rt, plan.run.id, 'tester', plan.run.plan_hash);
      await endedRun(fx, plan.run.id);
      expect((await fx.rt.store.getTargets(plan.run.id)).map((t) => t.status)).toEqual(Array(6).fill('applied'));
    }
    expect(await fx.rt.queue.getJobCountByTypes('completed')).toBeLessThanOrEqual(3);
  });

  it("lets go of a run's own keys when it ends, leaving its events for followers an hour", async () => {
    const plan = await createPlan(fx.rt, {
      command: 'generic/setconfig',
      params: { key: 'theme', value: 'three' },
      selector: { tohosts: ['t1', 'gone'] },
      requestedBy: 'tester',
      via: 'cli',
    });
    await startRun(fx.rt, plan.run.id, 'tester', plan.run.plan_hash);
    expect((await endedRun(fx, plan.run.id)).state).toBe('partly_failed');
    const { keys, redis } = fx.rt;
    expect(await redis.exists(keys.failures(plan.run.id), keys.cancel(plan.run.id))).toBe(0);
    // The run's own job, which lists every target's job it waited for, goes too: kept, it would grow with the fleet.
    await waitFor(
      'the run job removed',
      async () => (await fx.rt.queue.getJob(fx.rt.runJobId(plan.run.id))) === undefined,
    );
    const ttl = await redis.ttl(keys.events(plan.run.id));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(3600);

    // Once they have expired, following the run ends at once, with the master's record.
    await redis.del(keys.events(plan.run.id));
    const followed = await followRun(fx.rt, await fx.rt.store.getRun(plan.run.id), () => undefined);
    expect(followed.run.state).toBe('partly_failed');
  });
});
