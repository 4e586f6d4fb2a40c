import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { describeError } from '../../core/db/db-errors.ts';
import { serveMetrics, type MetricsListener } from '../../core/metrics-server.ts';
import { RUN_STATES, type TargetStatus } from './run-model.ts';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../../core/config.ts';
import type { Logger } from '../../core/log.ts';
import type { RunStore } from './store.ts';

/** What the metrics are read from: the run services, which own them. */
export interface MetricSources {
  config: Config;
  store: RunStore;
  redis: Redis;
  queueOf(node: string | null): Queue;
}

/** A reachability check that does not answer within this is a server away. */
const PROBE_MS = 2_000;

/** The job states that make a queue's depth: work not yet done. */
const DEPTH_STATES = ['waiting', 'prioritized', 'delayed', 'active', 'waiting-children'] as const;

/**
 * What this process can tell the monitoring of the fleet tool: counters it keeps as targets end, and gauges read
 * from the master and Redis when scraped. No label names a host or a run: labels are states, outcomes, codes,
 * command names and nodes, so a series' count does not grow with the fleet or the history.
 */
export class ExecutorMetrics {
  readonly registry = new Registry();
  private readonly targets: Counter<'outcome' | 'error_code'>;
  private readonly duration: Histogram<'command'>;

  constructor(private readonly rt: MetricSources) {
    const registers = [this.registry];
    this.targets = new Counter({
      name: 'vmoodle_targets_total',
      help: 'Targets ended by the workers of this process, by outcome and, for those that did not succeed, error code',
      labelNames: ['outcome', 'error_code'],
      registers,
    });
    this.duration = new Histogram({
      name: 'vmoodle_target_duration_seconds',
      help: 'Time a worker of this process spent on one target, by command',
      labelNames: ['command'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800],
      registers,
    });
    new Gauge({
      name: 'vmoodle_runs',
      help: "Runs in the master's audit, by state",
      labelNames: ['state'],
      registers,
      collect: async function (this: Gauge<'state'>) {
        const counts = (await rt.store
          .db(rt.store.t.runs)
          .select('state')
          .count({ n: '*' })
          .groupBy('state')) as Array<{
          state: string;
          n: number | string;
        }>;
        const byState = new Map(counts.map((c) => [c.state, Number(c.n)]));
        for (const state of RUN_STATES) this.set({ state }, byState.get(state) ?? 0);
      },
    });
    // The shared queue ('any'), then each node's.
    const queues = () => [null, ...rt.config.nodes.map((n) => n.name)].map((node) => ({ node, label: node ?? 'any' }));
    new Gauge({
      name: 'vmoodle_queue_jobs',
      help: "Jobs not yet done in the installation's queues, by node ('any' for the shared queue) and job state",
      labelNames: ['node', 'state'],
      registers,
      collect: async function (this: Gauge<'node' | 'state'>) {
        for (const { node, label } of queues()) {
          const counts = await rt.queueOf(node).getJobCounts(...DEPTH_STATES);
          for (const state of DEPTH_STATES) this.set({ node: label, state }, counts[state] ?? 0);
        }
      },
    });
    new Gauge({
      name: 'vmoodle_workers',
      help: "Workers connected to the installation's queues, by node ('any': every worker, all serve the shared queue)",
      labelNames: ['node'],
      registers,
      collect: async function (this: Gauge<'node'>) {
        for (const { node, label } of queues()) this.set({ node: label }, await rt.queueOf(node).getWorkersCount());
      },
    });
    const reachability = () => this.reachability();
    new Gauge({
      name: 'vmoodle_reachable',
      help: 'Whether this process reaches Redis and the master database (1) or not (0), checked when scraped',
      labelNames: ['service'],
      registers,
      collect: async function (this: Gauge<'service'>) {
        const { redis, master } = await reachability();
        this.set({ service: 'redis' }, redis === undefined ? 1 : 0);
        this.set({ service: 'master' }, master === undefined ? 1 : 0);
      },
    });
  }

  /** A target ended by a worker of this process. */
  targetEnded(command: string, outcome: TargetStatus, errorCode: string | undefined, durationMs: number | undefined) {
    this.targets.inc({ outcome, error_code: errorCode ?? '' });
    if (durationMs !== undefined) this.duration.observe({ command }, durationMs / 1000);
  }

  /** What this process needs and cannot reach now: Redis, the master database. */
  async unready(): Promise<string[]> {
    const { redis, master } = await this.reachability();
    return [redis, master].filter((problem) => problem !== undefined);
  }

  /** Why Redis and the master cannot be reached now, each undefined when it answers within PROBE_MS. */
  private async reachability(): Promise<{ redis: string | undefined; master: string | undefined }> {
    const probe = async (what: string, server: string, check: () => Promise<unknown>) => {
      let timer: NodeJS.Timeout | undefined;
      try {
        const answered = await Promise.race([
          check().then(() => true),
          new Promise<false>((resolve) => {
            timer = setTimeout(() => resolve(false), PROBE_MS);
          }),
        ]);
        return answered ? undefined : `${what} did not answer within ${PROBE_MS / 1000} s`;
      } catch (err) {
        return `${what} cannot be reached (${describeError(err, server)})`;
      } finally {
        clearTimeout(timer);
      }
    };
    const [redis, master] = await Promise.all([
      probe('Redis', 'Redis', () => this.rt.redis.ping()),
      probe('the master database', 'database', () => this.rt.store.db.raw('SELECT 1')),
    ]);
    return { redis, master };
  }
}

/** Serves this process's metrics when the configuration gives them a port; undefined when it gives none. */
export async function serveExecutorMetrics(rt: {
  config: Config;
  metrics: ExecutorMetrics;
  log: Logger;
}): Promise<MetricsListener | undefined> {
  const { port, host } = rt.config.metrics;
  if (port === undefined) return undefined;
  return serveMetrics({
    registry: rt.metrics.registry,
    port,
    host,
    unready: () => rt.metrics.unready(),
    log: rt.log.child({ component: 'metrics' }),
  });
}
