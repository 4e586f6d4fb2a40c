import { FlowProducer, Queue, type FlowJob } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../../core/config.ts';
import type { Fleet, Host } from '../../registry/fleet.ts';
import type { Registry } from '../../registry/registry.ts';
import type { Logger, SecretValues } from '../../core/log.ts';
import { redisConnection, type RedisRole } from '../../core/redis.ts';
import type { Keyring } from '../../core/keyring.ts';
import { serverName, type SettingsStore } from '../../core/security-settings.ts';
import { TemplateStore } from '../../registry/templates.ts';
import { MoodleAccess } from '../moodle/access.ts';
import { instanceTarget, masterTarget, TargetError, type MoodleTarget } from '../moodle/target.ts';
import { splitDbHost } from '../../registry/instance.ts';
import { parseMysqlUrl } from '../../core/db/mysql-url.ts';
import type { NodeReport } from '../delivery/steps.ts';
import { Journal } from '../delivery/journal.ts';
import type { RunRow, TargetRow } from './run-model.ts';
import { Gate } from './gate.ts';
import {
  defaultQueuePrefix,
  type ExecutorJobs,
  LEGACY_QUEUE_PREFIX,
  QUEUE_NAME,
  queueNameOf,
  sharedQueueName,
} from './queues.ts';
import { RedisKeys } from '../../core/redis-keys.ts';
import { ExecutorMetrics } from './metrics.ts';
import { Progress } from './progress.ts';
import type { RunStore } from './store.ts';

/** How long a registry read serves lookups of MNET peers. */
const FLEET_REUSE_MS = 5_000;

/**
 * BullMQ passes the shared connection's errors on to each queue, and prints them with their stack when nothing
 * listens. The connection logs them already, one line per change of state (see redis.ts), so here they are dropped.
 */
function quiet<T extends Queue | FlowProducer>(emitter: T): T {
  (emitter as unknown as { on(event: 'error', listener: () => void): unknown }).on('error', () => undefined);
  return emitter;
}

/**
 * Everything the planner, the executor and the front ends share in one process: the audit store, pooled access
 * to the fleet's databases, and the queue.
 */
export class RunServices {
  readonly store: RunStore;
  /** The security settings an admin wrote in the master (core/security-settings.ts). */
  readonly settings: SettingsStore;
  readonly moodle: MoodleAccess;
  readonly redis: Redis;
  readonly keys: RedisKeys;
  readonly gate: Gate;
  readonly progress: Progress;
  readonly keyring: Keyring;
  readonly templates: TemplateStore;
  /** The delivery journal: sessions and every step's outcome per node. */
  readonly journal: Journal;
  private readonly queues = new Map<string, Queue>();
  private flowInstance: FlowProducer | undefined;
  private metricsInstance: ExecutorMetrics | undefined;

  readonly config: Config;
  readonly redisUrl: string;
  readonly mysqlUrl: string;
  readonly registry: Registry;
  readonly log: Logger;
  readonly secrets: SecretValues;
  /** This master's installation id: its jobs carry it, and a worker takes no other master's. */
  readonly installation: string;
  /** The queue's Redis key prefix: the configured one, or one derived from the installation id. */
  readonly queuePrefix: string;

  constructor(parts: {
    config: Config;
    redisUrl: string;
    mysqlUrl: string;
    store: RunStore;
    registry: Registry;
    log: Logger;
    secrets: SecretValues;
    installation: string;
    redisRole: RedisRole;
    settings: SettingsStore;
    keyring: Keyring;
  }) {
    const { config, log } = parts;
    this.config = config;
    this.redisUrl = parts.redisUrl;
    this.mysqlUrl = parts.mysqlUrl;
    this.registry = parts.registry;
    this.log = log;
    this.secrets = parts.secrets;
    this.installation = parts.installation;
    this.queuePrefix = config.executor.queuePrefix ?? defaultQueuePrefix(parts.installation);
    this.store = parts.store;
    this.settings = parts.settings;
    this.moodle = new MoodleAccess({
      perServer: config.executor.perServer,
      connectTimeoutMs: 5_000,
      log: log.child({ component: 'moodle' }),
      allowedServers: async () => (await parts.settings.read()).dbServers,
    });
    this.redis = redisConnection(
      parts.redisUrl,
      parts.redisRole,
      log.child({ component: 'redis' }),
      config.redisTimeoutMs,
    );
    this.keys = new RedisKeys(this.queuePrefix, this.installation);
    this.gate = new Gate(this.redis, this.keys);
    this.progress = new Progress(this.redis, this.keys);
    this.keyring = parts.keyring;
    this.templates = new TemplateStore(config.lifecycle.templatesDir);
    this.journal = new Journal(parts.store.db, parts.store.t);
  }

  /**
   * Job ids carry the installation, so two masters that share a queue prefix (set so on purpose) never take each
   * other's run 1 for their own.
   */
  runJobId(runId: number): string {
    return `i${this.installation.slice(0, 12)}-r${runId}`;
  }

  targetJobId(runId: number, targetId: number): string {
    return `${this.runJobId(runId)}-t${targetId}`;
  }

  /**
   * Jobs still waiting where this version's workers do not look: under the queue prefix used before installation
   * ids, or in the queue name every installation shared before it had its own.
   */
  async legacyJobs(): Promise<Array<{ prefix: string; count: number }>> {
    const places = [LEGACY_QUEUE_PREFIX, this.queuePrefix];
    const found = await Promise.all(
      [...new Set(places)].map(async (prefix) => {
        const legacy = quiet(new Queue(QUEUE_NAME, { connection: this.redis, prefix }));
        try {
          const counts = await legacy.getJobCounts('waiting', 'delayed', 'active', 'prioritized', 'waiting-children');
          return { prefix, count: Object.values(counts).reduce((a, b) => a + b, 0) };
        } finally {
          await legacy.close();
        }
      }),
    );
    return found.filter((f) => f.count > 0);
  }

  /** What a starting worker says of jobs left where it does not look, or nothing. */
  async legacyWarning(): Promise<string | undefined> {
    const left = await this.legacyJobs();
    if (left.length === 0) return undefined;
    const count = left.reduce((n, f) => n + f.count, 0);
    const where = left.map((f) => `'${f.prefix}:${QUEUE_NAME}'`).join(' and ');
    return `${count} job${count === 1 ? '' : 's'} wait in ${where}, where every master queued before each had its own queue (now '${this.queuePrefix}:${sharedQueueName(this.installation)}'): end their runs with vmoodle runs recover <id>, which queues what is left again here`;
  }

  /**
   * A run's work as one BullMQ flow: the run as parent, ending it once every child is done, and one child per target
   * (job data holds only ids), each delayed until its time after the run's start. Job ids are fixed, so a flow added
   * twice adds nothing; `attempt` names a later flow of the same run (a recovery).
   */
  runFlow(
    run: Pick<RunRow, 'id' | 'started_at'>,
    targets: ReadonlyArray<Pick<TargetRow, 'id' | 'node' | 'delay_ms'>>,
    attempt?: string,
  ): FlowJob {
    const runId = run.id;
    const started = run.started_at ?? Date.now();
    const suffix = attempt ? `-${attempt}` : '';
    // A job ends once its result is durable in the master: Redis keeps only the newest few, for debugging, so its
    // memory stays flat however many runs have ended.
    const count = this.config.executor.keptJobs;
    const kept = { removeOnComplete: { count }, removeOnFail: { count, age: 7 * 86_400 } };
    return {
      name: 'run',
      queueName: sharedQueueName(this.installation),
      data: { runId, installation: this.installation } satisfies ExecutorJobs['run'],
      // The run's own job holds an entry per target job it waited for: kept, it would grow with the fleet, and the
      // run's end is in the master.
      opts: { jobId: `${this.runJobId(runId)}${suffix}`, removeOnComplete: true, removeOnFail: kept.removeOnFail },
      children: targets.map((target) => ({
        name: 'target',
        queueName: queueNameOf(this.installation, target.node),
        data: { runId, targetId: target.id, installation: this.installation } satisfies ExecutorJobs['target'],
        opts: {
          jobId: `${this.targetJobId(runId, target.id)}${suffix}`,
          attempts: this.config.executor.attempts,
          backoff: { type: 'exponential', delay: 500 },
          ignoreDependencyOnFailure: true,
          ...(target.delay_ms > 0 ? { delay: Math.max(0, started + target.delay_ms - Date.now()) } : {}),
          ...kept,
        },
      })),
    };
  }

  get queue(): Queue {
    return this.queueOf(null);
  }

  /** The shared queue, or a node's. */
  queueOf(node: string | null): Queue {
    const name = queueNameOf(this.installation, node);
    let queue = this.queues.get(name);
    if (!queue)
      this.queues.set(name, (queue = quiet(new Queue(name, { connection: this.redis, prefix: this.queuePrefix }))));
    return queue;
  }

  /** What a node said of its delivery state after its last step, or when its worker started; undefined if never. */
  async deliveryReport(node: string): Promise<NodeReport | undefined> {
    const text = await this.redis.get(this.keys.deliveryState(node));
    return text ? (JSON.parse(text) as NodeReport) : undefined;
  }

  private fleetRead: { at: number; fleet: Promise<Fleet> } | undefined;

  /** The registry as read at most a few seconds ago, where no caller had it at hand (a plan's previews share one read). */
  recentFleet(): Promise<Fleet> {
    if (!this.fleetRead || Date.now() - this.fleetRead.at > FLEET_REUSE_MS)
      this.fleetRead = { at: Date.now(), fleet: this.registry.loadFleet() };
    return this.fleetRead.fleet;
  }

  /** What this process tells the monitoring (ops/executor/metrics.ts). */
  get metrics(): ExecutorMetrics {
    this.metricsInstance ??= new ExecutorMetrics(this);
    return this.metricsInstance;
  }

  get flows(): FlowProducer {
    this.flowInstance ??= quiet(new FlowProducer({ connection: this.redis, prefix: this.queuePrefix }));
    return this.flowInstance;
  }

  /** What a starting worker says of registry servers no admin allowed: their instances cannot be reached. */
  async serverWarning(): Promise<string | undefined> {
    const allowed = new Set(((await this.settings.read()).dbServers ?? []).map((r) => r.server));
    const used = [...new Set((await this.registry.loadAll()).map((i) => serverName(splitDbHost(i.vdbhost))))]
      .filter((s) => !allowed.has(s))
      .sort();
    if (used.length === 0) return undefined;
    return `the registry's instances on ${used.join(', ')} cannot be reached: ${used.length === 1 ? 'it is' : 'they are'} not among the allowed database servers (vmoodle settings propose, then vmoodle settings import; docs/security.md)`;
  }

  /**
   * The account that makes instance logins on a server: the one an admin sealed in the settings for it, else the
   * master's own login on the master's server.
   */
  async provisioning(
    server: Pick<MoodleTarget['db'], 'host' | 'port'>,
  ): Promise<Pick<MoodleTarget['db'], 'user' | 'password'> | undefined> {
    const rule = (await this.settings.read()).dbServers?.find((r) => r.server === serverName(server));
    if (rule?.provisioning) {
      const password = this.keyring.open(rule.provisioning.password);
      this.secrets.add(password);
      return { user: rule.provisioning.login, password };
    }
    const master = parseMysqlUrl(this.mysqlUrl);
    return serverName(master) === serverName(server) ? { user: master.user, password: master.password } : undefined;
  }

  /** How to reach a host's database and dataroot, from the registry as loaded. */
  moodleTarget(fleet: Fleet, host: Host): MoodleTarget {
    if (host.kind === 'master') return masterTarget(host, this.config, this.mysqlUrl);
    const instance = fleet.instances.find((i) => i.id === host.id);
    if (!instance) throw new TargetError(`instance ${host.shortname} is no longer in the registry`);
    this.secrets.add(instance.vdbpass);
    return instanceTarget(host, instance);
  }

  async close(): Promise<void> {
    await this.flowInstance?.close();
    await Promise.all([...this.queues.values()].map((q) => q.close()));
    await this.moodle.close();
    this.redis.disconnect();
  }
}
