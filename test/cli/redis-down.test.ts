import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../src/core/config.ts';
import { parseMysqlUrl } from '../../src/core/db/mysql-url.ts';
import { freePort } from '../../src/core/services/private-server.ts';
import { runCli } from '../support/cli.ts';
import { opsFixture, thinFleet, type OpsFixture } from '../support/fleet.ts';
import { testServices } from '../support/services.ts';
import { OwnRedis } from '../support/own-redis.ts';
import { passTime } from '../support/wait.ts';

const BIN = join(PROJECT_ROOT, 'bin/vmoodle.js');
const BOUND_S = 2;

describe.runIf(testServices().moodleDump)('Redis that cannot be reached', () => {
  let fx: OpsFixture;

  beforeAll(async () => {
    fx = await opsFixture('redisdown');
    await thinFleet(fx, 2);
  });

  it.each([
    ['runs list', ['runs', 'list']],
    ['a run', ['run', 'generic/setconfig', '--hosts', 't1', 'key=theme', 'value=classic', '--yes']],
    ['a cancel', ['runs', 'cancel', '1']],
  ])('ends %s with one line and exit 3 within the bound, planning nothing', async (_label, args) => {
    const port = await freePort();
    const started = Date.now();
    const result = spawnSync(process.execPath, [BIN, ...args], {
      env: {
        ...process.env,
        ...fx.env,
        REDIS_URL: `redis://127.0.0.1:${port}`,
        VMOODLE_REDIS_TIMEOUT: String(BOUND_S),
      },
      encoding: 'utf8',
      timeout: 30_000,
    });
    const seconds = (Date.now() - started) / 1000;
    expect(result.status).toBe(3);
    expect(result.stderr).toBe(
      `vmoodle: cannot reach Redis at redis://127.0.0.1:${port} within ${BOUND_S} s (ECONNREFUSED) [unavailable]; check REDIS_URL and that Redis is running; runs already queued wait for it\n`,
    );
    expect(seconds).toBeLessThan(BOUND_S + 5);
    expect(await fx.rt.store.listRuns(5)).toEqual([]);
  });
});

describe.runIf(testServices().moodleDump)('Redis stopped in the middle of a run', () => {
  let fx: OpsFixture;
  let redis: OwnRedis;
  let worker: ChildProcess | undefined;

  beforeAll(async () => {
    redis = new OwnRedis(await freePort(), mkdtempSync(join(tmpdir(), 'vmops-redis-')));
    await redis.start();
    fx = await opsFixture('redisstop', undefined, { REDIS_URL: redis.url, VMOODLE_WORKER_CONCURRENCY: '1' });
    await thinFleet(fx, 6);
  });
  afterAll(async () => {
    worker?.kill('SIGKILL');
    await redis?.stop();
  });

  it('loses the queue with Redis, and recover completes the run with every target written once', async () => {
    const planned = await runCli(
      ['--json', 'run', 'generic/setconfig', '--tohosts', '*', 'key=theme', 'value=survived', '--yes', '--detach'],
      fx.env,
    );
    const runId = JSON.parse(planned.stdout).run as number;
    let workerErr = '';
    worker = spawn(process.execPath, [BIN, 'worker'], {
      env: { ...process.env, ...fx.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    worker.stderr?.on('data', (d) => (workerErr += d));
    await passTime(300, 'Redis goes away while the worker starts, whatever it is doing then');
    await redis.stop();
    await passTime(500, 'Redis stays away a while');
    await redis.start();

    const recovered = await runCli(['runs', 'recover', String(runId)], fx.env);
    expect(recovered.stdout).toMatch(new RegExp(`Run ${runId} (running|succeeded|partly_failed)`));
    const run = await fx.rt.store.getRun(runId);
    expect(['succeeded', 'partly_failed']).toContain(run.state);
    const targets = await fx.rt.store.getTargets(runId);
    const conn = await mysql.createConnection(parseMysqlUrl(testServices().mysqlServer));
    try {
      for (const t of targets.filter((x) => x.status === 'applied')) {
        const [rows] = await conn.query(
          `SELECT COUNT(*) AS n FROM \`${t.db_name}\`.\`${t.db_prefix}config_log\` WHERE name = 'theme' AND value = 'survived'`,
        );
        expect(Number((rows as Array<{ n: number }>)[0]?.n)).toBe(1);
      }
    } finally {
      await conn.end();
    }
    expect(targets.every((t) => ['applied', 'already_applied', 'interrupted'].includes(t.status))).toBe(true);
    // The worker waited for Redis and logged its state changes (to the log file), never a driver's stack trace.
    expect(workerErr).not.toMatch(/\n\s+at |ioredis/);
  });
});
