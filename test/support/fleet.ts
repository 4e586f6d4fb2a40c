import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll } from 'vitest';
import { Backend } from '../../src/verbs/backend.ts';
import { loadConfig } from '../../src/core/config.ts';
import { parseMysqlUrl } from '../../src/core/db/mysql-url.ts';
import { parseSettings, serverName } from '../../src/core/security-settings.ts';
import { createPlan } from '../../src/ops/executor/planner.ts';
import { startRun } from '../../src/ops/executor/run-actions.ts';
import { FINAL_STATES, type RunRow } from '../../src/ops/executor/run-model.ts';
import type { RunServices } from '../../src/ops/executor/run-services.ts';
import { ExecutorWorker } from '../../src/ops/executor/worker.ts';
import { fieldsToRow, INSTANCE_DEFAULTS } from '../../src/registry/instance.ts';
import { createDatabase, thinInstances, type TestDatabase } from './databases.ts';
import { knownSecret } from './secrets.ts';
import { testServices } from './services.ts';
import { waitFor } from './wait.ts';

export interface OpsFixture {
  env: Record<string, string | undefined>;
  app: Backend;
  rt: RunServices;
  master: TestDatabase;
  dataDir: string;
}

/**
 * A master database, a queue prefix and a data folder of the suite's own, with the executor's timings shortened
 * so that stalls and retries happen in seconds.
 */
export async function opsFixture(
  label: string,
  master?: TestDatabase,
  extraEnv: Record<string, string> = {},
): Promise<OpsFixture> {
  const db = master ?? (await createDatabase(label));
  const dataDir = mkdtempSync(join(tmpdir(), `vmops-${label}-`));
  const env = {
    MYSQL_URL: db.url,
    REDIS_URL: testServices().redisUrl,
    VMOODLE_DATA_DIR: dataDir,
    VMOODLE_MASTER_WWWROOT: 'https://master.example.org',
    VMOODLE_MASTER_DATAROOT: join(dataDir, 'master'),
    VMOODLE_QUEUE_PREFIX: `${testServices().runId}-${label}-${randomBytes(2).toString('hex')}`,
    VMOODLE_LOCK_DURATION: '2000',
    VMOODLE_STALLED_INTERVAL: '1000',
    VMOODLE_ATTEMPTS: '2',
    VMOODLE_TARGET_TIMEOUT: '30',
    VMOODLE_SECRET_KEYS: `k1:${knownSecret(randomBytes(32).toString('base64'))}`,
    VMOODLE_LOG_FILE: testServices().logFile,
    LOG_LEVEL: 'debug',
    ...extraEnv,
  };
  mkdirSync(env.VMOODLE_MASTER_DATAROOT, { recursive: true });
  const app = new Backend(loadConfig(env));
  const rt = await app.ops();
  afterAll(() => app.close());
  await allowTestServer(app);
  return { env, app, rt, master: db, dataDir };
}

/** The security settings of a test master: its database server allowed (and any others named), nothing else set. */
export async function allowTestServer(app: Backend, others: string[] = []): Promise<void> {
  const server = serverName(parseMysqlUrl(testServices().mysqlServer));
  await (await app.settings()).write(
    parseSettings({ db_servers: [server, ...others].map((s) => ({ server: s })) }),
    'test',
  );
}

/** An in-process worker for the suite, closed after it. */
export function startWorker(fx: OpsFixture): ExecutorWorker {
  const worker = new ExecutorWorker(fx.rt);
  afterAll(() => worker.close());
  return worker;
}

export interface InstanceSpec {
  shortname: string;
  database: string;
  prefix?: string;
  vdbhost?: string;
  enabled?: boolean;
  /** A dataroot no worker can reach. */
  unreachableDataroot?: boolean;
  /** Where its dataroot is, when not in the suite's data folder (created, with a cache to purge). */
  dataroot?: string;
  /** Its wwwroot, when not https://<shortname>.campus.example.org. */
  vhostname?: string;
  mnet?: number;
}

/** Registers instances directly in the registry table, each with a dataroot folder holding a cache to purge. */
export async function registerInstances(fx: OpsFixture, specs: InstanceSpec[]): Promise<void> {
  const server = parseMysqlUrl(testServices().mysqlServer);
  const rows = specs.map((s) => {
    const vdatapath = s.unreachableDataroot
      ? `/nonexistent/moodledata/${s.shortname}`
      : (s.dataroot ?? join(fx.dataDir, s.shortname));
    if (!s.unreachableDataroot)
      mkdirSync(join(vdatapath, 'cache', 'cachestore_file', 'default_application', 'core_config'), { recursive: true });
    return fieldsToRow({
      ...INSTANCE_DEFAULTS,
      name: s.shortname,
      shortname: s.shortname,
      vhostname: s.vhostname ?? `https://${s.shortname.replaceAll('_', '-')}.campus.example.org`,
      mnet: s.mnet ?? -1,
      vdbhost: s.vdbhost ?? `${server.host}:${server.port}`,
      vdblogin: server.user,
      vdbpass: server.password ?? '',
      vdbname: s.database,
      vdbprefix: s.prefix ?? 'mdl_',
      vdatapath,
      enabled: s.enabled ?? true,
    });
  });
  await fx.rt.registry.ensureTable();
  await fx.app.masterDb.batchInsert(fx.rt.registry.table, rows, 500);
}

/** `count` thin instances (config and config_log, a fresh install's settings) registered as t1, t2, … */
export async function thinFleet(fx: OpsFixture, count: number): Promise<string[]> {
  const db = await createDatabase('thin');
  const prefixes = await thinInstances(db.name, count, {
    tables: ['config', 'config_log', 'config_plugins', 'course'],
    rowsOf: ['config', 'course'],
  });
  const names = prefixes.map((_, i) => `t${i + 1}`);
  await registerInstances(
    fx,
    prefixes.map((prefix, i) => ({ shortname: names[i] as string, database: db.name, prefix })),
  );
  return names;
}

/** A run once it has reached a final state in the master. */
export function endedRun(fx: Pick<OpsFixture, 'rt'>, runId: number, timeoutMs = 30_000): Promise<RunRow> {
  return waitFor(
    `run ${runId} to end`,
    async () => {
      const run = await fx.rt.store.getRun(runId);
      return FINAL_STATES.includes(run.state) ? run : undefined;
    },
    { timeoutMs },
  );
}

/** The theme set to `value` on the hosts named, planned and started by `tester`: the run fault tests put through a fault. */
export async function startedThemeRun(
  fx: Pick<OpsFixture, 'rt'>,
  hosts: string[] | '*',
  value: string,
): Promise<RunRow> {
  const plan = await createPlan(fx.rt, {
    command: 'generic/setconfig',
    params: { key: 'theme', value },
    selector: { tohosts: hosts },
    requestedBy: 'tester',
    via: 'cli',
  });
  await startRun(fx.rt, plan.run.id, 'tester', plan.run.plan_hash);
  return plan.run;
}
