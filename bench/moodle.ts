import { parseMysqlUrl } from '../src/core/db/mysql-url.ts';
import { loadDump, restoreSql, runSqlIn } from '../src/ops/moodle/dump.ts';
import { COMPACT_SCHEMA_PATH } from '../src/ops/moodle/moodle-source.ts';
import { loadConfig } from '../src/core/config.ts';
import { buildThinInstances } from '../src/ops/lifecycle/sandbox-thin.ts';
import { printTable, time, withScratchDatabase, type Row } from './support.ts';

/** What test fleets cost to build: a full restore, a compact one, and thin instances. */
export async function benchMoodleBuilds(): Promise<void> {
  const dumpPath = loadConfig({ ...process.env, MYSQL_URL: undefined }).moodleDump;
  const rows: Row[] = [];
  if (dumpPath) {
    const dump = await loadDump(dumpPath);
    await withScratchDatabase('full', async (url, name) => {
      const sql = restoreSql(dump);
      rows.push({
        what: 'restore the real Moodle dump (494 tables)',
        timing: await time(3, () => runSqlIn(parseMysqlUrl(url), name, sql)),
      });
    });
    await withScratchDatabase('thin', async (url, name) => {
      const count = 1000;
      const timing = await time(1, () =>
        buildThinInstances(parseMysqlUrl(url), name, dump, count, { tables: ['config', 'config_log'], rowsOf: [] }),
      );
      rows.push({
        what: `${count} thin instances (config + config_log, empty)`,
        timing,
        note: `${(timing.median / count).toFixed(1)} ms each`,
      });
    });
  }
  const compact = await loadDump(COMPACT_SCHEMA_PATH);
  await withScratchDatabase('compact', async (url, name) => {
    const sql = restoreSql(compact);
    rows.push({
      what: 'restore the compact schema (13 tables)',
      timing: await time(3, () => runSqlIn(parseMysqlUrl(url), name, sql)),
    });
  });
  printTable('Building Moodle databases for sandboxes and tests', rows);
}
