import { errorKind } from '../../core/errors.ts';
import { startRun } from './run-actions.ts';
import type { RunServices } from './run-services.ts';
import type { RunRow } from './run-model.ts';
import { DEFAULT_APPROVAL_POLICY, type ApprovalPolicy } from './approval-policy.ts';

export class ApprovalError extends errorKind('approval') {}

/** What the approver must type: the instance's short name for one target, else the number of targets. */
export async function confirmationText(rt: RunServices, run: RunRow): Promise<string> {
  if (run.target_count !== 1) return String(run.target_count);
  return ((await rt.store.getTargets(run.id))[0]?.shortname ?? '') as string;
}

export async function requestApproval(rt: RunServices, runId: number, requester: string): Promise<void> {
  if (!(await rt.store.transition(runId, ['planned'], 'awaiting_approval')))
    throw new ApprovalError(`run ${runId} is not waiting to start`);
  await rt.store.addEvent(runId, 'approval_requested', requester);
}

async function requestedAt(rt: RunServices, runId: number): Promise<number> {
  const events = await rt.store.events(runId);
  return [...events].reverse().find((e) => e.kind === 'approval_requested')?.at ?? 0;
}

/**
 * Approves and starts a run: only a second person (never the requester), before the request expires, typing what
 * was asked, for the plan whose hash they were shown. The start is the executor's conditional one, so two
 * approvers at once start one run.
 */
export async function approveRun(
  rt: RunServices,
  runId: number,
  approver: string,
  typed: string,
  shownHash: string,
  policy: ApprovalPolicy = DEFAULT_APPROVAL_POLICY,
  samePerson?: (a: string, b: string) => boolean,
): Promise<RunRow> {
  const run = await rt.store.getRun(runId);
  if (run.state !== 'awaiting_approval')
    throw new ApprovalError(`run ${runId} is not awaiting approval (it is ${run.state.replaceAll('_', ' ')})`);
  if (approver === run.requested_by) throw new ApprovalError('you requested this run; a second person must approve it');
  // One person under two names (a chat user and the operating-system user the RBAC maps them to) is still one.
  if (samePerson?.(approver, run.requested_by))
    throw new ApprovalError(`you requested this run as ${run.requested_by}; a second person must approve it`);
  if (Date.now() - (await requestedAt(rt, runId)) > policy.ttlMs) {
    await expire(rt, runId);
    throw new ApprovalError(`the approval request for run ${runId} expired; plan it again`);
  }
  const expected = await confirmationText(rt, run);
  if (typed.trim() !== expected) {
    throw new ApprovalError(
      `type ${run.target_count === 1 ? 'the instance short name' : 'the number of targets'} (${expected}) to approve run ${runId}`,
    );
  }
  if (shownHash !== run.plan_hash)
    throw new ApprovalError(`run ${runId} changed since the approval request was shown; nothing was started`);
  // Recorded by whichever approver's start wins the conditional update, so two approvers at once leave one approval.
  const { started, run: after } = await startRun(rt, runId, approver, shownHash, 'awaiting_approval', () =>
    rt.store.addEvent(runId, 'approve', approver),
  );
  if (!started) throw new ApprovalError(`run ${runId} was already started`);
  return after;
}

async function expire(rt: RunServices, runId: number): Promise<boolean> {
  if (!(await rt.store.transition(runId, ['awaiting_approval'], 'cancelled', { finished_at: Date.now() })))
    return false;
  await rt.store.addEvent(runId, 'expire', 'vmoodle-ops');
  return true;
}

/** Ends the approval requests older than the policy allows; returns the runs it ended. */
export async function expireApprovals(rt: RunServices, policy: ApprovalPolicy): Promise<number[]> {
  const waiting = await rt.store.db(rt.store.t.runs).select('id').where({ state: 'awaiting_approval' });
  const ended: number[] = [];
  for (const { id } of waiting as Array<{ id: number }>) {
    if (Date.now() - (await requestedAt(rt, Number(id))) > policy.ttlMs && (await expire(rt, Number(id))))
      ended.push(Number(id));
  }
  return ended;
}

export async function rejectRun(rt: RunServices, runId: number, who: string): Promise<void> {
  if (!(await rt.store.transition(runId, ['awaiting_approval'], 'cancelled', { finished_at: Date.now() }))) {
    throw new ApprovalError(`run ${runId} is not awaiting approval`);
  }
  await rt.store.addEvent(runId, 'reject', who);
}
