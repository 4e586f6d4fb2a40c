import { beforeAll, describe, expect, it } from 'vitest';
import { followRun } from '../../src/verbs/follow.ts';
import {
  endedRun,
  opsFixture,
  startedThemeRun,
  registerInstances,
  startWorker,
  thinFleet,
  type OpsFixture,
} from '../support/fleet.ts';
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
      const run = await startedThemeRun(fx, ['t1', 't2', 't3', 't4', 't5', 't6'], value);
      await endedRun(fx, run.id);
      expect((await fx.rt.store.getTargets(run.id)).map((t) => t.status)).toEqual(Array(6).fill('applied'));
    }
    expect(await fx.rt.queue.getJobCountByTypes('completed')).toBeLessThanOrEqual(3);
  });

  it("lets go of a run's own keys when it ends, leaving its events for followers an hour", async () => {
    const run = await startedThemeRun(fx, ['t1', 'gone'], 'three');
    expect((await endedRun(fx, run.id)).state).toBe('partly_failed');
    const { keys, redis } = fx.rt;
    expect(await redis.exists(keys.failures(run.id), keys.cancel(run.id))).toBe(0);
    // The run's own job, which lists every target's job it waited for, goes too: kept, it would grow with the fleet.
    await waitFor('the run job removed', async () => (await fx.rt.queue.getJob(fx.rt.runJobId(run.id))) === undefined);
    const ttl = await redis.ttl(keys.events(run.id));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(3600);

    // Once they have expired, following the run ends at once, with the master's record.
    await redis.del(keys.events(run.id));
    const followed = await followRun(fx.rt, await fx.rt.store.getRun(run.id), () => undefined);
    expect(followed.run.state).toBe('partly_failed');
  });
});
