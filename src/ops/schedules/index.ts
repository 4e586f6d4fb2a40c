import type { ScheduledWork } from '../executor/worker.ts';
import { CRON_HOST, CRON_TICK, cronTick, MNET_AUTORENEW, runCronJob, upsertSchedulers } from './fleet-cron.ts';
import { autoRenew } from './mnet-autorenew.ts';

/** Everything the clock starts on the fleet: VMoodle's cron, one host's cron, and MNET key auto-renewal. */
export const FLEET_SCHEDULES: ScheduledWork = {
  handlers: {
    [CRON_TICK]: (rt) => cronTick(rt),
    [CRON_HOST]: (rt, data) => runCronJob(rt, (data as { instanceId: number }).instanceId),
    [MNET_AUTORENEW]: (rt) => autoRenew(rt),
  },
  declare: upsertSchedulers,
};
