import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Table from 'cli-table3';
import mysql from 'mysql2/promise';
import { loadConfig } from '../src/core/config.ts';
import { parseMysqlUrl } from '../src/core/db/mysql-url.ts';
import { createFromTemplate } from '../src/ops/lifecycle/create.ts';
import { takeSnapshot } from '../src/ops/lifecycle/snapshot.ts';
import { readDump, restoreSql, runSqlIn } from '../src/ops/moodle/dump.ts';
import { benchServer, time, withScratchDatabase, benchBackend } from './support.ts';

const RUNS = 3;
const GOAL_RATIO = 1.5;
const SOURCE = 'http://localhost/moodle-tpl';

/**
 * Creating an instance from a template of the real Moodle dump, next to a plain restore of the same dump measured in
 * the same run: what the copy adds (prefix, wwwroot and block rewrite, identity, dataroot, registry row) over loading.
 */
export async function benchLifecycle(): Promise<void> {
  const config = loadConfig();
  if (!config.moodleDump) {
    console.log('\nInstance lifecycle: skipped, no Moodle dump (VMOODLE_MOODLE_DUMP)');
    return;
  }
  const server = parseMysqlUrl(benchServer());
  const folder = mkdtempSync(join(tmpdir(), 'vmops-bench-lifecycle-'));
  const table = new Table({
    head: ['measure', 'runs', 'median', 'max', 'goal', 'met'],
    style: { head: [], border: [] },
  });
  const conn = await mysql.createConnection(server);
  const drop = (name: string) => conn.query(`DROP DATABASE IF EXISTS \`${name}\``);
  try {
    await withScratchDatabase('lcsource', async (_sourceUrl, sourceDb) => {
      await withScratchDatabase('lcmaster', async (masterUrl) => {
        await runSqlIn(server, sourceDb, restoreSql(await readDump(config.moodleDump as string)));
        const app = await benchBackend({
          ...process.env,
          MYSQL_URL: masterUrl,
          VMOODLE_DATA_DIR: join(folder, 'data'),
          VMOODLE_MASTER_WWWROOT: 'https://master.example.org',
          VMOODLE_DATAROOT_ROOT: join(folder, 'roots'),
          VMOODLE_TEMPLATES_DIR: join(folder, 'templates'),
          VMOODLE_QUEUE_PREFIX: `vmops-bench-lc-${process.pid}`,
        });
        try {
          const rt = await app.ops();
          await rt.registry.ensureTable();
          const sourceRoot = join(folder, 'roots', 'source');
          mkdirSync(join(sourceRoot, 'filedir', 'ab'), { recursive: true });
          writeFileSync(join(sourceRoot, 'filedir', 'ab', 'file'), Buffer.alloc(1_048_576));
          const host = {
            kind: 'instance' as const,
            id: 0,
            shortname: 'source',
            name: 'Source',
            wwwroot: SOURCE,
            enabled: true,
          };
          const snap = await time(1, () =>
            takeSnapshot(
              rt.moodle,
              { host, db: { ...server, database: sourceDb, prefix: 'mdl_' }, dataroot: sourceRoot },
              rt.templates,
              'bench',
              { kind: 'instance' },
            ),
          );
          table.push([
            'snapshot of the dump (494 tables) and a 1 MB dataroot',
            1,
            `${(snap.median / 1000).toFixed(2)} s`,
            '',
            '',
            '',
          ]);

          const dump = rt.templates.paths('bench').dump;
          const scratch = `vmops_bench_lcplain_${process.pid}`;
          const plain = await time(RUNS, async () => {
            await runSqlIn(server, scratch, restoreSql(await readDump(dump)));
            await drop(scratch);
          });
          const database = `vmops_bench_lcnew_${process.pid}`;
          let n = 0;
          const created = await time(RUNS, async () => {
            const dataroot = join(folder, 'roots', `new${++n}`);
            const wwwroot = `https://new${n}.bench.example.org`;
            const target = {
              host: { ...host, shortname: `new${n}`, wwwroot },
              db: { ...server, database, prefix: 'mdl_' },
              dataroot,
            };
            const { instance } = await createFromTemplate(
              {
                access: rt.moodle,
                templates: rt.templates,
                guard: { root: join(folder, 'roots'), keep: [] },
                keyDays: 28,
                register: (f) => rt.registry.add(f),
              },
              'bench',
              {
                target,
                login: { user: 'vmi_benchlogin', password: 'bench' },
                fields: {
                  name: `New ${n}`,
                  shortname: `new${n}`,
                  vhostname: wwwroot,
                  vdbname: database,
                  vdatapath: dataroot,
                  mnet: -1,
                  vdbhost: `${server.host}:${server.port}`,
                  vdblogin: 'vmi_benchlogin',
                  vdbpass: 'bench',
                },
              },
            );
            await drop(database);
            rmSync(dataroot, { recursive: true, force: true });
            await rt.registry.remove(instance.id);
          });
          const fixture = await time(1, async () => {
            await runSqlIn(server, scratch, restoreSql(await readDump(config.moodleDump as string)));
            await drop(scratch);
          });
          const ratio = created.median / plain.median;
          table.push(
            [
              'for scale: plain restore of the dump as mysqldump wrote it',
              1,
              `${(fixture.median / 1000).toFixed(2)} s`,
              '',
              '',
              '',
            ],
            [
              "plain restore of the template's dump",
              RUNS,
              `${(plain.median / 1000).toFixed(2)} s`,
              `${(plain.max / 1000).toFixed(2)} s`,
              '',
              '',
            ],
            [
              'create from the template (database, copy, identity, dataroot, registry row)',
              RUNS,
              `${(created.median / 1000).toFixed(2)} s`,
              `${(created.max / 1000).toFixed(2)} s`,
              `≤ ${GOAL_RATIO}× the restore`,
              ratio <= GOAL_RATIO ? `yes (${ratio.toFixed(2)}×)` : `NO (${ratio.toFixed(2)}×)`,
            ],
          );
        } finally {
          await app.close();
        }
      });
    });
  } finally {
    await conn.end();
    rmSync(folder, { recursive: true, force: true });
  }
  console.log(`\nInstance lifecycle on the real Moodle dump\n${table.toString()}`);
}
