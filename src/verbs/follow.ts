import { DONE_OK, FINAL_STATES, type RunRow, type TargetRow } from '../ops/executor/run-model.ts';
import type { RunServices } from '../ops/executor/run-services.ts';
import type { ProgressEvent } from '../ops/executor/progress.ts';

/** Where a followed run stands after each event. */
export interface RunProgress {
  run: RunRow;
  done: number;
  failed: number;
}

export interface FollowedRun {
  run: RunRow;
  targets: TargetRow[];
  /** It stopped after its canary and waits for a go. */
  paused: boolean;
}

/**
 * Follows a run from its first event until it ends, or until its canary is done when `untilCanary` is set, calling
 * `onProgress` after each target. Every front end's progress (bar, lines, Slack edits) is drawn from this.
 */
export interface FollowOptions {
  untilCanary?: boolean;
  signal?: AbortSignal;
  /** Targets wait for a node that no worker serves: worth telling, since they will not move until one starts. */
  onWaiting?(waiting: WaitingNotice): void | Promise<void>;
  /** A long target's step (a dump's tables, a creation's step). */
  onStep?(step: StepNotice): void | Promise<void>;
  /** Redis went away: the run goes on, and following it waits for Redis (or for the run's end in the master). */
  onRedisAway?(): void | Promise<void>;
}

export type StepNotice = Extract<ProgressEvent, { type: 'step' }>;

/** "law: dumped 120/494 tables", as every front end says it. */
export const stepLine = (s: StepNotice) => `${s.shortname}: ${s.message}`;

export type WaitingNotice = Extract<ProgressEvent, { type: 'waiting' }>;

/** "3 targets waiting for node web1: …", as every front end says it. */
export const waitingText = (w: WaitingNotice) => `${w.targets} target${w.targets === 1 ? '' : 's'} ${w.message}`;

export async function followRun(
  rt: RunServices,
  run: RunRow,
  onProgress: (p: RunProgress) => void | Promise<void>,
  options: FollowOptions = {},
): Promise<FollowedRun> {
  let done = 0;
  let failed = 0;
  const pauses = options.untilCanary === true && run.canary > 0 && !run.canary_open && run.state === 'running';
  await rt.progress.follow(
    run.id,
    async (event) => {
      if (event.type === 'waiting') await options.onWaiting?.(event);
      if (event.type === 'step') await options.onStep?.(event);
      if (event.type !== 'target') return;
      done++;
      if (!DONE_OK.includes(event.status)) failed++;
      await onProgress({ run, done, failed });
    },
    (event) => (event.type === 'state' && FINAL_STATES.includes(event.state)) || (pauses && done >= run.canary),
    {
      ...(options.signal ? { signal: options.signal } : {}),
      ended: async () => FINAL_STATES.includes((await rt.store.getRun(run.id)).state),
      ...(options.onRedisAway ? { onRedisAway: options.onRedisAway } : {}),
    },
  );
  const now = await rt.store.getRun(run.id);
  return { run: now, targets: await rt.store.getTargets(run.id), paused: !FINAL_STATES.includes(now.state) };
}
