import type { Job } from 'bullmq';
import { errorFields, type Logger } from '../../core/log.ts';
import { settleRun } from './recovery.ts';
import type { NodeTargetWaiting } from './store.ts';
import type { RunServices } from './run-services.ts';
import type { TargetRow } from './run-model.ts';
import { Every } from '../../core/every.ts';

/** How often a node's workers say they are alive. */
export const HEARTBEAT_MS = 2_000;

/** A node whose workers said nothing for this long has none alive. */
const ALIVE_MS = 5 * HEARTBEAT_MS;

/** How often waiting node work is looked at (by one worker of the fleet each time). */
const WATCH_MS = 2_000;

export const waitingMessage = (node: string) =>
  `waiting for node ${node}: no worker serves it (start one there: vmoodle worker --node ${node})`;

/** Says a node's worker is alive; every worker of the node does this every HEARTBEAT_MS. */
export async function heartbeat(rt: RunServices, node: string): Promise<void> {
  await rt.redis.set(rt.keys.nodeSeen(node), String(Date.now()), 'EX', 7 * 86_400);
}

/** When each node's workers were last seen, or null for never. */
async function lastSeen(rt: RunServices, nodes: readonly string[]): Promise<Map<string, number | null>> {
  const values = nodes.length > 0 ? await rt.redis.mget(...nodes.map((n) => rt.keys.nodeSeen(n))) : [];
  return new Map(nodes.map((n, i) => [n, values[i] ? Number(values[i]) : null]));
}

const alive = (seen: number | null | undefined, now: number) =>
  seen !== null && seen !== undefined && now - seen < ALIVE_MS;

/** Whether a worker of the node said it was alive lately. */
export async function nodeAlive(rt: RunServices, node: string): Promise<boolean> {
  return alive((await lastSeen(rt, [node])).get(node), Date.now());
}

/** Marks targets that wait for a node without a worker, and tells the run's followers once per node. */
async function noteWaiting(rt: RunServices, runId: number, node: string, targetIds: number[]): Promise<void> {
  const message = waitingMessage(node);
  await rt.store.noteWaiting(targetIds, message);
  await rt.progress.publish(runId, { type: 'waiting', node, targets: targetIds.length, message });
}

/** Just after a run starts: its targets queued for a node that no worker serves are marked as waiting for it. */
export async function reportWaiting(
  rt: RunServices,
  runId: number,
  targets: ReadonlyArray<Pick<TargetRow, 'id' | 'node'>>,
): Promise<void> {
  const byNode = new Map<string, number[]>();
  for (const t of targets) if (t.node) byNode.set(t.node, [...(byNode.get(t.node) ?? []), t.id]);
  const seen = await lastSeen(rt, [...byNode.keys()]);
  const now = Date.now();
  for (const [node, ids] of byNode) if (!alive(seen.get(node), now)) await noteWaiting(rt, runId, node, ids);
}

/**
 * Work queued for a node runs only on that node's workers. While none is alive it waits, marked "waiting for node
 * X"; past the target timeout (counted from when the run started or the node was last seen, the later) it is taken
 * out of the queue and fails with why, and a cancelled run's waiting work is cancelled at once, so that a run always
 * ends even when a node never comes back.
 */
export class NodeWatch {
  private readonly every: Every;

  constructor(
    private readonly rt: RunServices,
    private readonly log: Logger,
  ) {
    this.every = new Every(
      WATCH_MS,
      () => this.look(),
      (err) => this.log.warn({ ...errorFields(err) }, 'looking at the work waiting for nodes failed; trying again'),
    );
  }

  start(): void {
    this.every.start();
  }

  stop(): Promise<void> {
    return this.every.stop();
  }

  /** One look at the waiting node work of this master, by one worker of the fleet at a time. */
  async look(): Promise<void> {
    const { rt } = this;
    if ((await rt.redis.set(rt.keys.nodeWatch(), '1', 'PX', WATCH_MS - 200, 'NX')) !== 'OK') return;
    const rows = await rt.store.nodeTargetsWaiting();
    if (rows.length === 0) return;
    const now = Date.now();
    const seen = await lastSeen(rt, [...new Set(rows.map((r) => r.node))]);
    const timeoutMs = rt.config.executor.targetTimeout * 1000;
    const notes = new Map<string, { runId: number; node: string; ids: number[] }>();
    const ending: Array<{ row: NodeTargetWaiting; cancelled: boolean }> = [];
    const woken: number[] = [];
    for (const row of rows) {
      const last = seen.get(row.node) ?? null;
      if (alive(last, now)) {
        if (row.message === waitingMessage(row.node)) woken.push(row.id);
      } else if (row.state === 'cancelling') {
        ending.push({ row, cancelled: true });
      } else if (now - Math.max(row.started_at, last ?? 0) > timeoutMs) {
        ending.push({ row, cancelled: false });
      } else if (row.message !== waitingMessage(row.node)) {
        const key = `${row.run_id}/${row.node}`;
        const note = notes.get(key) ?? { runId: row.run_id, node: row.node, ids: [] };
        note.ids.push(row.id);
        notes.set(key, note);
      }
    }
    await rt.store.noteWaiting(woken, null);
    for (const note of notes.values()) await noteWaiting(rt, note.runId, note.node, note.ids);
    if (ending.length > 0) await this.end(ending, timeoutMs);
  }

  /** Takes waiting work out of its node's queue and gives its target a final status; then ends runs left with nothing to do. */
  private async end(ending: Array<{ row: NodeTargetWaiting; cancelled: boolean }>, timeoutMs: number): Promise<void> {
    const { rt } = this;
    const jobs = new Map<string, Job>();
    for (const node of new Set(ending.map((e) => e.row.node))) {
      // A recovered run's jobs carry a suffix, so they are found by what they hold rather than by id.
      for (const job of await rt.queueOf(node).getJobs(['waiting', 'delayed', 'prioritized'])) {
        if (job?.data?.targetId !== undefined) jobs.set(`${node}/${job.data.runId}/${job.data.targetId}`, job);
      }
    }
    const runs = new Set<number>();
    for (const { row, cancelled } of ending) {
      const message = cancelled
        ? 'not started: the run was cancelled'
        : `not started: no worker of node ${row.node} took it within ${timeoutMs / 1000} s (start one there: vmoodle worker --node ${row.node}, then retry the run)`;
      const status = cancelled ? 'cancelled' : 'failed';
      // The result first: taking out the run's last job lets its parent end the run, which must find it final.
      await rt.store.recordFinal(row.id, { status, message });
      try {
        await jobs.get(`${row.node}/${row.run_id}/${row.id}`)?.remove();
      } catch (err) {
        // A worker of the node took it meanwhile: its own result stands.
        this.log.debug(
          { ...errorFields(err), run: row.run_id, target: row.shortname },
          'waiting node work was taken before it could be ended',
        );
        await rt.store.reopenTarget(row.id, status);
        continue;
      }
      if (!cancelled) await rt.gate.countFailure(row.run_id);
      await rt.progress.publish(row.run_id, {
        type: 'target',
        targetId: row.id,
        shortname: row.shortname,
        status,
        message,
      });
      this.log.warn(
        { run: row.run_id, target: row.shortname, node: row.node, status },
        'node work ended without a worker of its node',
      );
      runs.add(row.run_id);
    }
    // The run's parent job ends it once its last child is gone; this ends it too when that job was itself lost.
    for (const runId of runs) {
      const counts = await rt.store.countStatuses(runId);
      if (!counts.pending && !counts.applying && !counts.retrying) await settleRun(rt, runId);
    }
  }
}
