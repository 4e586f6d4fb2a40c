import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/core/config.ts';
import { PROJECT_ROOT } from '../../src/core/config.ts';
import { freePort } from '../../src/core/services/private-server.ts';
import { createPlan } from '../../src/ops/executor/planner.ts';
import { startRun } from '../../src/ops/executor/run-actions.ts';
import { endedRun, opsFixture, registerInstances, thinFleet, type OpsFixture } from '../support/fleet.ts';
import { OwnRedis } from '../support/own-redis.ts';
import { testServices } from '../support/services.ts';
import { waitFor } from '../support/wait.ts';

/** One sample of a scrape, by its name and labels as Prometheus' text format writes them. */
const sample = (text: string, series: string): number | undefined => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

describe('the metrics setting', () => {
  it("refuses the port that receives Slack's requests", () => {
    expect(() => loadConfig({ SLACK_PORT: '3000', VMOODLE_METRICS_PORT: '3000' })).toThrow(
      "VMOODLE_METRICS_PORT: 3000 is the port that receives Slack's requests (SLACK_PORT); give the metrics a port of their own",
    );
  });
});

describe.runIf(testServices().moodleDump)("a worker's metrics", () => {
  let fx: OpsFixture;
  let redis: OwnRedis;
  let worker: ChildProcess;
  let url: string;

  beforeAll(async () => {
    redis = new OwnRedis(await freePort(), mkdtempSync(join(tmpdir(), 'vmops-metrics-')));
    await redis.start();
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    fx = await opsFixture('metrics', undefined, { REDIS_URL: redis.url, VMOODLE_METRICS_PORT: String(port) });
    await thinFleet(fx, 3);
    await registerInstances(fx, [{ shortname: 'gone', database: 'moodle_no_such_database' }]);
    worker = spawn(process.execPath, [join(PROJECT_ROOT, 'bin', 'vmoodle.js'), 'worker'], {
      env: { ...process.env, ...fx.env },
      stdio: 'ignore',
    });
    await waitFor('the metrics listener', () =>
      fetch(`${url}/healthz`).then(
        (r) => r.ok,
        () => false,
      ),
    );
  });
  afterAll(async () => {
    worker?.kill('SIGTERM');
    await redis?.stop();
  });

  it("counts the run's targets by outcome and code, shows the queue empty after it, and names no host", async () => {
    const plan = await createPlan(fx.rt, {
      command: 'generic/setconfig',
      params: { key: 'theme', value: 'watched' },
      selector: { tohosts: ['t1', 't2', 't3', 'gone'] },
      requestedBy: 'tester',
      via: 'cli',
    });
    await startRun(fx.rt, plan.run.id, 'tester', plan.run.plan_hash);
    expect((await endedRun(fx, plan.run.id)).state).toBe('partly_failed');

    const res = await fetch(`${url}/metrics`);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    // The run ends in the master a moment before its own job leaves the queue: the depth returns to 0 just after.
    const depth = (text: string) =>
      ['waiting', 'active', 'delayed'].reduce(
        (n, state) => n + (sample(text, `vmoodle_queue_jobs{node="any",state="${state}"}`) ?? 1),
        0,
      );
    const text = await waitFor('the queue empty in the metrics', async () => {
      const scraped = await (await fetch(`${url}/metrics`)).text();
      return depth(scraped) === 0 ? scraped : undefined;
    });
    expect(sample(text, 'vmoodle_targets_total{outcome="applied",error_code=""}')).toBe(3);
    expect(sample(text, 'vmoodle_targets_total{outcome="failed",error_code="ER_NO_SUCH_TABLE"}')).toBe(1);
    expect(sample(text, 'vmoodle_target_duration_seconds_count{command="generic/setconfig"}')).toBe(4);
    expect(sample(text, 'vmoodle_runs{state="partly_failed"}')).toBe(1);
    expect(sample(text, 'vmoodle_runs{state="running"}')).toBe(0);
    for (const state of ['waiting', 'active', 'delayed'])
      expect(sample(text, `vmoodle_queue_jobs{node="any",state="${state}"}`)).toBe(0);
    expect(sample(text, 'vmoodle_workers{node="any"}')).toBe(1);
    expect(sample(text, 'vmoodle_reachable{service="redis"}')).toBe(1);
    expect(sample(text, 'vmoodle_reachable{service="master"}')).toBe(1);
    for (const host of ['t1', 'gone', 'moodle_no_such_database']) expect(text).not.toContain(`"${host}"`);
    expect(text).not.toMatch(/[{,](run|host|target|shortname|wwwroot)=/);
  });

  it('is ready while it reaches Redis and the master, and says which is away when one is', async () => {
    expect(await fetch(`${url}/readyz`).then((r) => r.status)).toBe(200);
    await redis.stop();
    try {
      const away = await fetch(`${url}/readyz`);
      expect(away.status).toBe(503);
      expect(await away.text()).toMatch(/^not ready: Redis did not answer within 2 s\n$/);
      expect(await fetch(`${url}/healthz`).then((r) => r.status)).toBe(200);
    } finally {
      await redis.start();
    }
    await waitFor('ready again', () => fetch(`${url}/readyz`).then((r) => r.status === 200));
  });
});
