import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Table from 'cli-table3';
import { generateKeyPair } from 'node:crypto';
import { promisify } from 'node:util';
import mysql from 'mysql2/promise';
import { parseMysqlUrl } from '../src/core/db/mysql-url.ts';
import { createPlan } from '../src/ops/executor/planner.ts';
import { startRun } from '../src/ops/executor/run-actions.ts';
import { FINAL_STATES } from '../src/ops/executor/run-model.ts';
import { cronTick } from '../src/ops/schedules/fleet-cron.ts';
import { ExecutorWorker } from '../src/ops/executor/worker.ts';
import { fieldsToRow, INSTANCE_DEFAULTS } from '../src/registry/instance.ts';
import { withBenchFleet } from './executor.ts';
import { benchServer, time, withScratchDatabase, benchBackend } from './support.ts';

const rsa = promisify(generateKeyPair);
const RENEWED = 200;
const PEERS = 4;
const RENEW_GOAL_MS = 60_000;
const TICK_HOSTS = 10_000;
const TICK_GOAL_MS = 1000;

/** What a renewal reads and writes on each instance. */
const MNET_TABLES = ['config', 'config_plugins', 'course', 'user', 'mnet_host'];
const wwwroot = (i: number) => `https://b${i}.bench.example.org`;

/** Instance i and its two neighbours on each side know each other, and it has a key pair of its own to archive. */
function seedPeers(prefix: string): string {
  const i = Number(/^b(\d+)_$/.exec(prefix)?.[1]);
  const peers = [-2, -1, 1, 2].map((d) => (i + d + RENEWED) % RENEWED);
  const row = (n: number) => `(0, '${wwwroot(n)}', '', 'B${n}', 'KEY-${n}', 1790000000, 1, 443, 0, 0, 0, 1, 0)`;
  return `UPDATE \`${prefix}mnet_host\` SET wwwroot = '${wwwroot(i)}', public_key = 'KEY-${i}', public_key_expires = 1790000000 WHERE id = 1;
UPDATE \`${prefix}config\` SET value = 'strict' WHERE name = 'mnet_dispatcher_mode';
INSERT INTO \`${prefix}config_plugins\` (plugin, name, value) VALUES ('mnet', 'openssl', 'KEY-${i}@@@@@@@@PRIVATE-${i}');
INSERT INTO \`${prefix}mnet_host\` (deleted, wwwroot, ip_address, name, public_key, public_key_expires, transport, portno, last_connect_time, last_log_id, force_theme, applicationid, sslverification) VALUES ${peers.map(row).join(', ')};`;
}

/** mnet/renew on 200 instances, each with four peers in the fleet whose copy of its key is replaced. */
async function benchRenewal(table: Table.Table): Promise<void> {
  await withBenchFleet(
    'mnet',
    async ({ rt, server, instance }) => {
      const worker = new ExecutorWorker(rt);
      await worker.waitUntilReady();
      const start = performance.now();
      const plan = await createPlan(rt, {
        command: 'mnet/renew',
        params: {},
        selector: { tohosts: '*' },
        requestedBy: 'bench',
        via: 'cli',
      });
      await startRun(rt, plan.run.id, 'bench', plan.run.plan_hash);
      await rt.progress.follow(
        plan.run.id,
        () => undefined,
        (e) => e.type === 'state' && FINAL_STATES.includes(e.state),
      );
      const ms = performance.now() - start;
      const run = await rt.store.getRun(plan.run.id);
      await worker.close();
      // Every peer's copy must now be its host's new certificate.
      const conn = await mysql.createConnection(server);
      let stale = 0;
      for (let i = 0; i < RENEWED; i++) {
        const { db, prefix } = instance(i);
        const [rows] = await conn.query(
          `SELECT h.wwwroot, h.public_key FROM \`${db}\`.\`${prefix}mnet_host\` h WHERE h.id > 2`,
        );
        for (const peer of rows as Array<{ wwwroot: string; public_key: string }>)
          if (!peer.public_key.startsWith('-----BEGIN CERTIFICATE-----')) stale++;
      }
      await conn.end();
      // The floor: the RSA 2048 key pairs alone, made as the renewal makes them (Node's thread pool).
      const floorStart = performance.now();
      await Promise.all(Array.from({ length: RENEWED }, () => rsa('rsa', { modulusLength: 2048 })));
      const floorMs = performance.now() - floorStart;
      table.push(
        [`the floor: ${RENEWED} RSA 2048 key pairs alone`, `${(floorMs / 1000).toFixed(1)} s`, '', ''],
        [
          `mnet/renew on ${RENEWED} instances, ${PEERS} fleet peers each: plan → last result`,
          `${(ms / 1000).toFixed(1)} s (${(ms / RENEWED).toFixed(0)} ms a host)`,
          `< ${RENEW_GOAL_MS / 1000} s`,
          ms < RENEW_GOAL_MS && run.state === 'succeeded' ? 'yes' : `NO (${run.state})`,
        ],
        ['  peer copies left with an old key', String(stale), '0', stale === 0 ? 'yes' : 'NO'],
      );
    },
    { targets: RENEWED, tables: MNET_TABLES, rowsOf: MNET_TABLES, seed: seedPeers },
  );
}

/** One cron tick's choice of hosts among 10,000 registered ones, round robin and lowest gap. */
async function benchTick(table: Table.Table): Promise<void> {
  const server = parseMysqlUrl(benchServer());
  for (const strategy of ['roundrobin', 'lowestgap'] as const) {
    await withScratchDatabase(`tick${strategy.slice(0, 2)}`, async (url) => {
      const dataDir = mkdtempSync(join(tmpdir(), 'vmops-tick-'));
      const queuePrefix = `vmops-bench-tick-${process.pid}`;
      const app = await benchBackend({
        ...process.env,
        MYSQL_URL: url,
        VMOODLE_DATA_DIR: dataDir,
        VMOODLE_MASTER_WWWROOT: 'https://master.example.org',
        VMOODLE_QUEUE_PREFIX: queuePrefix,
        VMOODLE_CRON_STRATEGY: strategy,
        VMOODLE_CRON_TRIGGER: 'http',
      });
      try {
        const rt = await app.ops();
        await rt.registry.ensureTable();
        const now = Math.floor(Date.now() / 1000);
        // Spread last crons over two hours, as a fleet's are.
        const rows = Array.from({ length: TICK_HOSTS }, (_, i) => ({
          ...fieldsToRow({
            ...INSTANCE_DEFAULTS,
            name: `Tick ${i}`,
            shortname: `k${i}`,
            vhostname: `https://k${i}.bench.example.org`,
            vdbhost: `${server.host}:${server.port}`,
            vdblogin: server.user,
            vdbpass: '',
            vdbname: 'moodle',
            vdbprefix: `k${i}_`,
            vdatapath: `/srv/moodledata/k${i}`,
          }),
          lastcron: now - ((i * 7919) % 7200),
        }));
        await app.masterDb.batchInsert(rt.registry.table, rows, 1000);
        const timing = await time(7, () => cronTick(rt));
        table.push([
          `one ${strategy} tick among ${TICK_HOSTS.toLocaleString('en')} hosts (16 queued)`,
          `${timing.median.toFixed(0)} ms median, ${timing.max.toFixed(0)} ms max`,
          `< ${TICK_GOAL_MS} ms`,
          timing.median < TICK_GOAL_MS ? 'yes' : 'NO',
        ]);
        const keys = await rt.redis.keys(`${queuePrefix}*`);
        for (let i = 0; i < keys.length; i += 500) await rt.redis.del(...keys.slice(i, i + 500));
      } finally {
        await app.close();
        rmSync(dataDir, { recursive: true, force: true });
      }
    });
  }
}

export async function benchMnetAndCron(): Promise<void> {
  const table = new Table({ head: ['measure', 'value', 'goal', 'met'], style: { head: [], border: [] } });
  await benchRenewal(table);
  await benchTick(table);
  console.log(`\nMNET key renewal and the fleet's cron\n${table.toString()}`);
}
