import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Table from 'cli-table3';
import { PROJECT_ROOT } from '../src/core/config.ts';
import { freePort } from '../src/core/services/private-server.ts';
import { createPlan } from '../src/ops/executor/planner.ts';
import type { RunServices } from '../src/ops/executor/run-services.ts';
import { settingFleet, withBenchFleet } from './executor.ts';
import { timedRun } from './support.ts';

const SMALL = 1_000;
const LARGE = 10_000;

/** One sample of a scrape, by its name and labels as Prometheus' text format writes them (0 when absent). */
const sample = (text: string, series: string) =>
  Number(
    text
      .split('\n')
      .find((l) => l.startsWith(`${series} `))
      ?.slice(series.length + 1) ?? 0,
  );
const queueDepth = (text: string) =>
  text
    .split('\n')
    .filter((l) => l.startsWith('vmoodle_queue_jobs{'))
    .reduce((sum, l) => sum + Number(l.split(' ')[1]), 0);

const usedMemory = async (rt: RunServices) =>
  Number(/used_memory:(\d+)/.exec(await rt.redis.info('memory'))?.[1] ?? Number.NaN);

/** The worker process's peak resident memory so far, from the kernel (VmHWM), in MB. */
const peakRssMb = (pid: number) =>
  Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? Number.NaN) / 1024;

interface Measured {
  targets: number;
  runMs: number;
  state: string;
  applied: number;
  counted: number;
  depthDuring: number;
  depthAfter: number;
  redisBytesPerTarget: number;
  peakRss: number;
}

/**
 * A setconfig broadcast to 10,000 thin instances beside one to 1,000 of them, run by one worker process with its
 * metrics on: time per target, the worker's peak memory, what Redis keeps per target once a run ended, and the
 * metrics scraped during and after each run.
 */
export async function benchScale(): Promise<void> {
  const started = performance.now();
  await withBenchFleet(
    'scale',
    async ({ rt, env }) => {
      console.log(
        `(a fleet of ${LARGE.toLocaleString('en')} made in ${((performance.now() - started) / 1000).toFixed(0)} s)`,
      );
      let worker = await startWorker(env);
      try {
        const results: Measured[] = [];
        // A first run over the whole fleet grows every fresh tablespace (the log tables' first pages); the measured
        // runs, like a fleet's runs after its first day, write into tables that have them.
        for (const [round, targets] of [LARGE, SMALL, LARGE].entries()) {
          const plan = await createPlan(rt, {
            command: 'generic/setconfig',
            params: { key: 'theme', value: `scale${round}` },
            selector: {
              tohosts: targets === LARGE ? '*' : Array.from({ length: targets }, (_, i) => `b${i}`),
            },
            requestedBy: 'bench',
            via: 'cli',
          });
          const { scrape } = worker;
          const appliedBefore = sample(await scrape(), 'vmoodle_targets_total{outcome="applied",error_code=""}');
          const redisBefore = await usedMemory(rt);
          let depthDuring = 0;
          let ended = false;
          const scraping = (async () => {
            while (!ended) {
              depthDuring = Math.max(depthDuring, queueDepth(await scrape()));
              await new Promise((r) => setTimeout(r, 500));
            }
          })();
          const runMs = await timedRun(rt, plan.run);
          ended = true;
          await scraping;
          const run = await rt.store.getRun(plan.run.id);
          const after = await scrape();
          const measured = {
            targets,
            runMs,
            state: run.state,
            applied: (await rt.store.countStatuses(plan.run.id)).applied ?? 0,
            counted: sample(after, 'vmoodle_targets_total{outcome="applied",error_code=""}') - appliedBefore,
            depthDuring,
            depthAfter: queueDepth(after),
            redisBytesPerTarget: ((await usedMemory(rt)) - redisBefore) / targets,
            peakRss: peakRssMb(worker.pid),
          };
          if (round > 0) {
            results.push(measured);
            continue;
          }
          // The measured runs get a worker of their own, as a fresh deployment would: its peak is theirs.
          console.log(
            `(a first run over the fleet: ${(runMs / 1000).toFixed(0)} s, ${measured.state}; its worker's peak RSS ${measured.peakRss.toFixed(0)} MB)`,
          );
          await worker.stop();
          worker = await startWorker(env);
        }
        print(results, await serverSettings(rt));
      } finally {
        await worker.stop();
      }
    },
    settingFleet(LARGE),
  );
}

/** A `vmoodle worker` process of the bench fleet, with its metrics on a port of its own, once it serves them. */
async function startWorker(env: Record<string, string | undefined>) {
  const port = await freePort();
  const child = spawn(process.execPath, [join(PROJECT_ROOT, 'bin', 'vmoodle.js'), 'worker'], {
    env: { ...env, VMOODLE_METRICS_PORT: String(port), LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const scrape = () => fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text());
  for (let i = 0; ; i++) {
    if (
      await scrape().then(
        () => true,
        () => false,
      )
    )
      break;
    if (i > 600) throw new Error('the worker never served its metrics');
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    pid: child.pid as number,
    scrape,
    stop: async () => {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    },
  };
}

/** The server's settings that decide how 40,000 small tables are served, shown beside the figures. */
async function serverSettings(rt: RunServices): Promise<string> {
  const rows = (await rt.store.db.raw(
    "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('innodb_buffer_pool_size', 'table_open_cache', 'table_definition_cache', 'innodb_open_files')",
  )) as [Array<{ Variable_name: string; Value: string }>];
  return rows[0].map((r) => `${r.Variable_name}=${r.Value}`).join(', ');
}

function print(results: Measured[], server: string): void {
  const [small, large] = results as [Measured, Measured];
  const perTarget = (m: Measured) => m.runMs / m.targets;
  const ratio = perTarget(large) / perTarget(small);
  const table = new Table({
    head: ['measure', `${SMALL.toLocaleString('en')} targets`, `${LARGE.toLocaleString('en')} targets`, 'goal', 'met'],
    style: { head: [], border: [] },
  });
  const met = (ok: boolean) => (ok ? 'yes' : 'NO');
  table.push(
    ['run state', small.state, large.state, 'succeeded', met(results.every((m) => m.state === 'succeeded'))],
    ['run: submit → last result', `${small.runMs.toFixed(0)} ms`, `${large.runMs.toFixed(0)} ms`, '', ''],
    [
      'time per target',
      `${perTarget(small).toFixed(2)} ms`,
      `${perTarget(large).toFixed(2)} ms (${ratio.toFixed(2)}×)`,
      '≤ 1.2×',
      met(ratio <= 1.2),
    ],
    [
      'worker peak RSS (VmHWM, one worker for both runs)',
      `${small.peakRss.toFixed(0)} MB`,
      `${large.peakRss.toFixed(0)} MB`,
      '< 300 MB',
      met(large.peakRss < 300),
    ],
    [
      'Redis bytes per target after the run (used_memory after − before)',
      small.redisBytesPerTarget.toFixed(0),
      large.redisBytesPerTarget.toFixed(0),
      '< 200 (10,000)',
      met(large.redisBytesPerTarget < 200),
    ],
    [
      '/metrics: applied targets counted / the run’s',
      `${small.counted} / ${small.applied}`,
      `${large.counted} / ${large.applied}`,
      'equal',
      met(results.every((m) => m.counted === m.applied && m.applied === m.targets)),
    ],
    [
      '/metrics: queue depth, peak during → after',
      `${small.depthDuring} → ${small.depthAfter}`,
      `${large.depthDuring} → ${large.depthAfter}`,
      '> 0 → 0',
      met(results.every((m) => m.depthDuring > 0 && m.depthAfter === 0)),
    ],
  );
  console.log(
    `\nScale: generic/setconfig on ${SMALL.toLocaleString('en')} and ${LARGE.toLocaleString('en')} thin instances, one worker process (server: ${server})\n${table.toString()}`,
  );
}
