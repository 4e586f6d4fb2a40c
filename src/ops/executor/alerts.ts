import type { RunServices } from './run-services.ts';

/** Something the ops channel should hear of without anyone asking: a cron gone wrong (or right again), a key renewed. */
export interface Alert {
  kind: 'cron' | 'mnet';
  text: string;
  at: number;
}

/** Alerts kept while no chat takes them (no ops channel, no bot running): the newest this many. */
const KEPT = 1000;

export async function pushAlert(rt: RunServices, alert: Omit<Alert, 'at'>): Promise<void> {
  await rt.redis.multi().rpush(rt.keys.alerts(), JSON.stringify({ ...alert, at: Date.now() })).ltrim(rt.keys.alerts(), -KEPT, -1).exec();
}

/** A decision taken on the command line, the break-glass path: audited, and told in the run's thread by the chat. */
export interface BreakGlass {
  runId: number;
  text: string;
}

export async function pushBreakGlass(rt: RunServices, notice: BreakGlass): Promise<void> {
  await rt.store.addEvent(notice.runId, 'break_glass', 'vmoodle-ops', notice.text);
  await rt.redis.multi().rpush(rt.keys.breakGlass(), JSON.stringify(notice)).ltrim(rt.keys.breakGlass(), -KEPT, -1).exec();
}

/** The command-line decisions waiting to be told, taken once whichever bot asks. */
export async function takeBreakGlass(rt: RunServices, count = 20): Promise<BreakGlass[]> {
  const taken = await rt.redis.lpop(rt.keys.breakGlass(), count);
  return (taken ?? []).map((a) => JSON.parse(a) as BreakGlass);
}

/** The oldest alerts waiting, taken: each is given to one taker only, however many bot processes ask. */
export async function takeAlerts(rt: RunServices, count = 20): Promise<Alert[]> {
  const taken = await rt.redis.lpop(rt.keys.alerts(), count);
  return (taken ?? []).map((a) => JSON.parse(a) as Alert);
}
