import type { Logger } from '../../core/log.ts';
import { errorFields } from '../../core/log.ts';
import { targetDeadlineMs } from '../commands/command.ts';
import { findCommand } from '../commands/index.ts';
import { pushRecovered } from './alerts.ts';
import { anyAlive, flowSuffixes, lostWork, recoverRun } from './recovery.ts';
import type { RunRow } from './run-model.ts';
import type { RunServices } from './run-services.ts';
import { Every } from '../../core/every.ts';

/** A target being applied is left to its worker until its deadline has passed by this much. */
const DEADLINE_MARGIN_MS = 5_000;

/**
 * In every worker: runs the master says are under way whose work Redis no longer holds (Redis restarted empty, a
 * flow lost) are recovered as `runs recover` does, with no one typing it. One worker recovers a run at a time (a
 * named lock in the master), and not while one of its targets may still be applied by a worker that lost its job.
 */
export class RunWatchdog {
  private readonly every: Every;

  constructor(
    private readonly rt: RunServices,
    private readonly log: Logger,
  ) {
    this.every = new Every(
      rt.config.executor.watchdogInterval,
      () => this.tick(),
      (err) => this.log.warn({ ...errorFields(err) }, 'could not look for runs whose work was lost; trying again'),
    );
  }

  start(): void {
    this.every.start();
  }

  stop(): Promise<void> {
    return this.every.stop();
  }

  /** One look: the ids of the runs this worker recovered. */
  async tick(): Promise<number[]> {
    const recovered: number[] = [];
    for (const run of await this.rt.store.runsUnderWay()) {
      if (!(await this.mayHaveLostWork(run))) continue;
      const done = await this.rt.store.whileRecovering(run.id, async () => {
        // Looked at again under the lock: another worker may have recovered it a moment ago.
        if (!(await this.lostSafely(run))) return false;
        const recovery = await recoverRun(this.rt, run.id, 'watchdog');
        this.log.warn(
          { run: run.id, requeued: recovery.requeued, interrupted: recovery.interrupted },
          'the work of a running run was lost from Redis: recovered',
        );
        await pushRecovered(
          this.rt,
          run.id,
          recovery.requeued + recovery.interrupted === 0
            ? `Run ${run.id}'s targets had all ended, but the job that ends the run was lost from Redis; the workers ended it.`
            : `Run ${run.id}'s queued work was lost from Redis; the workers recovered it: ${recovery.requeued} target${recovery.requeued === 1 ? '' : 's'} queued again, ${recovery.interrupted} interrupted${recovery.interrupted > 0 ? ' (verify those)' : ''}.`,
        );
        return true;
      });
      if (done) recovered.push(run.id);
    }
    return recovered;
  }

  /**
   * A started run none of whose flows' parents is waiting for its targets: gone from the queue, or ended without
   * ending the run.
   */
  private async mayHaveLostWork(run: RunRow): Promise<boolean> {
    if (run.started_at === null || Date.now() - run.started_at < this.rt.config.executor.watchdogInterval) return false;
    return !(await anyAlive(this.rt, this.rt.runJobId(run.id), null, await flowSuffixes(this.rt, run.id)));
  }

  /**
   * Targets whose work is gone, none of them perhaps still being applied before its deadline; or none left open,
   * the run waiting only to be ended.
   */
  private async lostSafely(run: RunRow): Promise<boolean> {
    const { open, lost } = await lostWork(this.rt, run.id);
    if (open.length === 0) return true;
    if (lost.length === 0) return false;
    const deadlineMs =
      targetDeadlineMs(findCommand(run.command), this.rt.config.executor.targetTimeout) + DEADLINE_MARGIN_MS;
    return !lost.some((t) => t.status === 'applying' && Date.now() - (t.started_at ?? 0) < deadlineMs);
  }
}
