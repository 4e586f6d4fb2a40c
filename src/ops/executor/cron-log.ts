import { appendFile, mkdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { CronRun } from '../moodle/host-cron.ts';
import type { MoodleTarget } from '../moodle/target.ts';
import { pushAlert } from './alerts.ts';
import type { RunServices } from './run-services.ts';

/** Older logs a host keeps once its log is rotated: `<host>.log.1` (the newest) to `<host>.log.5`. */
export const CRON_LOGS_KEPT = 5;

/** A host's log file: its short name with anything a file name should not hold replaced. */
export const cronLogPath = (dir: string, shortname: string) =>
  join(dir, `${shortname.replace(/[^A-Za-z0-9._-]/g, '_')}.log`);

/**
 * Appends one cron's output to its host's log (VMoodle overwrote it: each run was lost to the next). Past `maxBytes`
 * the log is rotated first, so a host's history is bounded.
 */
export async function appendCronLog(dir: string, shortname: string, entry: string, maxBytes: number): Promise<void> {
  await mkdir(dir, { recursive: true });
  const path = cronLogPath(dir, shortname);
  const size = await stat(path).then(
    (s) => s.size,
    (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return 0;
      throw err;
    },
  );
  if (size > 0 && size + Buffer.byteLength(entry) > maxBytes) {
    await rm(`${path}.${CRON_LOGS_KEPT}`, { force: true });
    for (let i = CRON_LOGS_KEPT - 1; i >= 1; i--)
      await rename(`${path}.${i}`, `${path}.${i + 1}`).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
    await rename(path, `${path}.1`);
  }
  await appendFile(path, entry);
}

/**
 * What follows one host's cron: the registry's counters (VMoodle's), its log, its outcome kept for the status, and an
 * alert when it went wrong in a new way or came right again.
 */
export async function recordCron(rt: RunServices, target: MoodleTarget, run: CronRun): Promise<void> {
  const { host } = target;
  if (host.kind === 'instance') await rt.registry.recordCron(host.id, Math.floor(run.started / 1000));
  const header = `== ${new Date(run.started).toISOString()} ${run.outcome} in ${(run.durationMs / 1000).toFixed(1)} s${run.note ? ` (${run.note})` : ''} ==\n`;
  await appendCronLog(
    rt.config.cron.logDir,
    host.shortname,
    `${header}${run.output.trimEnd()}\n`,
    rt.config.cron.logMaxBytes,
  );
  const previous = await rt.redis.hget(rt.keys.cronOutcomes(), String(host.id));
  await rt.redis.hset(rt.keys.cronOutcomes(), String(host.id), `${run.outcome} ${run.started}`);
  const before = previous?.split(' ')[0] ?? 'completed';
  if (run.outcome !== before) {
    const text =
      run.outcome === 'completed'
        ? `Cron of ${host.shortname} (${host.wwwroot}) completes again.`
        : `Cron of ${host.shortname} (${host.wwwroot}): ${run.outcome}${run.note ? ` (${run.note})` : ''}. Its log: ${host.shortname}.log on ${rt.config.node}.`;
    await pushAlert(rt, { kind: 'cron', text });
  }
  if (run.outcome !== 'completed')
    rt.log.warn({ host: host.shortname, outcome: run.outcome, note: run.note }, 'cron did not complete');
}
