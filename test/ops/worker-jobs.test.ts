import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ExecutorJobs } from '../../src/ops/executor/queues.ts';
import { ExecutorWorker } from '../../src/ops/executor/worker.ts';
import { opsFixture, type OpsFixture } from '../support/fleet.ts';
import { testServices } from '../support/services.ts';
import { waitFor } from '../support/wait.ts';

describe.runIf(testServices().moodleDump)("the executor's jobs as BullMQ sees them", () => {
  let fx: OpsFixture;

  beforeAll(async () => {
    fx = await opsFixture('jobs', undefined, { VMOODLE_ATTEMPTS: '3' });
    // A schedule whose server refuses: its failure is its own, not the master's.
    const worker = new ExecutorWorker(fx.rt, {
      schedules: {
        handlers: {
          'refused-report': async () => {
            throw Object.assign(new Error('connect ECONNREFUSED 10.0.0.9:3306'), {
              code: 'ECONNREFUSED',
              syscall: 'connect',
            });
          },
        },
        declare: async () => undefined,
      },
    });
    afterAll(() => worker.close());
    await worker.waitUntilReady();
  });

  const failedJob = async (id: string) =>
    waitFor(`job ${id} failed`, async () => {
      // The state first, then the job: a job read before it failed has no failedReason yet.
      if ((await fx.rt.queue.getJobState(id)) !== 'failed') return undefined;
      return fx.rt.queue.getJob(id);
    });

  it('fails a target of a run that is gone at once, instead of trying it again for nothing', async () => {
    const data: ExecutorJobs['target'] = { runId: 987654, targetId: 1, installation: fx.rt.installation };
    await fx.rt.queue.add('target', data, { jobId: 'gone-run-t1', attempts: 3, backoff: { type: 'fixed', delay: 10 } });
    const job = await failedJob('gone-run-t1');
    expect(job.failedReason).toBe('no run 987654');
    expect(job.attemptsMade).toBe(1);
  });

  it('fails a job no handler serves at once, naming it', async () => {
    await fx.rt.queue.add(
      'nightly-report',
      { installation: fx.rt.installation },
      { jobId: 'unknown-name', attempts: 3 },
    );
    const job = await failedJob('unknown-name');
    expect(job.failedReason).toContain("no handler for 'nightly-report' jobs");
    expect(job.attemptsMade).toBe(1);
  });

  it("fails a schedule's job whose server refuses, as its caller judges, without waiting for the master", async () => {
    await fx.rt.queue.add('refused-report', { installation: fx.rt.installation }, { jobId: 'refused', attempts: 1 });
    const job = await failedJob('refused');
    expect(job.failedReason).toBe('connect ECONNREFUSED 10.0.0.9:3306');
  });
});
