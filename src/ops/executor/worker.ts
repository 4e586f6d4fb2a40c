import { DelayedError, Worker, type Job, UnrecoverableError } from 'bullmq';
import { findCommand } from '../commands/index.ts';
import {
  FORCED_MESSAGE,
  isIdempotent,
  placementOf,
  placingDataroot,
  targetDeadlineMs,
  type ApplyOutcome,
  type CommandDef,
  type Params,
} from '../commands/command.ts';
import { stoppable } from '../moodle/work-signal.ts';
import { type MoodleTarget, TargetError } from '../moodle/target.ts';
import type { Fleet } from '../../registry/fleet.ts';
import { settleRun } from './recovery.ts';
import { targetParams } from './run-actions.ts';
import { sourceHostOf } from './planner.ts';
import { errorKind, failureCode } from '../../core/errors.ts';
import { errorFields, type Logger } from '../../core/log.ts';
import { describeError, isTransient } from '../../core/db/db-errors.ts';
import { isRedisAway, redisConnection } from '../../core/redis.ts';
import type { RunServices } from './run-services.ts';
import {
  type AnyExecutorJob,
  type ExecutorJobData,
  type ExecutorJobs,
  isJobNamed,
  NODE_TASK,
  nodeQueueName,
  sharedQueueName,
} from './queues.ts';
import { commandContext, PHP_SLOT_POLL_MS } from './command-contexts.ts';
import { RunNotFoundError } from './store.ts';
import { runNodeTask } from './node-task-runner.ts';
import { publishNodeReport } from '../delivery/sites.ts';
import { findNode, nodeOfDataroot, noNodeReason, type NodeConfig } from '../../core/nodes.ts';
import { heartbeat, HEARTBEAT_MS, NodeWatch } from './node-watch.ts';
import { PhpStopped } from '../moodle/php.ts';
import {
  DONE_OK,
  NOT_STARTED,
  WARNING,
  type RunRow,
  type RunState,
  type TargetResult,
  type TargetRow,
  type TargetStatus,
} from './run-model.ts';
import { RunWatchdog } from './watchdog.ts';

/** What a worker keeps of a run while it executes it: read once, not once per target. */
interface RunContext {
  run: RunRow;
  /** The registry as read when the run was picked up; its targets, and the hosts their commands look up, come from it. */
  fleet: Fleet;
  command: CommandDef;
  source: MoodleTarget | Error;
  targets: Map<number, { row: TargetRow; target: MoodleTarget | Error }>;
}

class TargetTimeoutError extends errorKind('target') {
  /** Whether the target's work ended (its queries killed) within the grace time, so that its lock may go. */
  stopped = false;
}

/** How long a timed-out target's work may take to end once its queries are killed; past it, its lock is left to expire. */
const STOP_GRACE_MS = 10_000;

const CONTEXT_TTL_MS = 10 * 60_000;

/** How long a job waits before it looks for the master again (and up to as long again, so that jobs spread out). */
const MASTER_WAIT_MS = 2_000;
const MASTER_AWAY_LOG_MS = 30_000;

/**
 * Runs one target's work with a deadline. Past it, the work's queries are killed and the work is awaited (a little
 * while) before the timeout is reported: its instance lock must not go while its write may still be running.
 */
async function withDeadline<T>(ms: number, work: () => Promise<T>): Promise<T> {
  const abort = new AbortController();
  const running = stoppable(abort.signal, work);
  const late = Symbol('late');
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<typeof late>((resolve) => {
    timer = setTimeout(() => resolve(late), ms);
  });
  try {
    const first = await Promise.race([running, deadline]);
    if (first !== late) return first as T;
  } finally {
    clearTimeout(timer);
  }
  abort.abort();
  const timeout = new TargetTimeoutError(`timed out after ${ms / 1000} s`);
  let grace: NodeJS.Timeout | undefined;
  timeout.stopped = await Promise.race([
    running.then(
      () => true,
      () => true,
    ),
    new Promise<boolean>((resolve) => (grace = setTimeout(() => resolve(false), STOP_GRACE_MS))),
  ]);
  clearTimeout(grace);
  throw timeout;
}

/** How many times a target job has been tried: its passing failures are delays, which BullMQ does not count. */
const triesOf = (job: Job<ExecutorJobs['target']>) => Math.max(job.attemptsMade, job.data.failures ?? 0) + 1;

/**
 * Work the clock starts (ops/schedules): the jobs it handles on the shared queue, by name, and how its job schedulers
 * are declared as a worker starts. Handed in by whoever starts the worker, since schedules sit above the executor.
 */
export interface ScheduledWork {
  readonly handlers: Readonly<Record<string, (rt: RunServices, data: unknown) => Promise<unknown>>>;
  declare(rt: RunServices): Promise<void>;
}

/**
 * Runs the executor's jobs: one per target, then one per run when all its targets are done. Several of these,
 * in several processes or on several hosts, may serve one queue.
 */
export class ExecutorWorker {
  private readonly contexts = new Map<number, { context: Promise<RunContext>; loadedAt: number }>();
  private readonly connection: ReturnType<typeof redisConnection>;
  /** The shared queue's worker, and the node's when this one serves a node. */
  private readonly workers: Array<Worker<ExecutorJobData, unknown, string>>;
  private readonly log: Logger;
  /** The node this worker serves besides the shared queue. */
  readonly node: NodeConfig | undefined;
  private readonly watch: NodeWatch;
  private readonly watchdog: RunWatchdog;
  private heartbeat: NodeJS.Timeout | undefined;

  private readonly schedules: ScheduledWork | undefined;
  private redeclare: (() => void) | undefined;
  private masterAwayToldAt = 0;

  constructor(
    private readonly rt: RunServices,
    options: { node?: string; schedules?: ScheduledWork } = {},
  ) {
    this.schedules = options.schedules;
    this.log = rt.log.child({ component: 'worker' });
    this.node = options.node === undefined ? undefined : findNode(rt.config.nodes, options.node);
    const { concurrency, lockDuration, stalledInterval } = rt.config.executor;
    this.connection = redisConnection(rt.redisUrl, 'worker', this.log, rt.config.redisTimeoutMs);
    const queues = [
      sharedQueueName(rt.installation),
      ...(this.node ? [nodeQueueName(rt.installation, this.node.name)] : []),
    ];
    this.workers = queues.map(
      (queue) =>
        new Worker<ExecutorJobData, unknown, string>(queue, (job, token) => this.process(job, token), {
          connection: this.connection,
          prefix: rt.queuePrefix,
          concurrency,
          lockDuration,
          stalledInterval,
          maxStalledCount: 2,
          name: `vmoodle-ops@${this.node?.name ?? rt.config.node}`,
        }),
    );
    // BullMQ reports here on every attempt while Redis is away: one line per kind of failure, again once it recovers.
    let last: string | undefined;
    for (const worker of this.workers) {
      worker.on('error', (err) => {
        const kind = (err as NodeJS.ErrnoException).code ?? err.message;
        if (kind === last) return;
        last = kind;
        this.log.error({ ...errorFields(err, isRedisAway(err) ? 'Redis' : undefined) }, 'queue error');
      });
      worker.on('ready', () => {
        last = undefined;
      });
    }
    this.watch = new NodeWatch(rt, this.log);
    this.watch.start();
    this.watchdog = new RunWatchdog(rt, this.log);
    this.watchdog.start();
    void this.schedules?.declare(rt);
    // A Redis that comes back may have come back empty (no AOF): the schedules are declared again, which costs
    // nothing when they are still there.
    const schedules = this.schedules;
    if (schedules) rt.redis.on('ready', (this.redeclare = () => void schedules.declare(rt)));
    if (this.node) {
      this.beat(this.node.name);
      const node = this.node;
      publishNodeReport(rt, node).catch((err) =>
        this.log.warn(
          { ...errorFields(err), node: node.name },
          'could not tell Redis where the delivery on this node stands',
        ),
      );
    }
  }

  /** Says every few seconds that this node has a worker, so that its queued work is not reported as waiting. */
  private beat(node: string): void {
    const once = () =>
      heartbeat(this.rt, node).catch((err) =>
        this.log.warn({ ...errorFields(err), node }, 'could not tell Redis this node has a worker'),
      );
    void once();
    this.heartbeat = setInterval(once, HEARTBEAT_MS);
  }

  /** Resolves once every queue this worker serves is being listened to. */
  async waitUntilReady(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.waitUntilReady()));
  }

  private async process(job: AnyExecutorJob, token: string | undefined): Promise<unknown> {
    try {
      if (isJobNamed(job, 'target')) return await this.recording(job, token, () => this.runTarget(job, token));
      if (isJobNamed(job, 'run')) return await this.recording(job, token, () => this.finish(job.data.runId));
      if (isJobNamed(job, NODE_TASK)) return await this.nodeTask(job);
      const scheduled = this.schedules?.handlers[job.name];
      if (scheduled) return await scheduled(this.rt, job.data);
    } catch (err) {
      // A job of a run that is gone fails for good: BullMQ would otherwise try it again, for nothing, until its attempts run out.
      if (err instanceof RunNotFoundError) throw new UnrecoverableError(err.message);
      throw err;
    }
    throw new UnrecoverableError(
      `no handler for '${job.name}' jobs: this worker was started without the fleet's schedules`,
    );
  }

  /**
   * A run's job, which reads its run from the master and records what it did there. With the master out of reach
   * nothing can be recorded, so the job waits for it, costing no attempt, however long it is away; a target's own
   * deadline runs only once its work has started, and the earlier attempt's write record tells a retry what it
   * wrote. (A node task's or a schedule's passing failure is its caller's to judge.)
   */
  private async recording<T>(job: Job, token: string | undefined, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      if (err instanceof DelayedError || !isTransient(err)) throw err;
      this.tellMasterAway(err);
      return await this.delay(job, token, MASTER_WAIT_MS);
    }
  }

  /** A task a run asked of this node: only a node's worker takes jobs from the node's queue. */
  private nodeTask(job: Job<ExecutorJobs[typeof NODE_TASK]>): Promise<unknown> {
    if (!this.node) throw new UnrecoverableError(`a node task (${job.data.task}) reached a worker that serves no node`);
    return runNodeTask(this.rt, this.node, job.data.task, job.data.payload);
  }

  private context(runId: number): Promise<RunContext> {
    const cached = this.contexts.get(runId);
    if (cached) return cached.context;
    const now = Date.now();
    for (const [id, entry] of this.contexts) if (now - entry.loadedAt > CONTEXT_TTL_MS) this.contexts.delete(id);
    const ctx = (async () => {
      const run = await this.rt.store.getRun(runId);
      const rows = await this.rt.store.getTargets(runId);
      const fleet = await this.rt.registry.loadFleet();
      const attempt = (host: () => MoodleTarget): MoodleTarget | Error => {
        try {
          return host();
        } catch (err) {
          return err as Error;
        }
      };
      const source = attempt(() => {
        const host = sourceHostOf(fleet, run.source);
        if (!host) throw new TargetError('the source host is no longer in the registry');
        return this.rt.moodleTarget(fleet, host);
      });
      const targets = new Map(
        rows.map((row) => [
          row.id,
          {
            row,
            target: attempt(() => {
              const host = fleet.byKindAndId(row.host_kind, row.host_id);
              if (!host) throw new TargetError('no longer in the registry');
              return this.rt.moodleTarget(fleet, host);
            }),
          },
        ]),
      );
      this.log.info(
        { run: run.id, command: run.command, targets: rows.length, requestedBy: run.requested_by },
        'run picked up',
      );
      return { run, fleet, command: findCommand(run.command), source, targets };
    })();
    this.contexts.set(runId, { context: ctx, loadedAt: now });
    ctx.catch(() => this.contexts.delete(runId));
    return ctx;
  }

  private async record(
    ctx: RunContext,
    row: TargetRow,
    result: TargetResult & { old_known?: boolean },
    job?: Job<ExecutorJobs['target']>,
    cause?: unknown,
  ): Promise<void> {
    await this.rt.store.recordFinal(row.id, job ? { ...result, attempts: triesOf(job) } : result);
    this.rt.metrics.targetEnded(
      ctx.run.command,
      result.status,
      cause === undefined ? undefined : failureCode(cause),
      result.duration_ms ?? undefined,
    );
    if (!DONE_OK.includes(result.status) && !WARNING.includes(result.status) && !NOT_STARTED.includes(result.status)) {
      this.log.warn(
        { run: ctx.run.id, target: row.shortname, status: result.status, message: result.message },
        'target did not succeed',
      );
      await this.rt.gate.countFailure(ctx.run.id);
    }
    await this.rt.progress.publish(ctx.run.id, {
      type: 'target',
      targetId: row.id,
      shortname: row.shortname,
      status: result.status,
      message: result.message ?? null,
    });
  }

  /** One log line while the master is away, however many jobs wait for it. */
  private tellMasterAway(err: unknown): void {
    if (Date.now() - this.masterAwayToldAt < MASTER_AWAY_LOG_MS) return;
    this.masterAwayToldAt = Date.now();
    this.log.warn({ ...errorFields(err) }, 'the master database cannot be reached: jobs wait for it');
  }

  private async delay(job: Job, token: string | undefined, ms: number): Promise<never> {
    await job.moveToDelayed(Date.now() + ms + Math.floor(Math.random() * ms), token);
    throw new DelayedError();
  }

  private async runTarget(job: Job<ExecutorJobs['target']>, token: string | undefined): Promise<void> {
    const ctx = await this.context(job.data.runId);
    const entry = ctx.targets.get(job.data.targetId);
    if (!entry) return;
    const { row, target } = entry;
    const { executor } = this.rt.config;

    if (ctx.run.canary > 0 && row.position >= ctx.run.canary) {
      const fresh = await this.rt.store.getRun(ctx.run.id);
      if (!fresh.canary_open && fresh.state === 'running') await this.delay(job, token, 1000);
    }
    const { source } = ctx;
    if (target instanceof Error || source instanceof Error) {
      await this.record(
        ctx,
        row,
        { status: 'failed', message: (target instanceof Error ? target : (source as Error)).message },
        job,
        target instanceof Error ? target : source,
      );
      return;
    }
    let params: Params;
    try {
      params = targetParams(this.rt, ctx.run, row);
    } catch (err) {
      await this.record(ctx, row, { status: 'failed', message: describeError(err) }, job, err);
      return;
    }
    const node = row.node ? this.nodeHolding(row.node, placingDataroot(ctx.command, params, target)) : undefined;
    if (typeof node === 'string') {
      await this.record(ctx, row, { status: 'failed', message: `refused: ${node}` }, job);
      return;
    }
    const phpCap = node && placementOf(ctx.command, params) === 'php' ? node.maxPhp : 0;
    const timeoutMs = targetDeadlineMs(ctx.command, executor.targetTimeout);
    const holdMs = timeoutMs + 30_000;
    const request = {
      runId: ctx.run.id,
      jobId: job.id as string,
      lockKey: this.rt.keys.instanceLock(row.db_server, row.db_name, row.db_prefix),
      slotsKey: this.rt.keys.serverSlots(row.db_server),
      maxFailures: ctx.run.max_failures,
      holdMs,
      perServer: executor.perServer,
      phpSlotsKey: this.rt.keys.phpSlots(node?.name ?? '-'),
      phpCap,
    };
    const admission = await this.rt.gate.admit(request);
    if (admission === 'locked') await this.delay(job, token, 250);
    // A PHP run takes about a second (moodle-facts §1.5): waiting for a PHP slot is retried less eagerly than for a connection.
    if (admission === 'busy') await this.delay(job, token, phpCap > 0 ? PHP_SLOT_POLL_MS : 50);
    if (admission === 'cancelled' || admission === 'braked') {
      const message =
        admission === 'cancelled'
          ? 'not started: the run was cancelled'
          : `not started: more than ${ctx.run.max_failures} targets failed (--max-failures)`;
      await this.record(ctx, row, { status: admission === 'cancelled' ? 'cancelled' : 'skipped', message });
      return;
    }

    const started = Date.now();
    let keepLock = false;
    try {
      // A command that is unsafe to repeat marks its target before touching it, so that a redelivery after a
      // worker died can tell; an idempotent one needs no mark, since its compare-and-set sees what was done.
      if (!isIdempotent(ctx.command, params)) {
        const claim = await this.rt.store.claimTarget(row.id);
        if (!claim.claimed) {
          if (claim.row.status === 'applying') {
            await this.record(ctx, row, {
              status: 'interrupted',
              message:
                'interrupted — verify: a worker stopped while applying this target, and the command is not safe to repeat',
            });
          }
          return;
        }
      }
      const run = { id: ctx.run.id, requestedBy: ctx.run.requested_by };
      const outcome = await withDeadline(timeoutMs, () =>
        ctx.command.apply(
          commandContext(
            this.rt,
            source,
            ctx.command,
            phpCap > 0,
            ctx.fleet,
            (message) => this.tellStep(ctx.run.id, row, message),
            run,
          ),
          target,
          params,
          {
            preview: {},
            matchesPlan: (current) =>
              !row.old_known ||
              this.rt.keyring.fingerprint(ctx.run.key_id, Boolean(row.sensitive), current) === row.old_hash,
            beforeWrite: (old) => this.rt.store.recordWriteIntent(row.id, old),
          },
        ),
      );
      await this.record(
        ctx,
        row,
        {
          ...this.result(await this.earlierWrite(row, outcome), Date.now() - started),
          started_at: started,
        } as TargetResult,
        job,
      );
    } catch (err) {
      if (err instanceof DelayedError) throw err;
      const message = describeError(err);
      if (err instanceof TargetTimeoutError) {
        keepLock = !err.stopped;
        const what = err.stopped
          ? 'its work was stopped; the change may or may not be made — verify'
          : 'its work did not stop, so the instance stays locked until the lock expires — verify';
        await this.record(
          ctx,
          row,
          { status: 'interrupted', message: `${message}; ${what}`, duration_ms: Date.now() - started },
          job,
          err,
        );
      } else if (err instanceof PhpStopped) {
        await this.record(ctx, row, { status: 'interrupted', message, duration_ms: Date.now() - started }, job, err);
      } else if (isTransient(err) && this.withinDeadline(job, timeoutMs)) {
        const failures = (job.data.failures ?? 0) + 1;
        await job.updateData({ ...job.data, firstFailedAt: job.data.firstFailedAt ?? Date.now(), failures });
        await this.rt.store.recordTarget(row.id, {
          status: 'retrying',
          message: `attempt ${failures} failed: ${message}`,
        });
        // Later each time (0.5 s, 1 s, 2 s … at most 10 s), as a delay, which BullMQ does not count as an attempt.
        await this.delay(job, token, Math.min(500 * 2 ** (failures - 1), 10_000));
      } else {
        const attempts = triesOf(job);
        await this.record(
          ctx,
          row,
          {
            status: 'failed',
            message: attempts > 1 ? `${message} (after ${attempts} attempts)` : message,
            duration_ms: Date.now() - started,
          },
          job,
          err,
        );
      }
    } finally {
      if (!keepLock) await this.rt.gate.release(request);
    }
  }

  /** A target that failed for a passing reason is tried again until its deadline has passed since the first failure. */
  private withinDeadline(job: Job<ExecutorJobs['target']>, timeoutMs: number): boolean {
    return Date.now() - (job.data.firstFailedAt ?? Date.now()) < timeoutMs;
  }

  /**
   * A site found already at the run's value after an earlier attempt of this run recorded the value it was about to
   * replace: that attempt's write committed and its result was lost (a worker killed, the master or Redis gone). The
   * target was applied by this run, from the value then recorded.
   */
  private async earlierWrite(row: TargetRow, outcome: ApplyOutcome): Promise<ApplyOutcome> {
    if (outcome.status !== 'already_applied') return outcome;
    const intent = await this.rt.store.writeIntent(row.id);
    if (!intent) return outcome;
    return {
      ...outcome,
      status: 'applied',
      old: row.sensitive ? outcome.old : intent.old,
      message: 'applied by an earlier attempt of this run, whose result was lost; the old value is the one it replaced',
    };
  }

  /** A step of a long target, for those following the run; one that cannot be told is logged, the work goes on. */
  private tellStep(runId: number, row: TargetRow, message: string): void {
    this.rt.progress
      .publish(runId, { type: 'step', targetId: row.id, shortname: row.shortname, message })
      .catch((err) =>
        this.log.warn({ ...errorFields(err), run: runId, target: row.id }, 'could not tell a step of a target'),
      );
  }

  /** The node a target was queued for, when its dataroot is still under it; else why that node must not run it. */
  private nodeHolding(node: string, dataroot: string | undefined): NodeConfig | string {
    const holder = nodeOfDataroot(this.rt.config.nodes, dataroot);
    if (!holder) return noNodeReason(this.rt.config.nodes, dataroot);
    if (holder.name !== node)
      return `its dataroot ${dataroot} is on node ${holder.name} now, not ${node}: the nodes or the registry changed since the plan (plan it again)`;
    return holder;
  }

  private result(outcome: ApplyOutcome, duration: number): TargetResult & { old_known?: boolean } {
    const applied = outcome.status === 'applied';
    const notPurged = applied && outcome.cachePurged === false;
    const forced = applied && outcome.forced === true;
    const status: TargetStatus = forced ? 'applied_forced' : notPurged ? 'applied_cache_not_purged' : outcome.status;
    const message = [
      outcome.message,
      forced ? FORCED_MESSAGE : '',
      notPurged
        ? `applied, cache not purged: ${outcome.cacheNote ?? "this worker could not reach or empty the site's cache"}, so Moodle won't see the change until its caches are purged`
        : applied
          ? (outcome.cacheNote ?? '')
          : '',
    ]
      .filter(Boolean)
      .join('; ');
    return {
      status,
      old_value: outcome.old ?? null,
      new_value: outcome.new ?? null,
      message: message || null,
      // What a site returned may be anyone's data (a row an operator's SQL read): it rests sealed.
      returned_value: outcome.value === undefined ? null : this.rt.keyring.sealAtRest(outcome.value),
      duration_ms: duration,
      ...(outcome.old !== undefined ? { old_known: true } : {}),
    };
  }

  /** The run's parent job: every target is done, so the run ends in the state its results say. */
  private async finish(runId: number): Promise<RunState> {
    const state = await settleRun(this.rt, runId);
    this.contexts.delete(runId);
    return state;
  }

  /** Lets the targets under way finish, then lets go of Redis (BullMQ leaves a connection it was given open). */
  async close(): Promise<void> {
    clearInterval(this.heartbeat);
    await this.watch.stop();
    await this.watchdog.stop();
    if (this.redeclare) this.rt.redis.off('ready', this.redeclare);
    await Promise.all(this.workers.map((w) => w.close()));
    this.connection.disconnect();
  }
}
