import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Table from 'cli-table3';
import mysql from 'mysql2/promise';
import { Backend } from '../src/backend.ts';
import { loadConfig } from '../src/config.ts';
import { parseMysqlUrl, type MysqlServer } from '../src/db/mysql-url.ts';
import { startRun } from '../src/ops/executor/run-actions.ts';
import { createPlan, mapLimit } from '../src/ops/executor/planner.ts';
import type { RunServices } from '../src/ops/executor/run-services.ts';
import { FINAL_STATES } from '../src/ops/executor/run-model.ts';
import { ExecutorWorker } from '../src/ops/executor/worker.ts';
import { fieldsToRow, INSTANCE_DEFAULTS } from '../src/registry/instance.ts';
import { benchServer, withScratchDatabase } from './support.ts';

const TARGETS = 1000;
const DATABASES = 4;
const PER_SERVER = 40;

const configDdl = (p: string) => `CREATE TABLE \`${p}config\` (id BIGINT(10) NOT NULL AUTO_INCREMENT, name VARCHAR(255) NOT NULL DEFAULT '', value LONGTEXT NOT NULL,
  PRIMARY KEY (id), UNIQUE KEY \`${p}conf_nam_uix\` (name)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=COMPRESSED;
CREATE TABLE \`${p}config_log\` (id BIGINT(10) NOT NULL AUTO_INCREMENT, userid BIGINT(10) NOT NULL, timemodified BIGINT(10) NOT NULL,
  plugin VARCHAR(100) DEFAULT NULL, name VARCHAR(100) NOT NULL DEFAULT '', value LONGTEXT DEFAULT NULL, oldvalue LONGTEXT DEFAULT NULL,
  PRIMARY KEY (id)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=COMPRESSED;
INSERT INTO \`${p}config\` (name, value) VALUES ('theme', 'boost');`;

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

export interface BenchFleet {
  app: Backend;
  rt: RunServices;
  server: MysqlServer;
  /** Where target i lives. */
  instance(i: number): { db: string; prefix: string; datapath: string };
}

/**
 * 1,000 instances (four databases of 250 table prefixes on one server, as VMoodle allows), registered in a scratch
 * master, each with the config and config_log tables a setconfig touches and a dataroot; all dropped afterwards.
 */
export async function withBenchFleet(label: string, work: (fleet: BenchFleet) => Promise<void>): Promise<void> {
  const dataRoot = mkdtempSync(join(tmpdir(), 'vmops-bench-'));
  const server = parseMysqlUrl(benchServer());
  const probe = await mysql.createConnection({ ...server, multipleStatements: true });
  const fleetDbs = Array.from({ length: DATABASES }, (_, i) => `vmops_bench_${label}${i}_${process.pid}`);
  try {
    const prefixes = Array.from({ length: TARGETS }, (_, i) => `b${i}_`);
    await mapLimit(fleetDbs, 2, async (db, d) => {
      await probe.query(`DROP DATABASE IF EXISTS \`${db}\`; CREATE DATABASE \`${db}\``);
      const conn = await mysql.createConnection({ ...server, database: db, multipleStatements: true });
      const mine = prefixes.filter((_, i) => i % DATABASES === d);
      for (let i = 0; i < mine.length; i += 50) await conn.query(mine.slice(i, i + 50).map(configDdl).join('\n'));
      await conn.end();
    });
    const instance = (i: number) => ({ db: fleetDbs[i % DATABASES] as string, prefix: prefixes[i] as string, datapath: join(dataRoot, `b${i}`) });
    await withScratchDatabase(label, async (url) => {
      const queuePrefix = `vmops-bench-${label}-${process.pid}`;
      const env = {
        ...process.env, MYSQL_URL: url, VMOODLE_DATA_DIR: dataRoot, VMOODLE_MASTER_WWWROOT: 'https://master.example.org',
        VMOODLE_QUEUE_PREFIX: queuePrefix, VMOODLE_WORKER_CONCURRENCY: String(PER_SERVER), VMOODLE_DB_SERVER_CAP: String(PER_SERVER),
      };
      const app = new Backend(loadConfig(env));
      const rt = await app.ops();
      const rows = Array.from({ length: TARGETS }, (_, i) => {
        const { db, prefix, datapath } = instance(i);
        mkdirSync(join(datapath, 'cache', 'cachestore_file'), { recursive: true });
        return fieldsToRow({
          ...INSTANCE_DEFAULTS, name: `Bench ${i}`, shortname: `b${i}`, vhostname: `https://b${i}.bench.example.org`,
          vdbhost: `${server.host}:${server.port}`, vdblogin: server.user, vdbpass: server.password ?? '', vdbname: db, vdbprefix: prefix, vdatapath: datapath,
        });
      });
      await app.masterDb.batchInsert(rt.registry.table, rows, 500);
      try {
        await work({ app, rt, server, instance });
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
    const stopFloor = sampleConnections(probe);
    const floorStart = performance.now();
    await mapLimit(Array.from({ length: TARGETS }, (_, i) => i), PER_SERVER, async (i) => {
      const { db, prefix } = instance(i);
      const c = await floorPool.getConnection();
      try {
        await c.beginTransaction();
        const [cur] = await c.query(`SELECT value FROM \`${db}\`.\`${prefix}config\` WHERE name = 'theme' FOR UPDATE`);
        const old = (cur as Array<{ value: string }>)[0]?.value ?? null;
        await c.query(`UPDATE \`${db}\`.\`${prefix}config\` SET value = ? WHERE name = 'theme'`, ['floor']);
        await c.query(`INSERT INTO \`${db}\`.\`${prefix}config_log\` (userid, timemodified, plugin, name, value, oldvalue) VALUES (0, UNIX_TIMESTAMP(), NULL, 'theme', 'floor', ?)`, [old]);
        await c.commit();
      } finally {
        c.release();
      }
    });
    const floorMs = performance.now() - floorStart;
    const floorPeak = await stopFloor();
    await floorPool.end();

    // Let the floor's writes reach the disk so that they do not slow the run measured next.
    await new Promise((r) => setTimeout(r, 3000));
    const planStart = performance.now();
    const plan = await createPlan(rt, { command: 'generic/setconfig', params: { key: 'theme', value: 'classic' }, selector: { tohosts: '*' }, requestedBy: 'bench', via: 'cli' });
    const planMs = performance.now() - planStart;

    const worker = new ExecutorWorker(rt);
    await worker.waitUntilReady();
    const stopSampling = sampleConnections(probe);
    const cpuBefore = process.cpuUsage();
    const start = performance.now();
    await startRun(rt, plan.run.id, 'bench', plan.run.plan_hash);
    await rt.progress.follow(plan.run.id, () => {}, (e) => e.type === 'state' && FINAL_STATES.includes(e.state));
    const runMs = performance.now() - start;
    const cpu = process.cpuUsage(cpuBefore);
    const cpuShare = (cpu.user + cpu.system) / 1000 / runMs;
    const serverPeak = await stopSampling();
    const run = await rt.store.getRun(plan.run.id);
    await worker.close();

    const table = new Table({ head: ['measure', 'value', 'goal', 'met'], style: { head: [], border: [] } });
    table.push(
      ['plan: resolve + preview 1,000 targets', `${planMs.toFixed(0)} ms`, '', ''],
      ['run: submit → last result', `${runMs.toFixed(0)} ms`, '< 2000 ms', runMs < 2000 ? 'yes' : 'NO'],
      ['targets/s', (TARGETS / (runMs / 1000)).toFixed(0), '', ''],
      ['CPU of the worker process during the run', `${(cpuShare * 100).toFixed(0)} % of one core`, '', ''],
      ['run state', `${run.state} ${run.summary}`, 'succeeded', run.state === 'succeeded' ? 'yes' : 'NO'],
      ['peak DB connections (pool / server)', `${rt.moodle.peakConnections} / ${serverPeak}`, `pool ≤ ${PER_SERVER}`, rt.moodle.peakConnections <= PER_SERVER ? 'yes' : 'NO'],
      ['floor: same updates, one mysql2 pool, no queue', `${floorMs.toFixed(0)} ms (server peak ${floorPeak})`, '', ''],
      ['run / floor', `${(runMs / floorMs).toFixed(2)}×`, '≤ 4×', runMs / floorMs <= 4 ? 'yes' : 'NO'],
    );
    console.log(`\nExecutor: generic/setconfig on ${TARGETS.toLocaleString('en')} instances (${DATABASES} databases, one server)\n${table.toString()}`);
    await probe.end();
  });
}
