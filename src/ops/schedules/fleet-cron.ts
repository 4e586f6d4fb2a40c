import { randomUUID } from 'node:crypto';
import type { Instance } from '../../registry/instance.ts';
import { errorFields } from '../../core/log.ts';
import { findCommand } from '../commands/index.ts';
import { runHostCron, type CronOutcome } from '../moodle/host-cron.ts';
import { nodeOfDataroot } from '../../core/nodes.ts';
import { commandContext } from '../executor/command-contexts.ts';
import { recordCron } from '../executor/cron-log.ts';
import type { RunServices } from '../executor/run-services.ts';

/** The job names of the fleet's cron: a tick picks hosts; a host job runs one host's cron. */
export const CRON_TICK = 'vcron-tick';
export const CRON_HOST = 'cron-host';
const TICK_SCHEDULER = 'vcron';

/**
 * VMoodle's round robin: the next `count` hosts (by registry id) after the last one started, wrapping to the first;
 * the id to resume after next time.
 */
export function roundRobin(
  ids: readonly number[],
  lastHost: number,
  count: number,
): { picked: number[]; last: number } {
  const sorted = [...ids].sort((a, b) => a - b);
  if (sorted.length === 0) return { picked: [], last: lastHost };
  const start = sorted.findIndex((id) => id > lastHost);
  const from = Math.max(start, 0);
  const picked = Array.from(
    { length: Math.min(count, sorted.length) },
    (_, i) => sorted[(from + i) % sorted.length] as number,
  );
  return { picked, last: picked.at(-1) as number };
}

/**
 * Lowest gap (VMoodle's intended LOWEST_POSSIBLE_GAP, which never ran): the hosts whose last cron started more than
 * `periodSeconds` ago, the longest waiting first, at most `count`.
 */
export function lowestGap(
  hosts: ReadonlyArray<Pick<Instance, 'id' | 'lastcron'>>,
  nowSeconds: number,
  periodSeconds: number,
  count: number,
): number[] {
  return hosts
    .filter((h) => nowSeconds - h.lastcron > periodSeconds)
    .sort((a, b) => a.lastcron - b.lastcron || a.id - b.id)
    .slice(0, count)
    .map((h) => h.id);
}

/** The cron command's definition carries the wrappers a cron may run (cron, and purge_caches for its keep-alive write). */
const cronCommand = () => findCommand('cron/run');

/** One host's cron, unless it is already running: the lock outlives the cron's timeout, so a dead worker's frees itself. */
export async function runCronJob(rt: RunServices, instanceId: number): Promise<CronOutcome | 'busy' | 'gone'> {
  const fleet = await rt.registry.loadFleet();
  const host = fleet.byKindAndId('instance', instanceId);
  if (!host?.enabled) return 'gone';
  const key = rt.keys.cronLock(instanceId);
  const owner = randomUUID();
  if (!(await rt.gate.lock(key, owner, rt.config.cron.timeoutSeconds * 1000 + 60_000))) return 'busy';
  try {
    const target = rt.moodleTarget(fleet, host);
    const run = await runHostCron(commandContext(rt, target, cronCommand()), target, rt.config.cron);
    await recordCron(rt, target, run);
    return run.outcome;
  } finally {
    await rt.gate.unlock(key, owner);
  }
}

/** Which queue a host's cron goes to: its node's when it runs through Moodle's PHP there (undefined: no node holds it). */
function cronQueue(rt: RunServices, dataroot: string): { node: string | null } | undefined {
  if (rt.config.cron.trigger === 'http' || rt.config.nodes.length === 0) return { node: null };
  const node = nodeOfDataroot(rt.config.nodes, dataroot);
  return node ? { node: node.name } : undefined;
}

/**
 * One tick: the hosts the strategy picks among the enabled instances, each queued as a job of its own (one per host
 * and tick: a tick delivered twice adds nothing). Returns the hosts queued.
 */
export async function cronTick(rt: RunServices, now = Date.now()): Promise<number[]> {
  const { cron } = rt.config;
  const instances = (await rt.registry.loadFleet()).instances.filter((i) => i.enabled);
  let picked: number[];
  if (cron.strategy === 'roundrobin') {
    const last = Number((await rt.redis.get(rt.keys.cronLastHost())) ?? 0);
    const next = roundRobin(
      instances.map((i) => i.id),
      last,
      cron.perTick,
    );
    picked = next.picked;
    await rt.redis.set(rt.keys.cronLastHost(), String(next.last));
  } else {
    picked = lowestGap(instances, Math.floor(now / 1000), cron.periodMinutes * 60, cron.perTick);
  }
  const byId = new Map(instances.map((i) => [i.id, i]));
  const tick = Math.floor(now / 1000);
  const queued: number[] = [];
  for (const id of picked) {
    const instance = byId.get(id) as Instance;
    const queue = cronQueue(rt, instance.vdatapath);
    if (!queue) {
      rt.log.warn(
        { host: instance.shortname, dataroot: instance.vdatapath },
        "no node holds this host's dataroot: its cron is not run",
      );
      continue;
    }
    await rt.queueOf(queue.node).add(
      CRON_HOST,
      { instanceId: id, installation: rt.installation },
      {
        jobId: `i${rt.installation.slice(0, 12)}-cron-h${id}-t${tick}`,
        removeOnComplete: { age: 3600 },
        removeOnFail: { age: 86_400 },
        attempts: 1,
      },
    );
    queued.push(id);
  }
  return queued;
}

/**
 * The schedulers that make ticks: the fleet's cron on its cron expression, and MNET auto-renewal every quarter of
 * an hour, each upserted by every worker at start (one scheduler whatever their number) and removed when configured off.
 */
export async function upsertSchedulers(rt: RunServices): Promise<void> {
  const queue = rt.queue;
  try {
    if (rt.config.cron.schedule)
      await queue.upsertJobScheduler(
        TICK_SCHEDULER,
        { pattern: rt.config.cron.schedule, tz: 'UTC' },
        { name: CRON_TICK, data: { installation: rt.installation } },
      );
    else await queue.removeJobScheduler(TICK_SCHEDULER);
    if (rt.config.mnet.autorenew)
      await queue.upsertJobScheduler(
        AUTORENEW_SCHEDULER,
        { pattern: '*/15 * * * *', tz: 'UTC' },
        { name: MNET_AUTORENEW, data: { installation: rt.installation } },
      );
    else await queue.removeJobScheduler(AUTORENEW_SCHEDULER);
  } catch (err) {
    rt.log.error({ ...errorFields(err) }, 'the cron and key renewal schedules could not be set up');
  }
}

export const MNET_AUTORENEW = 'mnet-autorenew';
const AUTORENEW_SCHEDULER = 'mnet-autorenew';
