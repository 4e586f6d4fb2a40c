import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../src/core/config.ts';
import { freePort } from '../../src/core/services/private-server.ts';
import { opsFixture, thinFleet, type OpsFixture } from '../support/fleet.ts';
import { OwnRedis } from '../support/own-redis.ts';
import { testServices } from '../support/services.ts';
import { passTime, waitFor } from '../support/wait.ts';

const BIN = join(PROJECT_ROOT, 'bin', 'vmoodle.js');

/** Redis restarted (with its data, as AOF keeps it) while a command line follows a run. */
describe.runIf(testServices().moodleDump)('a Redis blip under a command line following a run', () => {
  let fx: OpsFixture;
  let redis: OwnRedis;
  let worker: ChildProcess | undefined;

  beforeAll(async () => {
    redis = new OwnRedis(await freePort(), mkdtempSync(join(tmpdir(), 'vmops-blip-')), true);
    await redis.start();
    fx = await opsFixture('blip', undefined, {
      REDIS_URL: redis.url,
      VMOODLE_REDIS_TIMEOUT: '2',
      VMOODLE_WORKER_CONCURRENCY: '1',
    });
    await thinFleet(fx, 4);
    worker = spawn(process.execPath, [BIN, 'worker'], { env: { ...process.env, ...fx.env }, stdio: 'ignore' });
  });
  afterAll(async () => {
    worker?.kill('SIGKILL');
    await redis?.stop();
  });

  it('waits for Redis, says so, and ends with the run', async () => {
    const cli = spawn(
      process.execPath,
      [BIN, 'run', 'sql/sql', '--tohosts', '*', 'sql=SELECT SLEEP(1)', '--yes', '--confirm=4'],
      {
        env: { ...process.env, ...fx.env },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    cli.stdout.on('data', (d) => (stdout += d));
    cli.stderr.on('data', (d) => (stderr += d));
    const code = new Promise((resolve) => cli.on('close', resolve));
    await waitFor(
      () => `the run started (it printed: ${stdout}${stderr})`,
      () => /Run \d+ started/.test(stdout + stderr),
      {
        timeoutMs: 30_000,
      },
    );
    await redis.stop();
    await passTime(4_000, 'Redis stays away longer than the command line waits for one reply');
    await redis.start();
    // Whether a reply of the follower's was cut by the outage (then it says it waits) depends on when Redis went.
    expect(`${await code}\n${stderr}`).toMatch(/^0\n(Redis cannot be reached: waiting for Redis; run 1 goes on\.\n)?$/);
    expect(stdout).toMatch(/Run \d+ succeeded: 4 applied/);
  }, 90_000);
});
