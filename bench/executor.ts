import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import Table from 'cli-table3';
import mysql from 'mysql2/promise';
import type { Backend } from '../src/verbs/backend.ts';
import { parseMysqlUrl, type MysqlServer } from '../src/core/db/mysql-url.ts';
import { createPlan } from '../src/ops/executor/planner.ts';
import { mapLimit } from '../src/core/map-limit.ts';
import type { RunServices } from '../src/ops/executor/run-services.ts';
import { ExecutorWorker } from '../src/ops/executor/worker.ts';
import { fieldsToRow, INSTANCE_DEFAULTS } from '../src/registry/instance.ts';
import { loadDump, restoreSql } from '../src/ops/moodle/dump.ts';
import { COMPACT_SCHEMA_PATH } from '../src/ops/moodle/moodle-source.ts';
import { benchServer, withScratchDatabase, benchBackend, timedRun } from './support.ts';

const TARGETS = 1000;
const DATABASES = 4;
const PER_SERVER = 40;

/** The tables a setting write touches, as Moodle creates them (from the compact schema), without their rows. */
const SETTING_TABLES = ['config', 'config_log', 'config_plugins', 'logstore_standard_log'];

/** The rows a setconfig reads besides the setting: the standard log store enabled, writing JSON (moodle-facts §3.1). */
const seedRows = (p: string) => `INSERT INTO \`${p}config\` (name, value) VALUES ('theme', 'boost');
INSERT INTO \`${p}config_plugins\` (plugin, name, value) VALUES ('tool_log', 'enabled_stores', 'logstore_standard'), ('logstore_standard', 'jsonformat', '1');`;

/** A site's MUC configuration with the default file store, so that a setting write deletes one cache entry file. */
const MUC_SITE = 'f3b6c2a1d4e5f60718293a4b5c6d7e8f';
const mucConfig = `<?php defined('MOODLE_INTERNAL') || die();
 $configuration = array (
  'siteidentifier' => '${MUC_SITE}',
  'stores' => array ('default_application' => array ('name' => 'default_application', 'plugin' => 'file', 'configuration' => array (), 'features' => 30, 'modes' => 3, 'default' => true, 'class' => 'cachestore_file')),
  'modemappings' => array (0 => array ('mode' => 1, 'store' => 'default_application', 'sort' => -1)),
  'definitionmappings' => array (),
);`;

/** The core/config entry file of mdl_config under a dataroot (moodle-facts §3.3). */
function coreConfigEntry(datapath: string): string {
  const k = createHash('sha1')
    .update(`${createHash('md5').update(`1/core/config/${MUC_SITE}`).digest('hex')}-core`)
    .digest('hex');
  return join(
    datapath,
    'cache',
    'cachestore_file',
    'default_application',
    'core_config',
    `${k.slice(0, 3)}-cache`,
    `${k}.cache`,
  );
}

/** Threads_connected sampled every 5 ms: the peak the server saw. */
function sampleConnections(conn: mysql.Connection) {
  let peak = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const [rows] = await conn.query("SHOW GLOBAL STATUS LIKE 'Threads_connected'");
      peak = Math.max(peak, Number((rows as Array<{ Value: string }>)[0]?.Value));
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  return async () => {
    running = false;
    await loop;
    return peak;
  };
}

/** A cached copy of mdl_config, as a site that was visited has: the write must delete it. */
function seedCacheEntry(datapath: string): void {
  const entry = coreConfigEntry(datapath);
  mkdirSync(dirname(entry), { recursive: true });
  writeFileSync(entry, 'a:0:{}');
}

export interface BenchFleet {
  app: Backend;
  rt: RunServices;
  /** The settings of the fleet's master, for a worker of its own started as a process. */
  env: Record<string, string | undefined>;
  server: MysqlServer;
  /** Where target i lives. */
  instance(i: number): { db: string; prefix: string; datapath: string };
}

/** How many instances a bench fleet has, and what each holds. */
export interface FleetShape {
  targets: number;
  /** Moodle tables each instance has, from the compact schema. */
  tables: readonly string[];
  /** Those of them with a fresh install's rows. */
  rowsOf: readonly string[];
  /** More rows, for a table prefix. */
  seed(prefix: string): string;
}

/** The setconfig broadcast's fleet: instances with the tables a setting write touches, the log store on. */
export const settingFleet = (targets: number): FleetShape => ({
  targets,
  tables: SETTING_TABLES,
  rowsOf: [],
  seed: seedRows,
});
const SETTING_FLEET = settingFleet(TARGETS);

/**
 * Instances (four databases of table prefixes on one server, as VMoodle allows), registered in a scratch master,
 * each with the tables the shape names and a dataroot; all dropped afterwards.
 */
export async function withBenchFleet(
  label: string,
  work: (fleet: BenchFleet) => Promise<void>,
  shape: FleetShape = SETTING_FLEET,
): Promise<void> {
  const dataRoot = mkdtempSync(join(tmpdir(), 'vmops-bench-'));
  const server = parseMysqlUrl(benchServer());
  const probe = await mysql.createConnection({ ...server, multipleStatements: true });
  const fleetDbs = Array.from({ length: DATABASES }, (_, i) => `vmops_bench_${label}${i}_${process.pid}`);
  try {
    const prefixes = Array.from({ length: shape.targets }, (_, i) => `b${i}_`);
    const schema = await loadDump(COMPACT_SCHEMA_PATH);
    const ddl = (prefix: string) =>
      `${restoreSql(schema, { tables: shape.tables, rowsOf: shape.rowsOf, prefix })}\n${shape.seed(prefix)}`;
    await mapLimit(fleetDbs, 2, async (db, d) => {
      await probe.query(`DROP DATABASE IF EXISTS \`${db}\`; CREATE DATABASE \`${db}\``);
      const conn = await mysql.createConnection({ ...server, database: db, multipleStatements: true });
      const mine = prefixes.filter((_, i) => i % DATABASES === d);
      for (let i = 0; i < mine.length; i += 25)
        await conn.query(
          mine
            .slice(i, i + 25)
            .map(ddl)
            .join('\n'),
        );
      await conn.end();
    });
    const instance = (i: number) => ({
      db: fleetDbs[i % DATABASES] as string,
      prefix: prefixes[i] as string,
      datapath: join(dataRoot, `b${i}`),
    });
    await withScratchDatabase(label, async (url) => {
      const queuePrefix = `vmops-bench-${label}-${process.pid}`;
      const env = {
        ...process.env,
        MYSQL_URL: url,
        VMOODLE_DATA_DIR: dataRoot,
        VMOODLE_MASTER_WWWROOT: 'https://master.example.org',
        VMOODLE_QUEUE_PREFIX: queuePrefix,
        VMOODLE_WORKER_CONCURRENCY: String(PER_SERVER),
        VMOODLE_DB_SERVER_CAP: String(PER_SERVER),
        VMOODLE_SECRET_KEYS: `bench:${randomBytes(32).toString('base64')}`,
      };
      const app = await benchBackend(env);
      const rt = await app.ops();
      const rows = Array.from({ length: shape.targets }, (_, i) => {
        const { db, prefix, datapath } = instance(i);
        mkdirSync(join(datapath, 'muc'), { recursive: true });
        writeFileSync(join(datapath, 'muc', 'config.php'), mucConfig);
        seedCacheEntry(datapath);
        return fieldsToRow({
          ...INSTANCE_DEFAULTS,
          name: `Bench ${i}`,
          shortname: `b${i}`,
          vhostname: `https://b${i}.bench.example.org`,
          vdbhost: `${server.host}:${server.port}`,
          vdblogin: server.user,
          vdbpass: server.password ?? '',
          vdbname: db,
          vdbprefix: prefix,
          vdatapath: datapath,
        });
      });
      await app.masterDb.batchInsert(rt.registry.table, rows, 500);
      try {
        await work({ app, rt, env, server, instance });
      } finally {
        const keys = await rt.redis.keys(`${queuePrefix}*`);
        for (let i = 0; i < keys.length; i += 500) await rt.redis.del(...keys.slice(i, i + 500));
        await app.close();
      }
    });
  } finally {
    for (const db of fleetDbs) await probe.query(`DROP DATABASE IF EXISTS \`${db}\``);
    await probe.end();
    rmSync(dataRoot, { recursive: true, force: true });
  }
}

/**
 * A setconfig broadcast to 1,000 instances from submit to the last result, next to the floor: the same
 * transactions sent straight through one mysql2 pool, measured first on a quiet disk.
 */
export async function benchExecutor(): Promise<void> {
  await withBenchFleet('exec', async ({ rt, server, instance }) => {
    const probe = await mysql.createConnection(server);
    const floorPool = mysql.createPool({ ...server, connectionLimit: PER_SERVER });
    // The floor does each target's work as plainly as it can be done: the compare-and-set write, both log rows and the
    // one cache entry file, with no queue, lock, audit or progress.
    const floorPass = () =>
      mapLimit(
        Array.from({ length: TARGETS }, (_, i) => i),
        PER_SERVER,
        async (i) => {
          const { db, prefix, datapath } = instance(i);
          const t = (name: string) => `\`${db}\`.\`${prefix}${name}\``;
          const c = await floorPool.getConnection();
          try {
            await c.beginTransaction();
            const [cur] = await c.query(`SELECT value FROM ${t('config')} WHERE name = 'theme' FOR UPDATE`);
            const old = (cur as Array<{ value: string }>)[0]?.value ?? null;
            await c.query(`UPDATE ${t('config')} SET value = ? WHERE name = 'theme'`, ['floor']);
            const [log] = await c.query(
              `INSERT INTO ${t('config_log')} (userid, timemodified, plugin, name, value, oldvalue) VALUES (0, UNIX_TIMESTAMP(), NULL, 'theme', 'floor', ?)`,
              [old],
            );
            await c.query(
              `SELECT plugin, value FROM ${t('config_plugins')} WHERE (plugin = 'tool_log' AND name = 'enabled_stores') OR (plugin = 'logstore_standard' AND name = 'jsonformat')`,
            );
            await c.query(
              `INSERT INTO ${t('logstore_standard_log')} (eventname, component, action, target, objecttable, objectid, crud, edulevel, contextid, contextlevel, contextinstanceid, userid, courseid, anonymous, other, timecreated, origin)
           VALUES ('\\\\core\\\\event\\\\config_log_created', 'core', 'created', 'config_log', 'config_log', ?, 'c', 0, 1, 10, 0, 0, 0, 0, ?, UNIX_TIMESTAMP(), 'cli')`,
              [
                (log as { insertId: number }).insertId,
                JSON.stringify({ name: 'theme', oldvalue: old, value: 'floor', plugin: null }),
              ],
            );
            await c.commit();
          } finally {
            c.release();
          }
          await rm(coreConfigEntry(datapath), { force: true });
        },
      );
    // A first pass grows every fresh tablespace (compressed rows, eight indexes on the log table); the measured one,
    // like the run after it, writes into tables that have pages.
    await floorPass();
    const stopFloor = sampleConnections(probe);
    const floorStart = performance.now();
    await floorPass();
    const floorMs = performance.now() - floorStart;
    const floorPeak = await stopFloor();
    await floorPool.end();
    for (let i = 0; i < TARGETS; i++) seedCacheEntry(instance(i).datapath);

    // Let the floor's writes reach the disk so that they do not slow the run measured next.
    await new Promise((r) => setTimeout(r, 3000));
    const planStart = performance.now();
    const plan = await createPlan(rt, {
      command: 'generic/setconfig',
      params: { key: 'theme', value: 'classic' },
      selector: { tohosts: '*' },
      requestedBy: 'bench',
      via: 'cli',
    });
    const planMs = performance.now() - planStart;

    const worker = new ExecutorWorker(rt);
    await worker.waitUntilReady();
    const stopSampling = sampleConnections(probe);
    const cpuBefore = process.cpuUsage();
    const runMs = await timedRun(rt, plan.run);
    const cpu = process.cpuUsage(cpuBefore);
    const cpuShare = (cpu.user + cpu.system) / 1000 / runMs;
    const serverPeak = await stopSampling();
    const run = await rt.store.getRun(plan.run.id);
    await worker.close();
    const left = Array.from({ length: TARGETS }, (_, i) => existsSync(coreConfigEntry(instance(i).datapath))).filter(
      Boolean,
    ).length;

    const [pool] = (await probe.query("SHOW GLOBAL VARIABLES LIKE 'innodb_buffer_pool_size'"))[0] as Array<{
      Value: string;
    }>;
    const poolMb = Number(pool?.Value ?? 0) / 2 ** 20;
    const table = new Table({ head: ['measure', 'value', 'goal', 'met'], style: { head: [], border: [] } });
    table.push(
      [
        "server InnoDB buffer pool (the fleet's tables fit in memory)",
        `${poolMb.toFixed(0)} MB`,
        '≥ 512 MB',
        poolMb >= 512 ? 'yes' : 'NO: run and floor measure the disk',
      ],
      ['plan: resolve + preview 1,000 targets', `${planMs.toFixed(0)} ms`, '', ''],
      ['run: submit → last result', `${runMs.toFixed(0)} ms`, '< 2000 ms', runMs < 2000 ? 'yes' : 'NO'],
      ['targets/s', (TARGETS / (runMs / 1000)).toFixed(0), '', ''],
      ['CPU of the worker process during the run', `${(cpuShare * 100).toFixed(0)} % of one core`, '', ''],
      ['run state', `${run.state} ${run.summary}`, 'succeeded', run.state === 'succeeded' ? 'yes' : 'NO'],
      [
        'peak DB connections (pool / server)',
        `${rt.moodle.peakConnections} / ${serverPeak}`,
        `pool ≤ ${PER_SERVER}`,
        rt.moodle.peakConnections <= PER_SERVER ? 'yes' : 'NO',
      ],
      [
        'floor: same work per target, one mysql2 pool, no queue',
        `${floorMs.toFixed(0)} ms (server peak ${floorPeak})`,
        '',
        '',
      ],
      ['run / floor', `${(runMs / floorMs).toFixed(2)}×`, '≤ 2×', runMs / floorMs <= 2 ? 'yes' : 'NO'],
      ['cache entries left (each write deletes its own)', String(left), '0', left === 0 ? 'yes' : 'NO'],
    );
    console.log(
      `\nExecutor: generic/setconfig on ${TARGETS.toLocaleString('en')} instances (${DATABASES} databases, one server)\n${table.toString()}`,
    );
    await probe.end();
  });
}
