import type { ApprovalSettings } from '../../core/security-settings.ts';
import type { RunRow } from './run-model.ts';

export interface ApprovalPolicy {
  /** A write to more targets than this needs a second person, destructive or not. */
  threshold: number;
  /** How long an approval request stays open. */
  ttlMs: number;
  /** `require`: a CLI write above the policy waits for a chat approval, as a chat one does (default off). */
  cli?: 'require' | 'off';
}

export const DEFAULT_APPROVAL_POLICY: ApprovalPolicy = { threshold: 50, ttlMs: 30 * 60_000, cli: 'off' };

/** The policy the master's settings set, for every front end alike. */
export const approvalPolicy = (approval: ApprovalSettings): ApprovalPolicy => ({
  threshold: approval.threshold,
  ttlMs: approval.ttlMinutes * 60_000,
  cli: approval.cli,
});

/** A destructive command, or a write to more targets than the threshold, needs a second person. */
export function needsApproval(run: RunRow, writes: boolean, policy: ApprovalPolicy): boolean {
  return Boolean(run.destructive) || (writes && run.target_count > policy.threshold);
}
