import { errorKind } from '../../core/errors.ts';
import type { RunRow, RunState, StatusCounts, TargetRow } from './run-model.ts';
import { DONE_OK, FINAL_STATES, WARNING } from './run-model.ts';
import type { RunServices } from './run-services.ts';
import { queueNameOf } from './queues.ts';

export class RecoveryError extends errorKind('run_state') {}

/** Where the parent job ends: the run's final state from its targets' statuses. */
export function finalState(counts: StatusCounts, cancelled: boolean): RunState {
  const total = Object.values(counts).reduce((a, b) => a + (b ?? 0), 0);
  const ok = [...DONE_OK, ...WARNING].reduce((a, s) => a + (counts[s] ?? 0), 0);
  if (cancelled) return 'cancelled';
  if (ok === total) return 'succeeded';
  return ok === 0 ? 'failed' : 'partly_failed';
}

const UNFINISHED = ['pending', 'applying', 'retrying'] as const;

/**
 * Ends a run whose targets all have a final status, or get one: a target still unfinished is interrupted, with
 * `why` as its message. The state change is conditional, so whoever ends a run first ends it once.
 */
export async function settleRun(
  rt: RunServices,
  runId: number,
  why = 'interrupted — verify: its job ended without a result',
): Promise<RunState> {
  await rt.store
    .db(rt.store.t.targets)
    .where({ run_id: runId })
    .whereIn('status', [...UNFINISHED])
    .update({ status: 'interrupted', message: why, finished_at: Date.now() });
  const counts = await rt.store.countStatuses(runId);
  const cancelled = (await rt.redis.exists(rt.keys.cancel(runId))) === 1;
  const state = finalState(counts, cancelled);
  if (
    await rt.store.transition(runId, ['running', 'cancelling'], state, {
      finished_at: Date.now(),
      summary: JSON.stringify(counts),
    })
  ) {
    rt.log.info({ run: runId, state, counts }, 'run ended');
    await rt.progress.publish(runId, { type: 'state', state });
    await Promise.all([rt.progress.ended(runId), rt.gate.forget(runId)]);
    return state;
  }
  return (await rt.store.getRun(runId)).state;
}

/**
 * Ends a cancelled run when no worker is left to: its unstarted targets are cancelled, and one a worker was applying
 * is interrupted. A worker that starts later finds the run over and starts nothing.
 */
export async function endCancelled(rt: RunServices, runId: number): Promise<RunState> {
  await rt.store
    .db(rt.store.t.targets)
    .where({ run_id: runId })
    .whereIn('status', ['pending', 'retrying'])
    .update({ status: 'cancelled', message: 'not started: the run was cancelled', finished_at: Date.now() });
  return settleRun(rt, runId, 'interrupted — verify: no worker was left to finish it');
}

/**
 * The suffixes of a run's job ids: '' for its first flow, then one per recovery that queued work again. A target's
 * job is under one of them, the first flow's when it was alive at every recovery.
 */
export async function flowSuffixes(rt: RunServices, runId: number): Promise<string[]> {
  return ['', ...(await rt.redis.smembers(rt.keys.flows(runId))).sort().map((f) => `-${f}`)];
}

/** Whether any of a run's jobs of this id, in any of its flows, is still worked on or waits its turn. */
export async function anyAlive(
  rt: RunServices,
  jobId: string,
  node: string | null,
  suffixes: string[],
): Promise<boolean> {
  for (const suffix of suffixes) if (await workAlive(rt, `${jobId}${suffix}`, node)) return true;
  return false;
}

/** Whether a job is still being worked on or waits its turn; false when its work is gone or stalled. */
async function workAlive(rt: RunServices, jobId: string, node: string | null): Promise<boolean> {
  const job = await rt.queueOf(node).getJob(jobId);
  if (!job) return false;
  const state = await job.getState();
  if (state === 'active')
    return (await rt.redis.exists(`${rt.queuePrefix}:${queueNameOf(rt.installation, node)}:${jobId}:lock`)) === 1;
  return state === 'waiting' || state === 'delayed' || state === 'prioritized' || state === 'waiting-children';
}

/** A run's unfinished targets, and those of them whose queued work is gone or stalled. */
export async function lostWork(rt: RunServices, runId: number): Promise<{ open: TargetRow[]; lost: TargetRow[] }> {
  const open = (await rt.store.getTargets(runId)).filter((t) => (UNFINISHED as readonly string[]).includes(t.status));
  const lost: TargetRow[] = [];
  const suffixes = await flowSuffixes(rt, runId);
  for (const t of open) if (!(await anyAlive(rt, rt.targetJobId(runId, t.id), t.node, suffixes))) lost.push(t);
  return { open, lost };
}

export interface Recovery {
  run: RunRow;
  /** Targets whose job was gone or stalled and that were queued again. */
  requeued: number;
  /** Targets a worker was applying when its work was lost: their state cannot be known. */
  interrupted: number;
  /** Targets whose work is still queued or under way. */
  alive: number;
}

/**
 * Looks at a run that is still running or being cancelled and gives it a way to end: targets whose queue work is
 * gone or stalled are queued again when they never started or failed for a passing reason, and marked
 * "interrupted — verify" when a worker was applying them. A cancelled run's unstarted targets are cancelled; a run
 * with nothing left to do ends at once.
 */
export async function recoverRun(rt: RunServices, runId: number, actor: string): Promise<Recovery> {
  const run = await rt.store.getRun(runId);
  if (FINAL_STATES.includes(run.state) || run.state === 'planned' || run.state === 'awaiting_approval') {
    throw new RecoveryError(
      `run ${runId} is ${run.state.replaceAll('_', ' ')}: only a running or cancelling run is recovered`,
    );
  }
  const { open, lost } = await lostWork(rt, runId);
  const unknowable = lost.filter((t) => t.status === 'applying');
  const again = run.state === 'cancelling' ? [] : lost.filter((t) => t.status !== 'applying');
  const now = Date.now();
  if (unknowable.length > 0) {
    await rt.store
      .db(rt.store.t.targets)
      .whereIn(
        'id',
        unknowable.map((t) => t.id),
      )
      .update({
        status: 'interrupted',
        message: 'interrupted — verify: its worker stopped while applying it, and its work was lost',
        finished_at: now,
      });
  }
  if (run.state === 'cancelling') {
    await rt.store
      .db(rt.store.t.targets)
      .whereIn(
        'id',
        lost.filter((t) => t.status !== 'applying').map((t) => t.id),
      )
      .update({ status: 'cancelled', message: 'not started: the run was cancelled', finished_at: now });
  }
  await rt.store.addEvent(runId, 'recover', actor, `${again.length} queued again, ${unknowable.length} interrupted`);
  const alive = open.length - lost.length;
  if (again.length > 0) {
    // A flow of its own: a parent that ends the run once these targets are done, whatever became of the first flow.
    const attempt = `recover${now}`;
    const flow = rt.runFlow(run, again, attempt);
    // Named before it is added: a flow added but not named would have its jobs taken for lost.
    await rt.redis.sadd(rt.keys.flows(runId), attempt);
    await rt.store
      .db(rt.store.t.targets)
      .whereIn(
        'id',
        again.map((t) => t.id),
      )
      .update({ status: 'pending', message: null });
    await rt.flows.add(flow);
  } else if (alive === 0) {
    await settleRun(rt, runId);
  }
  return { run: await rt.store.getRun(runId), requeued: again.length, interrupted: unknowable.length, alive };
}
