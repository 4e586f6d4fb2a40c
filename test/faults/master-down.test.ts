import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql, { type Connection } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMysqlUrl, withDatabase } from '../../src/core/db/mysql-url.ts';
import { startPrivateMariadb } from '../../src/core/services/private-mariadb.ts';
import { findBinary, type PrivateServer } from '../../src/core/services/private-server.ts';
import { createPlan } from '../../src/ops/executor/planner.ts';
import { startRun } from '../../src/ops/executor/run-actions.ts';
import type { TargetRow } from '../../src/ops/executor/run-model.ts';
import { runCli } from '../support/cli.ts';
import { endedRun, opsFixture, startWorker, thinFleet, type OpsFixture } from '../support/fleet.ts';
import { testServices } from '../support/services.ts';
import { passTime, waitFor } from '../support/wait.ts';

const SITES = 120;
const VALUE = 'through-the-outage';

/**
 * The master database, on a MariaDB of the test's own, killed (SIGKILL, by its pid) while a run is under way and
 * started again a few seconds later: the sites on the suite's server go on being reachable, the audit does not.
 */
describe.runIf(testServices().moodleDump && findBinary(['mariadbd']))('the master database killed mid-run', () => {
  let dir: string;
  let master: PrivateServer;
  let fx: OpsFixture;
  let sites: Connection;

  const themes = async (targets: TargetRow[]) =>
    Promise.all(
      targets.map(async (t) => {
        const [rows] = await sites.query(
          `SELECT value FROM \`${t.db_name}\`.\`${t.db_prefix}config\` WHERE name = 'theme'`,
        );
        return (rows as Array<{ value: string }>)[0]?.value;
      }),
    );
  const logRows = async (targets: TargetRow[]) =>
    Promise.all(
      targets.map(async (t) => {
        const [rows] = await sites.query(
          `SELECT COUNT(*) AS n FROM \`${t.db_name}\`.\`${t.db_prefix}config_log\` WHERE name = 'theme' AND value = ?`,
          [VALUE],
        );
        return Number((rows as Array<{ n: number }>)[0]?.n);
      }),
    );

  /** Kills the server by its pid, as a crash would, and waits for it to be gone. */
  const killMaster = async () => {
    const pid = Number(readFileSync(join(dir, 'mariadb.pid'), 'utf8'));
    process.kill(pid, 'SIGKILL');
    await waitFor('the master server gone', () => {
      try {
        process.kill(pid, 0);
        return false;
      } catch {
        // biome-ignore lint/plugin: no such process is the answer awaited
        return true;
      }
    });
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vmops-masterdown-'));
    master = await startPrivateMariadb(dir);
    const admin = await mysql.createConnection(parseMysqlUrl(master.url));
    await admin.query('CREATE DATABASE vmops_master DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci');
    await admin.end();
    fx = await opsFixture(
      'masterdown',
      { name: 'vmops_master', url: withDatabase(master.url, 'vmops_master') },
      { VMOODLE_WORKER_CONCURRENCY: '4', VMOODLE_TARGET_TIMEOUT: '60', VMOODLE_WATCHDOG_INTERVAL: '1000' },
    );
    await thinFleet(fx, SITES);
    sites = await mysql.createConnection(parseMysqlUrl(testServices().mysqlServer));
    await startWorker(fx).waitUntilReady();
  }, 120_000);
  afterAll(async () => {
    await sites?.end();
    await master?.stop();
  });

  it("records every site's real old value, writes each once, ends by itself, and revert restores them all", async () => {
    const plan = await createPlan(fx.rt, {
      command: 'generic/setconfig',
      params: { key: 'theme', value: VALUE },
      selector: { tohosts: '*' },
      requestedBy: 'tester',
      via: 'cli',
    });
    const planned = await fx.rt.store.getTargets(plan.run.id);
    expect(planned).toHaveLength(SITES);
    const before = await themes(planned);

    await startRun(fx.rt, plan.run.id, 'tester', plan.run.plan_hash);
    await waitFor('a sixth of the targets applied', async () => {
      const counts = await fx.rt.store.countStatuses(plan.run.id);
      return (counts.applied ?? 0) >= SITES / 6;
    });
    await killMaster();
    await passTime(5_000, 'the master stays down while the workers go on');
    master = await startPrivateMariadb(dir);

    const run = await endedRun(fx, plan.run.id, 120_000);
    const targets = await fx.rt.store.getTargets(plan.run.id);
    expect(run.state).toBe('succeeded');
    expect(targets.map((t) => [t.status, t.old_value, t.new_value])).toEqual(
      before.map((old) => ['applied', old, VALUE]),
    );
    expect(await logRows(targets)).toEqual(Array(SITES).fill(1));

    const reverted = await runCli(['--json', 'runs', 'revert', String(plan.run.id), '--yes'], fx.env);
    expect(JSON.parse(reverted.stdout)).toMatchObject({ state: 'succeeded', counts: { applied: SITES } });
    expect(await themes(targets)).toEqual(before);
  }, 180_000);
});
