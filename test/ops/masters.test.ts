import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Backend } from '../../src/verbs/backend.ts';
import { loadConfig, PROJECT_ROOT } from '../../src/core/config.ts';
import { LEGACY_QUEUE_PREFIX, QUEUE_NAME } from '../../src/ops/executor/queues.ts';
import { runCli } from '../support/cli.ts';
import { opsFixture, startWorker, thinFleet, type OpsFixture } from '../support/fleet.ts';
import { testServices } from '../support/services.ts';
import { waitFor } from '../support/wait.ts';

/** The same master database reached by another address, or another master: what queue prefix each gets by default. */
async function defaultPrefix(fx: OpsFixture, mysqlUrl: string): Promise<string> {
  const backend = new Backend(loadConfig({ ...fx.env, MYSQL_URL: mysqlUrl, VMOODLE_QUEUE_PREFIX: undefined }));
  try {
    return (await backend.ops()).queuePrefix;
  } finally {
    await backend.close();
  }
}

describe.runIf(testServices().moodleDump)('two masters on one Redis', () => {
  let a: OpsFixture;
  let b: OpsFixture;

  beforeAll(async () => {
    // The same queue prefix set on purpose for both, the hardest case: their run ids are the same numbers.
    const shared = `${testServices().runId}-shared`;
    a = await opsFixture('mastera', undefined, { VMOODLE_QUEUE_PREFIX: shared });
    b = await opsFixture('masterb', undefined, { VMOODLE_QUEUE_PREFIX: shared });
    await thinFleet(a, 3);
    await thinFleet(b, 2);
    await Promise.all([startWorker(a).waitUntilReady(), startWorker(b).waitUntilReady()]);
  });

  it('each completes its own runs through queues of its own, under the shared prefix', async () => {
    expect(a.rt.queue.name).not.toBe(b.rt.queue.name);
    const [ra, rb] = await Promise.all([
      runCli(['--json', 'run', 'generic/setconfig', '--tohosts', '*', 'key=theme', 'value=fromA', '--yes'], a.env),
      runCli(['--json', 'run', 'generic/setconfig', '--tohosts', '*', 'key=theme', 'value=fromB', '--yes'], b.env),
    ]);
    expect(JSON.parse(ra.stdout)).toMatchObject({ run: 1, state: 'succeeded', counts: { applied: 3 } });
    expect(JSON.parse(rb.stdout)).toMatchObject({ run: 1, state: 'succeeded', counts: { applied: 2 } });
    expect(JSON.parse(ra.stdout).targets.map((t: { new: string }) => t.new)).toEqual(['fromA', 'fromA', 'fromA']);
    expect(JSON.parse(rb.stdout).targets.map((t: { new: string }) => t.new)).toEqual(['fromB', 'fromB']);
  });

  it('gives each master a queue prefix of its own by default, the same by any address of its database', async () => {
    const byName = await defaultPrefix(a, a.env.MYSQL_URL as string);
    const byAddress = await defaultPrefix(a, (a.env.MYSQL_URL as string).replace('127.0.0.1', 'localhost'));
    const other = await defaultPrefix(b, b.env.MYSQL_URL as string);
    expect(byName).toMatch(/^vmops-[0-9a-f]{12}$/);
    expect(byAddress).toBe(byName);
    expect(other).not.toBe(byName);
  });
});

describe.runIf(testServices().moodleDump)('jobs left where older versions queued them', () => {
  let fx: OpsFixture;
  let legacy: Queue[];

  beforeAll(async () => {
    fx = await opsFixture('legacy');
    // Under the prefix used before installation ids, and in the queue name every master shared before its own.
    legacy = [LEGACY_QUEUE_PREFIX, fx.rt.queuePrefix].map(
      (prefix) => new Queue(QUEUE_NAME, { connection: fx.rt.redis, prefix }),
    );
    for (const queue of legacy) await queue.add('target', { runId: 7, targetId: 1 }, { jobId: 'r7-t1' });
  });
  afterAll(async () => {
    for (const queue of legacy) {
      await queue.obliterate({ force: true });
      await queue.close();
    }
  });

  it('are reported when a worker starts', async () => {
    const worker = spawn(process.execPath, [join(PROJECT_ROOT, 'bin/vmoodle.js'), 'worker'], {
      env: { ...process.env, ...fx.env },
    });
    let stdout = '';
    let stderr = '';
    const exited = new Promise((resolve) => worker.on('exit', resolve));
    worker.stdout.on('data', (d) => (stdout += d));
    worker.stderr.on('data', (d) => (stderr += d));
    try {
      await waitFor(
        () => `the worker's warning (it printed: ${stdout}${stderr})`,
        () => stdout.includes('Warning:') || worker.exitCode !== null,
        { timeoutMs: 30_000 },
      );
    } finally {
      worker.kill('SIGTERM');
      await exited;
    }
    const prefix = fx.env.VMOODLE_QUEUE_PREFIX;
    expect(stdout).toContain(
      `Warning: 2 jobs wait in 'vmops:vmoodle-ops' and '${prefix}:vmoodle-ops', where every master queued before each had its own queue (now '${prefix}:${fx.rt.queue.name}')`,
    );
    expect(stdout).toContain('vmoodle runs recover <id>');
  });
});
