import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { FlowProducer, Job, Queue, type FlowJob } from 'bullmq';
import { Redis } from 'ioredis';
import type { Config } from '../../config.ts';
import type { Fleet, Host } from '../../registry/fleet.ts';
import type { Registry } from '../../registry/registry.ts';
import { errorFields, type Logger, type SecretValues } from '../../log.ts';
import { redisConnection, type RedisRole } from './redis.ts';
import type { Keyring } from '../keyring.ts';
import { serverName, type SettingsStore } from '../../settings.ts';
import { TemplateStore } from '../../registry/templates.ts';
import { MoodleAccess } from '../moodle/access.ts';
import { instanceTarget, masterTarget, TargetError, type MoodleTarget } from '../moodle/target.ts';
import { splitDbHost } from '../../registry/instance.ts';
import { parseMysqlUrl } from '../../db/mysql-url.ts';
import { runVmoodleScript } from '../moodle/php.ts';
import { findNode, nodeOfDataroot, type NodeConfig } from '../nodes.ts';
import type { NodeTaskName, NodeTasks } from '../node-tasks.ts';
import { ContentMover } from '../files/transfer.ts';
import { sitePaths } from '../moodle/code-config.ts';
import type { NodeReport } from '../delivery/steps.ts';
import { Journal } from '../delivery/journal.ts';
import { nodeAlive, waitingMessage } from './node-watch.ts';
import { errorKind } from '../../errors.ts';
import { workSignal } from '../moodle/work-signal.ts';
import type { CommandContext, CommandDef, FleetMember, PhpRunner } from '../command.ts';
import type { RunRow, TargetRow } from './run-model.ts';
import { Gate } from './gate.ts';
import { recordCron } from './vcron.ts';
import { ExecutorKeys } from './keys.ts';
import { Progress } from './progress.ts';
import { RunStore } from './store.ts';

export const QUEUE_NAME = 'vmoodle-ops';

/** The job name of work one node's own worker does for a run (see CommandContext.onNode). */
export const NODE_TASK = 'node-task';

/** How often a run waiting for a node's task looks at it. */
const NODE_TASK_POLL_MS = 200;

export class NodeTaskError extends errorKind('target') {}

/** A PHP run takes about a second (moodle-facts §1.5), so a free slot is looked for a few times a second. */
export const PHP_SLOT_POLL_MS = 200;

/** How long a registry read serves lookups of MNET peers. */
const FLEET_REUSE_MS = 5_000;

/** The queue of the work that must run on one node; its workers serve it besides the shared one. */
export const nodeQueueName = (node: string) => `${QUEUE_NAME}@${node}`;

/** The queue a target's job goes to. */
export const queueNameOf = (node: string | null) => (node ? nodeQueueName(node) : QUEUE_NAME);

/** The queue prefix before installation ids: jobs left under it are reported when a worker starts. */
export const LEGACY_QUEUE_PREFIX = 'vmops';

/** Each master its own queue on a shared Redis, whatever address its database is reached by. */
export const defaultQueuePrefix = (installation: string) => `vmops-${installation.slice(0, 12)}`;

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
  /** The security settings an admin wrote in the master (settings.ts). */
  readonly settings: SettingsStore;
  readonly moodle: MoodleAccess;
  readonly redis: Redis;
  readonly keys: ExecutorKeys;
  readonly gate: Gate;
  readonly progress: Progress;
  readonly keyring: Keyring;
  readonly templates: TemplateStore;
  /** The delivery journal: sessions and every step's outcome per node. */
  readonly journal: Journal;
  private readonly queues = new Map<string, Queue>();
  private flowInstance: FlowProducer | undefined;

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
    config: Config; redisUrl: string; mysqlUrl: string; store: RunStore; registry: Registry; log: Logger; secrets: SecretValues;
    installation: string; redisRole: RedisRole; settings: SettingsStore; keyring: Keyring;
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
      perServer: config.executor.perServer, connectTimeoutMs: 5_000, log: log.child({ component: 'moodle' }),
      allowedServers: async () => (await parts.settings.read()).dbServers,
    });
    this.redis = redisConnection(parts.redisUrl, parts.redisRole, log.child({ component: 'redis' }), config.redisTimeoutMs);
    this.keys = new ExecutorKeys(this.queuePrefix, this.installation);
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

  /** Jobs still waiting under the queue prefix used before installation ids, which this version's workers do not serve. */
  async legacyJobs(): Promise<number> {
    if (this.queuePrefix === LEGACY_QUEUE_PREFIX) return 0;
    const legacy = quiet(new Queue(QUEUE_NAME, { connection: this.redis, prefix: LEGACY_QUEUE_PREFIX }));
    try {
      const counts = await legacy.getJobCounts('waiting', 'delayed', 'active', 'prioritized', 'waiting-children');
      return Object.values(counts).reduce((a, b) => a + b, 0);
    } finally {
      await legacy.close();
    }
  }

  /** What a starting worker says of jobs left under the old prefix, or nothing. */
  async legacyWarning(): Promise<string | undefined> {
    const count = await this.legacyJobs();
    if (count === 0) return undefined;
    return `${count} job${count === 1 ? '' : 's'} wait under the queue prefix '${LEGACY_QUEUE_PREFIX}', used before each master had its own (now '${this.queuePrefix}'): finish them with VMOODLE_QUEUE_PREFIX=${LEGACY_QUEUE_PREFIX} vmoodle worker, or end their runs with vmoodle runs recover <id>`;
  }

  /**
   * A run's work as one BullMQ flow: the run as parent, ending it once every child is done, and one child per target
   * (job data holds only ids), each delayed until its time after the run's start. Job ids are fixed, so a flow added
   * twice adds nothing; `attempt` names a later flow of the same run (a recovery).
   */
  runFlow(run: Pick<RunRow, 'id' | 'started_at'>, targets: ReadonlyArray<Pick<TargetRow, 'id' | 'node' | 'delay_ms'>>, attempt?: string): FlowJob {
    const runId = run.id;
    const started = run.started_at ?? Date.now();
    const suffix = attempt ? `-${attempt}` : '';
    const kept = { removeOnComplete: { age: 86_400 }, removeOnFail: { age: 7 * 86_400 } };
    return {
      name: 'run',
      queueName: QUEUE_NAME,
      data: { runId, installation: this.installation },
      opts: { jobId: `${this.runJobId(runId)}${suffix}`, ...kept },
      children: targets.map((target) => ({
        name: 'target',
        queueName: queueNameOf(target.node),
        data: { runId, targetId: target.id, installation: this.installation },
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
    const name = queueNameOf(node);
    let queue = this.queues.get(name);
    if (!queue) this.queues.set(name, (queue = quiet(new Queue(name, { connection: this.redis, prefix: this.queuePrefix }))));
    return queue;
  }

  /**
   * What a command is handed to preview, check or apply with: its PHP runs only the wrappers it declared, and within
   * its node's cap: work admitted without a PHP slot (`phpSlotHeld` false) takes one for the length of the run.
   */
  commandContext(source: MoodleTarget, command?: Pick<CommandDef, 'phpScripts'>, phpSlotHeld = false, fleet?: Fleet, step: (message: string) => void = () => undefined, run?: CommandContext['run']): CommandContext {
    const allowed = command?.phpScripts ?? {};
    const timeoutMs = this.config.executor.targetTimeout * 1000;
    const php: PhpRunner = async (target, script, options = {}, ownTimeout = timeoutMs) => {
      const run = () => runVmoodleScript(this.config.nodes, target, script, options, { allowed, timeoutMs: ownTimeout, redact: (text) => this.secrets.scrub(text) });
      const node = nodeOfDataroot(this.config.nodes, target.dataroot);
      return phpSlotHeld || !node ? run() : this.withPhpSlot(node, ownTimeout, run);
    };
    const codeRoot = (target: MoodleTarget) => nodeOfDataroot(this.config.nodes, target.dataroot)?.codeRoot;
    return {
      moodle: this.moodle, source, php, secrets: this.secrets, mnet: this.config.mnet, cron: this.config.cron,
      recordCron: (target, run) => recordCron(this, target, run),
      codeRoot,
      peers: (wwwroots) => this.hostsByWwwroot(wwwroots, fleet),
      members: () => this.members(fleet),
      step,
      lifecycle: { templates: this.templates, datarootRoot: this.config.lifecycle.datarootRoot, registry: this.registry, provisioning: (server) => this.provisioning(server) },
      run,
      onNode: (node, task, payload) => this.onNode(node, task, payload, step),
      contents: new ContentMover({
        nodes: this.config.nodes,
        redis: this.redis,
        keys: this.keys,
        runId: run?.id,
        sourcePool: async (site) => (await sitePaths(codeRoot(site), site.dataroot as string)).filedir,
        send: (node, req) => this.onNode(node, 'files-send', req, step),
      }),
      delivery: {
        nodes: this.config.nodes,
        lastReport: (node) => this.deliveryReport(node),
        journal: this.journal,
      },
    };
  }

  /** What a node said of its delivery state after its last step, or when its worker started; undefined if never. */
  async deliveryReport(node: string): Promise<NodeReport | undefined> {
    const text = await this.redis.get(this.keys.deliveryState(node));
    return text ? (JSON.parse(text) as NodeReport) : undefined;
  }

  /** See CommandContext.onNode: a job on the node's queue, looked at until it ends or the work is stopped. */
  private async onNode<K extends NodeTaskName>(node: string, task: K, payload: NodeTasks[K]['payload'], step: (message: string) => void): Promise<NodeTasks[K]['answer']> {
    findNode(this.config.nodes, node);
    const queue = this.queueOf(node);
    const added = await queue.add(NODE_TASK, { installation: this.installation, task, payload }, { attempts: 1, removeOnComplete: { age: 3600 }, removeOnFail: { age: 3600 } });
    const signal = workSignal();
    const patienceMs = this.config.executor.targetTimeout * 1000;
    let absentSince: number | undefined;
    for (;;) {
      const job = await Job.fromId(queue, added.id as string);
      if (!job) throw new NodeTaskError(`node ${node}: the ${task} job left the queue before it ended`);
      if (job.finishedOn) {
        if (job.failedReason) throw new NodeTaskError(`node ${node}: ${task} failed: ${job.failedReason}`);
        return job.returnvalue as NodeTasks[K]['answer'];
      }
      // As for a target queued for a node: it waits for a worker of the node, told once, for the target timeout at most.
      if (await nodeAlive(this, node)) {
        absentSince = undefined;
      } else {
        if (absentSince === undefined) step(waitingMessage(node));
        absentSince ??= Date.now();
        if (Date.now() - absentSince > patienceMs && !(await job.isActive())) {
          await job.remove();
          throw new NodeTaskError(`no worker of node ${node} took its ${task} within ${patienceMs / 1000} s (start one there: vmoodle worker --node ${node}); the other nodes' work stands`);
        }
      }
      try {
        await delay(NODE_TASK_POLL_MS, undefined, signal ? { signal } : {});
      } catch (err) {
        // Stopped: work not yet taken must not run later, behind the operator's back.
        await job.remove().catch((removal) => this.log.warn({ ...errorFields(removal), node, task }, 'a stopped node task was already running on its node'));
        throw err;
      }
    }
  }

  private fleetRead: { at: number; fleet: Promise<Fleet> } | undefined;

  /** The registry as read at most a few seconds ago, where no caller had it at hand (a plan's previews share one read). */
  private recentFleet(): Promise<Fleet> {
    if (!this.fleetRead || Date.now() - this.fleetRead.at > FLEET_REUSE_MS) this.fleetRead = { at: Date.now(), fleet: this.registry.loadFleet() };
    return this.fleetRead.fleet;
  }

  private async members(given?: Fleet): Promise<FleetMember[]> {
    const fleet = given ?? (await this.recentFleet());
    const mnet = new Map(fleet.instances.map((i) => [i.id, i.mnet]));
    return [...(fleet.masterHost.wwwroot ? [fleet.masterHost] : []), ...fleet.hosts].map((host) => ({
      target: this.moodleTarget(fleet, host), name: host.name, mnet: host.kind === 'master' ? 0 : (mnet.get(host.id) ?? -1), enabled: host.enabled,
    }));
  }

  /** Registry hosts by wwwroot. */
  private async hostsByWwwroot(wwwroots: readonly string[], given?: Fleet): Promise<Map<string, MoodleTarget>> {
    const fleet = given ?? (await this.recentFleet());
    const found = new Map<string, MoodleTarget>();
    for (const wwwroot of wwwroots) {
      const host = [fleet.masterHost, ...fleet.hosts].find((h) => h.wwwroot.replace(/\/+$/, '').toLowerCase() === wwwroot.replace(/\/+$/, '').toLowerCase());
      if (host) found.set(wwwroot, this.moodleTarget(fleet, host));
    }
    return found;
  }

  /** Runs `work` once one of the node's PHP slots is free, waiting as the executor waits for one; gives it back after. */
  private async withPhpSlot<T>(node: NodeConfig, timeoutMs: number, work: () => Promise<T>): Promise<T> {
    const key = this.keys.phpSlots(node.name);
    const owner = `unadmitted-${randomUUID()}`;
    const signal = workSignal();
    while (!(await this.gate.takePhpSlot(key, owner, node.maxPhp, timeoutMs + 30_000))) {
      signal?.throwIfAborted();
      await delay(PHP_SLOT_POLL_MS, undefined, signal ? { signal } : {});
    }
    try {
      return await work();
    } finally {
      await this.gate.releasePhpSlot(key, owner);
    }
  }

  get flows(): FlowProducer {
    this.flowInstance ??= quiet(new FlowProducer({ connection: this.redis, prefix: this.queuePrefix }));
    return this.flowInstance;
  }

  /** What a starting worker says of registry servers no admin allowed: their instances cannot be reached. */
  async serverWarning(): Promise<string | undefined> {
    const allowed = new Set(((await this.settings.read()).dbServers ?? []).map((r) => r.server));
    const used = [...new Set((await this.registry.loadAll()).map((i) => serverName(splitDbHost(i.vdbhost))))].filter((s) => !allowed.has(s)).sort();
    if (used.length === 0) return undefined;
    return `the registry's instances on ${used.join(', ')} cannot be reached: ${used.length === 1 ? 'it is' : 'they are'} not among the allowed database servers (vmoodle settings propose, then vmoodle settings import; docs/security.md)`;
  }

  /**
   * The account that makes instance logins on a server: the one an admin sealed in the settings for it, else the
   * master's own login on the master's server.
   */
  async provisioning(server: Pick<MoodleTarget['db'], 'host' | 'port'>): Promise<Pick<MoodleTarget['db'], 'user' | 'password'> | undefined> {
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
