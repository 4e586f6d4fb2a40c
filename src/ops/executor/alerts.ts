import type { RunServices } from './run-services.ts';

/** Something the ops channel should hear of without anyone asking: a cron gone wrong (or right again), a key renewed. */
export interface Alert {
  kind: 'cron' | 'mnet';
  text: string;
  at: number;
}

/** Alerts kept while no chat takes them (no ops channel, no bot running): the newest this many. */
const KEPT = 1000;

/** Adds to a list the chat takes from, keeping the newest KEPT. */
async function keep(rt: RunServices, key: string, value: unknown): Promise<void> {
  await rt.redis.multi().rpush(key, JSON.stringify(value)).ltrim(key, -KEPT, -1).exec();
}

/** The oldest entries of such a list, taken: each is given to one taker only, however many bot processes ask. */
async function take<T>(rt: RunServices, key: string, count: number): Promise<T[]> {
  return ((await rt.redis.lpop(key, count)) ?? []).map((a) => JSON.parse(a) as T);
}

export const pushAlert = (rt: RunServices, alert: Omit<Alert, 'at'>) =>
  keep(rt, rt.keys.alerts(), { ...alert, at: Date.now() });

/**
 * Something a run's thread should hear of: a decision taken on the command line (the break-glass path), or the
 * workers recovering the run on their own after its queued work was lost.
 */
export interface RunNotice {
  runId: number;
  kind: 'break_glass' | 'recovered';
  text: string;
}

/** A decision taken on the command line: audited, and told in the run's thread by the chat. */
export async function pushBreakGlass(rt: RunServices, notice: Omit<RunNotice, 'kind'>): Promise<void> {
  await rt.store.addEvent(notice.runId, 'break_glass', 'vmoodle-ops', notice.text);
  await keep(rt, rt.keys.runNotices(), { ...notice, kind: 'break_glass' } satisfies RunNotice);
}

/** A run the workers recovered (its `recover` event says so in the audit), told in its thread by the chat. */
export const pushRecovered = (rt: RunServices, runId: number, text: string) =>
  keep(rt, rt.keys.runNotices(), { runId, kind: 'recovered', text } satisfies RunNotice);

/** The run notices waiting to be told. */
export const takeRunNotices = (rt: RunServices, count = 20) => take<RunNotice>(rt, rt.keys.runNotices(), count);

/** The oldest alerts waiting. */
export const takeAlerts = (rt: RunServices, count = 20) => take<Alert>(rt, rt.keys.alerts(), count);
