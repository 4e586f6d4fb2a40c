import Table from 'cli-table3';
import mysql from 'mysql2/promise';
import { randomBytes } from 'node:crypto';
import { Backend } from '../src/verbs/backend.ts';
import { startRun } from '../src/ops/executor/run-actions.ts';
import { FINAL_STATES, type RunRow } from '../src/ops/executor/run-model.ts';
import type { RunServices } from '../src/ops/executor/run-services.ts';
import { DEFAULT_MYSQL_SERVER, loadConfig } from '../src/core/config.ts';
import { parseSettings, serverName } from '../src/core/security-settings.ts';
import { parseMysqlUrl, withDatabase } from '../src/core/db/mysql-url.ts';

/** The server benchmarks use: MYSQL_URL's (its database ignored) or the default one. */
export const benchServer = () => withDatabase(process.env.MYSQL_URL ?? DEFAULT_MYSQL_SERVER, '');

export async function withScratchDatabase<T>(
  label: string,
  work: (url: string, name: string) => Promise<T>,
): Promise<T> {
  const name = `vmops_bench_${label}_${process.pid}`;
  const conn = await mysql.createConnection(parseMysqlUrl(benchServer()));
  await conn.query(`DROP DATABASE IF EXISTS \`${name}\``);
  await conn.query(`CREATE DATABASE \`${name}\` DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
  try {
    return await work(withDatabase(benchServer(), name), name);
  } finally {
    await conn.query(`DROP DATABASE IF EXISTS \`${name}\``);
    await conn.end();
  }
}

export interface Timing {
  runs: number;
  median: number;
  max: number;
}

export async function time(runs: number, fn: () => unknown): Promise<Timing> {
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = process.hrtime.bigint();
    await fn();
    samples.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  samples.sort((a, b) => a - b);
  return { runs, median: samples[Math.floor(runs / 2)] as number, max: samples[runs - 1] as number };
}

export interface Row {
  what: string;
  timing: Timing;
  goalMs?: number;
  note?: string;
}

export function printTable(title: string, rows: Row[]): void {
  const table = new Table({
    head: ['measure', 'runs', 'median ms', 'max ms', 'goal', 'met', 'note'],
    style: { head: [], border: [] },
  });
  for (const r of rows) {
    table.push([
      r.what,
      r.timing.runs,
      r.timing.median.toFixed(2),
      r.timing.max.toFixed(2),
      r.goalMs === undefined ? '' : `< ${r.goalMs} ms`,
      r.goalMs === undefined ? '' : r.timing.median < r.goalMs ? 'yes' : 'NO',
      r.note ?? '',
    ]);
  }
  console.log(`\n${title}\n${table.toString()}`);
}

/** A bench master's backend: a key of its own, and its one database server allowed, as an admin would set them. */
export async function benchBackend(env: Record<string, string | undefined>): Promise<Backend> {
  const app = new Backend(loadConfig({ VMOODLE_SECRET_KEYS: `bench:${randomBytes(32).toString('base64')}`, ...env }));
  const server = serverName(parseMysqlUrl(env.MYSQL_URL ?? DEFAULT_MYSQL_SERVER));
  await (await app.settings()).write(parseSettings({ db_servers: [{ server }] }), 'bench');
  return app;
}

/** Starts a planned run and follows it to its end: the time from submit to the last result, in ms. */
export async function timedRun(rt: RunServices, run: Pick<RunRow, 'id' | 'plan_hash'>): Promise<number> {
  const start = performance.now();
  await startRun(rt, run.id, 'bench', run.plan_hash);
  await rt.progress.follow(
    run.id,
    () => undefined,
    (e) => e.type === 'state' && FINAL_STATES.includes(e.state),
  );
  return performance.now() - start;
}
