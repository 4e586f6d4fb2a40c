/** A run as the audit stores it and every front end shows it: its states, its targets' statuses and rows. */
export const RUN_STATES = [
  'planned',
  'awaiting_approval',
  'running',
  'cancelling',
  'succeeded',
  'partly_failed',
  'failed',
  'cancelled',
] as const;
export type RunState = (typeof RUN_STATES)[number];
export const FINAL_STATES: readonly RunState[] = ['succeeded', 'partly_failed', 'failed', 'cancelled'];

/** What became of one target. */
export type TargetStatus =
  | 'pending'
  | 'applying'
  | 'retrying'
  | 'applied'
  | 'applied_cache_not_purged'
  | 'applied_forced'
  | 'already_applied'
  | 'conflict'
  | 'failed'
  | 'interrupted'
  | 'cancelled'
  | 'skipped';

export const DONE_OK: readonly TargetStatus[] = ['applied', 'already_applied'];
export const WARNING: readonly TargetStatus[] = ['applied_cache_not_purged', 'applied_forced'];
export const NOT_STARTED: readonly TargetStatus[] = ['cancelled', 'skipped'];
export const FINAL_TARGET: readonly TargetStatus[] = [
  ...DONE_OK,
  ...WARNING,
  ...NOT_STARTED,
  'conflict',
  'failed',
  'interrupted',
];

export interface RunRow {
  id: number;
  parent_id: number | null;
  kind: 'run' | 'retry' | 'revert';
  command: string;
  params: string;
  /** The secret parameters, sealed under key_id while the run can still start; empty once it has ended. */
  secret_params: string;
  key_id: string | null;
  selector: string;
  source: string;
  plan_hash: string;
  state: RunState;
  requested_by: string;
  via: string;
  canary: number;
  canary_open: number | boolean;
  max_failures: number;
  target_count: number;
  destructive: number | boolean;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  summary: string | null;
}

export interface TargetRow {
  id: number;
  run_id: number;
  position: number;
  /** `new`: an instance a command makes (lifecycle create), numbered within its run. */
  host_kind: 'instance' | 'master' | 'new';
  host_id: number;
  shortname: string;
  wwwroot: string;
  db_server: string;
  db_name: string;
  db_prefix: string;
  /** The node whose queue runs this target (work on its files or through Moodle's PHP), or null for any worker. */
  node: string | null;
  /** How long after the run starts this target's work is queued (a delayed command's delay and spread); 0: at once. */
  delay_ms: number;
  preview_old: string | null;
  preview_new: string | null;
  preview_note: string | null;
  /** Parameters of this target alone (a revert's old value), over the run's. */
  params: string | null;
  sensitive: number | boolean;
  old_hash: string | null;
  old_known: number | boolean;
  status: TargetStatus;
  old_value: string | null;
  new_value: string | null;
  message: string | null;
  returned_value: string | null;
  attempts: number;
  duration_ms: number | null;
  started_at: number | null;
  finished_at: number | null;
}

export type NewRun = Omit<RunRow, 'id' | 'created_at' | 'started_at' | 'finished_at' | 'summary' | 'canary_open'>;
export type NewTarget = Omit<
  TargetRow,
  | 'id'
  | 'run_id'
  | 'status'
  | 'old_value'
  | 'new_value'
  | 'message'
  | 'returned_value'
  | 'attempts'
  | 'duration_ms'
  | 'started_at'
  | 'finished_at'
>;

export interface TargetResult {
  status: TargetStatus;
  started_at?: number;
  old_value?: string | null;
  new_value?: string | null;
  message?: string | null;
  returned_value?: string | null;
  duration_ms?: number;
}

export type StatusCounts = Partial<Record<TargetStatus, number>>;

export interface RunEvent {
  kind: string;
  actor: string;
  at: number;
  detail: string | null;
}

/** How many targets have each status, in the order the statuses first appear. */
export function statusCounts(targets: readonly TargetRow[]): Map<TargetStatus, number> {
  const counts = new Map<TargetStatus, number>();
  for (const t of targets) counts.set(t.status, (counts.get(t.status) ?? 0) + 1);
  return counts;
}

/** Counts as people read them: "2 applied, 1 applied cache not purged". */
export const countsText = (counts: ReadonlyMap<TargetStatus, number>) =>
  [...counts].map(([s, n]) => `${n} ${s.replaceAll('_', ' ')}`).join(', ');

/**
 * The parameters a run really used, as it is shown: the run's own, with what its targets were given on top (a
 * revert writes each target's old value). A value that differs between targets is shown as such.
 */
export function shownParams(run: RunRow, targets: readonly Pick<TargetRow, 'params'>[]): Record<string, string> {
  const shown: Record<string, string> = JSON.parse(run.params);
  const own = targets.map((t) => (t.params ? (JSON.parse(t.params) as Record<string, string>) : {}));
  for (const key of new Set(own.flatMap((o) => Object.keys(o)))) {
    const values = new Set(own.map((o) => o[key] ?? shown[key]));
    shown[key] = values.size === 1 ? ([...values][0] as string) : `(${values.size} values, one per target)`;
  }
  return shown;
}

const utc = (ms: number) => `${new Date(ms).toISOString().slice(0, 16).replace('T', ' ')} UTC`;

/** When a started run's delayed targets are due: " Its targets are scheduled from … to … UTC."; empty when none waits. */
export function scheduleText(
  run: Pick<RunRow, 'started_at'>,
  targets: ReadonlyArray<Pick<TargetRow, 'delay_ms'>>,
): string {
  const delays = targets.map((t) => t.delay_ms).filter((d) => d > 0);
  if (delays.length === 0 || run.started_at === null) return '';
  const [first, last] = [run.started_at + Math.min(...delays), run.started_at + Math.max(...delays)];
  return first === last
    ? ` Its targets are scheduled at ${utc(first)}.`
    : ` Its targets are scheduled from ${utc(first)} to ${utc(last)}.`;
}
