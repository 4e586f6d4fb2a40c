import type { Config } from '../../config.ts';
import type { RunRow } from './run-model.ts';

export interface ApprovalPolicy {
  /** A write to more targets than this needs a second person, destructive or not. */
  threshold: number;
  /** How long an approval request stays open. */
  ttlMs: number;
}

export const DEFAULT_APPROVAL_POLICY: ApprovalPolicy = { threshold: 50, ttlMs: 30 * 60_000 };

/** The policy the configuration sets, for every front end alike. */
export const approvalPolicy = (config: Pick<Config, 'approval'>): ApprovalPolicy => ({ threshold: config.approval.threshold, ttlMs: config.approval.ttlMinutes * 60_000 });

/** A destructive command, or a write to more targets than the threshold, needs a second person. */
export function needsApproval(run: RunRow, writes: boolean, policy: ApprovalPolicy): boolean {
  return Boolean(run.destructive) || (writes && run.target_count > policy.threshold);
}
