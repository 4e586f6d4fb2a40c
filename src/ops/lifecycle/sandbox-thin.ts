import type { MysqlServer } from '../../core/db/mysql-url.ts';
import { restoreSql, runSqlIn, type MoodleDump, type RestoreOptions } from '../moodle/dump.ts';

const BATCH = 50;

/**
 * Thin instances, for tests and benchmarks that need many targets: only the tables asked for, each instance under
 * its own table prefix (`i1_`, `i2_`, …) in one database, as VMoodle allows instances to share a database. Built in
 * batches of statements on two connections at once (one per core).
 */
export async function buildThinInstances(
  server: MysqlServer,
  database: string,
  dump: MoodleDump,
  count: number,
  opts: Omit<RestoreOptions, 'prefix'>,
): Promise<string[]> {
  const prefixes = Array.from({ length: count }, (_, i) => `i${i + 1}_`);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const batch = prefixes.slice(next, next + BATCH);
      next += BATCH;
      await runSqlIn(server, database, batch.map((prefix) => restoreSql(dump, { ...opts, prefix })).join('\n'));
    }
  };
  await Promise.all([worker(), worker()]);
  return prefixes;
}
