import type { RunServices } from '../../ops/executor/run-services.ts';

/** Where Slack shows a run: the channel, its approval request and its parent message (whose thread holds the rest). */
export interface RunMessages {
  channel: string;
  approval_ts: string | null;
  /** When the approval request was closed (its buttons taken away and its outcome said). */
  approval_closed_at: number | null;
  parent_ts: string | null;
  /** When the run's summary and results were posted; until then a restarted bot reports it. */
  reported_at: number | null;
}

/** How far back a restarted bot looks for runs it was reporting. */
const RESUME_WITHIN_MS = 7 * 86_400_000;

/** Kept in the master database with the runs, not in a process: a restarted bot edits the same messages. */
export class RunMessageStore {
  constructor(private readonly rt: RunServices) {}

  private get table() {
    return this.rt.store.db(this.rt.store.t.slackMessages);
  }

  async get(runId: number): Promise<RunMessages | undefined> {
    return (await this.table
      .where({ run_id: runId })
      .first('channel', 'approval_ts', 'approval_closed_at', 'parent_ts', 'reported_at')) as RunMessages | undefined;
  }

  /** Records a message of a run; a run's channel is the one its first message went to. */
  async save(runId: number, channel: string, message: Partial<Omit<RunMessages, 'channel'>>): Promise<void> {
    await this.table
      .insert({ run_id: runId, channel, ...message, created_at: Date.now() })
      .onConflict('run_id')
      .merge(Object.keys(message));
  }

  /** Marks an open approval request closed; false when it was closed already (by another bot process, or a double press). */
  async closeApproval(runId: number): Promise<boolean> {
    return (
      (await this.table
        .where({ run_id: runId })
        .whereNotNull('approval_ts')
        .whereNull('approval_closed_at')
        .update({ approval_closed_at: Date.now() })) === 1
    );
  }

  /** Runs with a parent message whose report was not finished: a bot that stopped mid-run picks them up. */
  async unreported(): Promise<Array<{ run_id: number; channel: string; parent_ts: string }>> {
    return this.table
      .whereNull('reported_at')
      .whereNotNull('parent_ts')
      .where('created_at', '>', Date.now() - RESUME_WITHIN_MS)
      .select('run_id', 'channel', 'parent_ts');
  }
}
