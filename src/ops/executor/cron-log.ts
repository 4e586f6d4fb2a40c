import { appendFile, mkdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';

/** Older logs a host keeps once its log is rotated: `<host>.log.1` (the newest) to `<host>.log.5`. */
export const CRON_LOGS_KEPT = 5;

/** A host's log file: its short name with anything a file name should not hold replaced. */
export const cronLogPath = (dir: string, shortname: string) => join(dir, `${shortname.replace(/[^A-Za-z0-9._-]/g, '_')}.log`);

/**
 * Appends one cron's output to its host's log (VMoodle overwrote it: each run was lost to the next). Past `maxBytes`
 * the log is rotated first, so a host's history is bounded.
 */
export async function appendCronLog(dir: string, shortname: string, entry: string, maxBytes: number): Promise<void> {
  await mkdir(dir, { recursive: true });
  const path = cronLogPath(dir, shortname);
  const size = await stat(path).then((s) => s.size, (err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return 0;
    throw err;
  });
  if (size > 0 && size + Buffer.byteLength(entry) > maxBytes) {
    await rm(`${path}.${CRON_LOGS_KEPT}`, { force: true });
    for (let i = CRON_LOGS_KEPT - 1; i >= 1; i--) await rename(`${path}.${i}`, `${path}.${i + 1}`).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
    await rename(path, `${path}.1`);
  }
  await appendFile(path, entry);
}
