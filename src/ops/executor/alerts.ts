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

/** A decision taken on the command line, the break-glass path: audited, and told in the run's thread by the chat. */
export interface BreakGlass {
  runId: number;
  text: string;
}

export async function pushBreakGlass(rt: RunServices, notice: BreakGlass): Promise<void> {
  await rt.store.addEvent(notice.runId, 'break_glass', 'vmoodle-ops', notice.text);
  await keep(rt, rt.keys.breakGlass(), notice);
}

/** The command-line decisions waiting to be told. */
export const takeBreakGlass = (rt: RunServices, count = 20) => take<BreakGlass>(rt, rt.keys.breakGlass(), count);

/** The oldest alerts waiting. */
export const takeAlerts = (rt: RunServices, count = 20) => take<Alert>(rt, rt.keys.alerts(), count);
