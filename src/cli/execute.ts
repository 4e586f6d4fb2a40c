import { userInfo } from 'node:os';
import { SingleBar } from 'cli-progress';
import { approvalPolicy, confirmationText, expireApprovals, needsApproval, requestApproval, type ApprovalPolicy } from '../ops/executor/approvals.ts';
import { cancelRun, startRun } from '../ops/executor/run-actions.ts';
import type { Plan } from '../ops/executor/planner.ts';
import type { ProgressEvent } from '../ops/executor/progress.ts';
import type { RunServices } from '../ops/executor/run-services.ts';
import { DONE_OK, FINAL_STATES, type RunRow, type TargetRow } from '../ops/executor/run-model.ts';
import { ExecutorWorker } from '../ops/executor/worker.ts';
import { UsageError } from '../errors.ts';
import type { CliContext } from './context.ts';
import type { Output } from './output.ts';

/** Who the audit names for a command line run: the operating-system user. */
export const cliActor = () => `${userInfo().username}@cli`;

const PREVIEW_SAMPLE = 10;
/** Up to this many targets, the report lists each; past it, only those that did not simply succeed. */
const FULL_REPORT = 50;

export function printPlan(out: Output, plan: Plan): void {
  const { run, targets, command } = plan;
  out.line(`Run ${run.id}: ${run.command}${run.kind !== 'run' ? ` (${run.kind} of run ${run.parent_id})` : ''}`);
  for (const [key, value] of Object.entries(JSON.parse(run.params) as Record<string, string>)) out.line(`  ${key} = ${value}`);
  if (command.needsSource) out.line(`Source: ${run.source.split(':').slice(2).join(':') || 'master'}`);
  if (run.destructive) out.line('DESTRUCTIVE: this command deletes or replaces data on every target.');
  out.line(`${targets.length} target${targets.length === 1 ? '' : 's'}${run.canary ? `, canary: the first ${run.canary} then wait for a go` : ''}; no new target starts once more than ${run.max_failures} fail`);
  out.table(
    ['TARGET', 'NOW', 'AFTER', 'NOTE'],
    targets.slice(0, PREVIEW_SAMPLE).map((t) => [t.shortname, t.preview_old ?? (t.preview_new !== null ? '(unset)' : ''), t.preview_new ?? '', t.preview_note ?? '']),
  );
  if (targets.length > PREVIEW_SAMPLE) out.line(`… and ${targets.length - PREVIEW_SAMPLE} more`);
  for (const line of plan.leftOut ?? []) out.line(`Warning: ${line}`);
  out.line(`Plan hash ${run.plan_hash.slice(0, 12)}`);
}

export interface ExecuteOptions {
  yes?: boolean;
  confirm?: string;
  detach?: boolean;
}

/**
 * Confirms a stored plan (a prompt on a terminal, --yes otherwise; a destructive one needs --confirm=<target
 * count>), starts it, and unless detached follows it to the end, printing progress and the results.
 */
export async function executePlan(ctx: CliContext, out: Output, rt: RunServices, plan: Plan, opts: ExecuteOptions): Promise<void> {
  const { run } = plan;
  const count = plan.targets.length;
  const refuse = async (message: string) => {
    await cancelRun(rt, run.id, cliActor());
    throw new UsageError(message);
  };
  let confirmed = '--yes';
  if (run.destructive) {
    if (opts.confirm !== String(count)) await refuse(`run ${run.id} is destructive: confirm with --confirm=${count} (the number of targets); nothing was run`);
    confirmed = `--confirm=${count}`;
  } else if (!opts.yes) {
    if (!ctx.io.confirm) await refuse(`run ${run.id} needs confirmation: add --yes to run it without a prompt; nothing was run`);
    else if (!(await ctx.io.confirm(`Run ${run.command} on ${count} target${count === 1 ? '' : 's'}?`))) await refuse(`run ${run.id} not confirmed; nothing was run`);
    confirmed = 'prompt';
  }
  // The command line is the break-glass path: who confirmed, and how, is in the audit like a chat approval.
  await rt.store.addEvent(run.id, 'cli_confirm', cliActor(), confirmed);
  const policy = approvalPolicy(rt.config);
  if (rt.config.approval.cli === 'require' && needsApproval(run, plan.command.writes, policy)) {
    await awaitChatApproval(ctx, out, rt, plan, policy, opts);
    return;
  }
  const { started } = await startRun(rt, run.id, cliActor(), run.plan_hash);
  if (!started) throw new UsageError(`run ${run.id} was already started`);
  out.line(`Run ${run.id} started.`);
  if (opts.detach) {
    out.data({ run: run.id, state: 'running' });
    return;
  }
  await followRun(ctx, out, rt, run.id, count);
}

const APPROVAL_POLL_MS = 1000;

/**
 * With `approval.cli: require`, a CLI write above the approval policy waits for a second person in chat, as one
 * planned in chat does; detached, it returns at once and the approval starts it.
 */
async function awaitChatApproval(ctx: CliContext, out: Output, rt: RunServices, plan: Plan, policy: ApprovalPolicy, opts: ExecuteOptions): Promise<void> {
  const { run } = plan;
  await requestApproval(rt, run.id, cliActor());
  const expected = await confirmationText(rt, run);
  out.line(`Run ${run.id} waits for a chat approval by a second person: approve ${run.id} ${expected} (within ${rt.config.approval.ttlMinutes} min).`);
  if (opts.detach) {
    out.data({ run: run.id, state: 'awaiting_approval' });
    return;
  }
  let now = await rt.store.getRun(run.id);
  while (now.state === 'awaiting_approval') {
    await new Promise((resolve) => setTimeout(resolve, APPROVAL_POLL_MS));
    await expireApprovals(rt, policy);
    now = await rt.store.getRun(run.id);
  }
  if (now.state === 'cancelled') throw new UsageError(`run ${run.id} was rejected or its approval expired; nothing was run`);
  await followRun(ctx, out, rt, run.id, plan.targets.length);
}

/** Waits for a run to end, with a worker of its own when no worker serves the queue, and prints the outcome. */
export async function followRun(ctx: CliContext, out: Output, rt: RunServices, runId: number, total: number): Promise<void> {
  const local = (await rt.queue.getWorkersCount()) === 0 ? new ExecutorWorker(rt) : undefined;
  if (local) out.line('No worker is running: this command runs the targets itself.');
  const bar = ctx.io.tty && !out.json ? new SingleBar({ format: 'targets [{bar}] {value}/{total} {failed} failed', stream: process.stderr }) : undefined;
  let done = 0;
  let failed = 0;
  let nextReport = 0.1;
  bar?.start(total, 0, { failed: 0 });
  try {
    await rt.progress.follow(
      runId,
      (event: ProgressEvent) => {
        if (event.type !== 'target') return;
        done++;
        if (!DONE_OK.includes(event.status)) failed++;
        bar?.update(done, { failed });
        if (!bar && done / total >= nextReport) {
          out.line(`  ${done}/${total} done, ${failed} not succeeded`);
          while (done / total >= nextReport) nextReport += 0.1;
        }
      },
      (event) => event.type === 'state' && FINAL_STATES.includes(event.state),
    );
  } finally {
    bar?.stop();
    await local?.close();
  }
  await reportRun(ctx, out, await rt.store.getRun(runId), await rt.store.getTargets(runId));
}

export function targetJson(t: TargetRow) {
  return { shortname: t.shortname, wwwroot: t.wwwroot, status: t.status, old: t.old_value, new: t.new_value, message: t.message, value: t.returned_value, attempts: t.attempts, durationMs: t.duration_ms };
}

/** The end of a run: counts, every target that did not simply succeed, and the exit code (0 only if all did). */
export async function reportRun(ctx: CliContext, out: Output, run: RunRow, targets: TargetRow[]): Promise<void> {
  const counts = new Map<string, number>();
  for (const t of targets) counts.set(t.status, (counts.get(t.status) ?? 0) + 1);
  out.data({ run: run.id, state: run.state, counts: Object.fromEntries(counts), targets: targets.map(targetJson) });
  out.line(`Run ${run.id} ${run.state}: ${[...counts].map(([s, n]) => `${n} ${s.replaceAll('_', ' ')}`).join(', ')}`);
  const notable = targets.length <= FULL_REPORT ? targets : targets.filter((t) => !DONE_OK.includes(t.status) || t.returned_value);
  if (notable.length > 0) out.table(['TARGET', 'STATUS', 'OLD', 'NEW', 'MESSAGE'], notable.map((t) => [t.shortname, t.status, t.old_value ?? '', t.new_value ?? '', (t.returned_value ?? t.message ?? '').slice(0, 200)]));
  if (!FINAL_STATES.includes(run.state) || targets.some((t) => !DONE_OK.includes(t.status))) ctx.exitCode = 1;
}
