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

/** The oldest alerts waiting, taken: each is given to one taker only, however many bot processes ask. */
export async function takeAlerts(rt: RunServices, count = 20): Promise<Alert[]> {
  const taken = await rt.redis.lpop(rt.keys.alerts(), count);
  return (taken ?? []).map((a) => JSON.parse(a) as Alert);
}
