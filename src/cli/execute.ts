import { SingleBar } from 'cli-progress';
import { UsageError } from '../core/errors.ts';
import { needsApproval } from '../ops/executor/approval-policy.ts';
import type { Plan } from '../ops/executor/planner.ts';
import { FINAL_STATES, scheduleText, type RunRow } from '../ops/executor/run-model.ts';
import { followRun, waitingText, stepLine } from '../verbs/follow.ts';
import { invoke } from '../verbs/index.ts';
import { cancel, startPlanned } from '../verbs/run-verbs.ts';
import type { Session } from '../verbs/verb.ts';
import type { CliContext } from './context.ts';
import type { Output } from './output.ts';
import { printReport } from './render.ts';
import { isRedisAway } from '../core/redis.ts';

export interface ExecuteOptions {
  yes?: boolean;
  confirm?: string;
  detach?: boolean;
}

/** Exit code of a command stopped by Ctrl-C, as shells report it. */
const EXIT_INTERRUPTED = 130;

/**
 * Confirms a stored plan (a prompt on a terminal, --yes otherwise; a destructive one needs --confirm=<target
 * count>), starts it through the start verb, and unless detached follows it to its end or its canary.
 */
export async function executePlan(
  ctx: CliContext,
  out: Output,
  session: Session,
  plan: Plan,
  opts: ExecuteOptions,
): Promise<void> {
  const { run } = plan;
  const count = plan.targets.length;
  const refuse = async (message: string) => {
    await invoke(session, cancel, { runId: run.id });
    throw new UsageError(message);
  };
  let confirmed = '--yes';
  if (run.destructive) {
    if (opts.confirm !== String(count))
      await refuse(
        `run ${run.id} is destructive: confirm with --confirm=${count} (the number of targets); nothing was run`,
      );
    confirmed = `--confirm=${count}`;
  } else if (!opts.yes) {
    if (!ctx.io.confirm)
      await refuse(`run ${run.id} needs confirmation: add --yes to run it without a prompt; nothing was run`);
    else if (!(await ctx.io.confirm(`Run ${run.command} on ${count} target${count === 1 ? '' : 's'}?`)))
      await refuse(`run ${run.id} not confirmed; nothing was run`);
    confirmed = 'prompt';
  }
  const rt = await session.ops();
  // The command line is the break-glass path: who confirmed, and how, is in the audit like a chat approval.
  await rt.store.addEvent(run.id, 'cli_confirm', session.actor.id, confirmed);
  if (session.policy.cli === 'require' && needsApproval(run, plan.command.writes, session.policy)) {
    await awaitChatApproval(ctx, out, session, plan, opts);
    return;
  }
  const started = await invoke(session, startPlanned, { runId: run.id, hash: run.plan_hash });
  if (started.kind !== 'run') return;
  out.line(`Run ${run.id} started.${scheduleText(started.run, await rt.store.getTargets(run.id))}`);
  if (opts.detach) {
    out.data({ run: run.id, state: 'running' });
    return;
  }
  await followOnTerminal(ctx, out, session, started.run);
}

const APPROVAL_POLL_MS = 1000;

/**
 * With `approval.cli: require`, a CLI write above the approval policy waits for a second person in chat, as one
 * planned in chat does; detached, it returns at once and the approval starts it.
 */
async function awaitChatApproval(
  ctx: CliContext,
  out: Output,
  session: Session,
  plan: Plan,
  opts: ExecuteOptions,
): Promise<void> {
  const { run } = plan;
  const rt = await session.ops();
  const { confirmationText, expireApprovals, requestApproval } = await import('../ops/executor/approvals.ts');
  await requestApproval(rt, run.id, session.actor.id);
  const expected = await confirmationText(rt, run);
  out.line(
    `Run ${run.id} waits for a chat approval by a second person: approve ${run.id} ${expected} (within ${Math.round(session.policy.ttlMs / 60_000)} min).`,
  );
  if (opts.detach) {
    out.data({ run: run.id, state: 'awaiting_approval' });
    return;
  }
  let now = await rt.store.getRun(run.id);
  while (now.state === 'awaiting_approval') {
    await new Promise((resolve) => setTimeout(resolve, APPROVAL_POLL_MS));
    await expireApprovals(rt, session.policy);
    now = await rt.store.getRun(run.id);
  }
  if (now.state === 'cancelled')
    throw new UsageError(`run ${run.id} was rejected or its approval expired; nothing was run`);
  await followOnTerminal(ctx, out, session, now);
}

/**
 * Follows a run on the terminal (a bar, or a line every tenth to a pipe) until it ends or its canary is done, with
 * a worker of its own when none serves the queue, then prints the report. Ctrl-C stops following, not the run,
 * and says how to follow or cancel it.
 */
export async function followOnTerminal(ctx: CliContext, out: Output, session: Session, run: RunRow): Promise<void> {
  const rt = await session.ops();
  const [{ ExecutorWorker }, { servedNode }, { FLEET_SCHEDULES }] = await Promise.all([
    import('../ops/executor/worker.ts'),
    import('../core/nodes.ts'),
    import('../ops/schedules/index.ts'),
  ]);
  // Redis away at this moment says nothing of the workers: none is started here, and following waits for Redis.
  const workers = await rt.queue.getWorkersCount().catch((err: unknown) => {
    if (isRedisAway(err)) return undefined;
    throw err;
  });
  const local =
    workers === 0
      ? new ExecutorWorker(rt, { node: servedNode(rt.config.nodes, rt.config.node), schedules: FLEET_SCHEDULES })
      : undefined;
  if (local) out.line('No worker is running: this command runs the targets itself.');
  const bar =
    ctx.io.tty && !out.json
      ? new SingleBar({ format: 'targets [{bar}] {value}/{total} {failed} failed {step}', stream: process.stderr })
      : undefined;
  const total = run.target_count;
  let nextReport = 0.1;
  const interrupted = new AbortController();
  const release = ctx.io.onInterrupt?.(() => interrupted.abort());
  bar?.start(total, 0, { failed: 0, step: '' });
  let ended;
  try {
    ended = await followRun(
      rt,
      run,
      ({ done, failed }) => {
        bar?.update(done, { failed });
        if (bar || done / total < nextReport) return;
        out.line(`  ${done}/${total} done, ${failed} not succeeded`);
        while (done / total >= nextReport) nextReport += 0.1;
      },
      {
        untilCanary: true,
        signal: interrupted.signal,
        onWaiting: (w) => out.line(`  ${waitingText(w)}`),
        onRedisAway: () => ctx.io.stderr(`Redis cannot be reached: waiting for Redis; run ${run.id} goes on.\n`),
        onStep: (step) => (bar ? bar.increment(0, { step: stepLine(step) }) : out.line(`  ${stepLine(step)}`)),
      },
    );
  } finally {
    release?.();
    bar?.stop();
    await local?.close();
  }
  if (interrupted.signal.aborted) {
    const where = local
      ? 'Its remaining targets wait for a worker (vmoodle worker, or vmoodle start).'
      : 'A worker goes on with it.';
    ctx.io.stderr(
      `Stopped following run ${run.id}; the run itself was not stopped. ${where}\nFollow it with: vmoodle runs show ${run.id} --follow\nCancel it with: vmoodle runs cancel ${run.id}\n`,
    );
    ctx.exitCode = EXIT_INTERRUPTED;
    return;
  }
  if (ended.paused) {
    out.line(
      `The canary is done (${ended.run.canary} of ${total}); the other targets wait.\nGo on with: vmoodle runs go ${run.id}\nor stop with: vmoodle runs cancel ${run.id}`,
    );
    if (
      !printReport(
        out,
        ended.run,
        ended.targets.filter((t) => t.status !== 'pending'),
      )
    )
      ctx.exitCode = 1;
    return;
  }
  if (!printReport(out, ended.run, ended.targets) || !FINAL_STATES.includes(ended.run.state)) ctx.exitCode = 1;
}
