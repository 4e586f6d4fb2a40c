import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { Job } from 'bullmq';
import { errorKind } from '../../core/errors.ts';
import { errorFields } from '../../core/log.ts';
import { findNode, nodeOfDataroot, type NodeConfig } from '../../core/nodes.ts';
import type { Fleet } from '../../registry/fleet.ts';
import type { CommandContext, CommandDef } from '../commands/command.ts';
import type { NodeTaskName, NodeTasks } from '../commands/node-tasks.ts';
import { ContentMover } from '../files/transfer.ts';
import { sitePaths } from '../moodle/code-config.ts';
import { runVmoodleScript } from '../moodle/php.ts';
import type { FleetMember, PhpRunner } from '../moodle/site.ts';
import type { MoodleTarget } from '../moodle/target.ts';
import { workSignal } from '../moodle/work-signal.ts';
import { recordCron } from './cron-log.ts';
import { nodeAlive, waitingMessage } from './node-watch.ts';
import { type ExecutorJobs, NODE_TASK } from './queues.ts';
import type { RunServices } from './run-services.ts';

/** How often a run waiting for a node's task looks at it. */
const NODE_TASK_POLL_MS = 200;

export class NodeTaskError extends errorKind('target') {}

/** A PHP run takes about a second (moodle-facts §1.5), so a free slot is looked for a few times a second. */
export const PHP_SLOT_POLL_MS = 200;

/**
 * What a command is handed to preview, check or apply with: its PHP runs only the wrappers it declared, and within
 * its node's cap: work admitted without a PHP slot (`phpSlotHeld` false) takes one for the length of the run.
 */
export function commandContext(
  rt: RunServices,
  source: MoodleTarget,
  command?: Pick<CommandDef, 'phpScripts'>,
  phpSlotHeld = false,
  fleet?: Fleet,
  step: (message: string) => void = () => undefined,
  run?: CommandContext['run'],
): CommandContext {
  const allowed = command?.phpScripts ?? {};
  const timeoutMs = rt.config.executor.targetTimeout * 1000;
  const php: PhpRunner = async (target, script, options = {}, ownTimeout = timeoutMs) => {
    const run = () =>
      runVmoodleScript(rt.config.nodes, target, script, options, {
        allowed,
        timeoutMs: ownTimeout,
        redact: (text) => rt.secrets.scrub(text),
      });
    const node = nodeOfDataroot(rt.config.nodes, target.dataroot);
    return phpSlotHeld || !node ? run() : withPhpSlot(rt, node, ownTimeout, run);
  };
  const codeRoot = (target: MoodleTarget) => nodeOfDataroot(rt.config.nodes, target.dataroot)?.codeRoot;
  return {
    moodle: rt.moodle,
    source,
    php,
    secrets: rt.secrets,
    mnet: rt.config.mnet,
    cron: rt.config.cron,
    recordCron: (target, run) => recordCron(rt, target, run),
    codeRoot,
    peers: (wwwroots) => hostsByWwwroot(rt, wwwroots, fleet),
    members: () => members(rt, fleet),
    step,
    lifecycle: {
      templates: rt.templates,
      datarootRoot: rt.config.lifecycle.datarootRoot,
      registry: rt.registry,
      provisioning: (server) => rt.provisioning(server),
    },
    run,
    onNode: (node, task, payload) => onNode(rt, node, task, payload, step),
    contents: new ContentMover({
      nodes: rt.config.nodes,
      redis: rt.redis,
      keys: rt.keys,
      runId: run?.id,
      sourcePool: async (site) => (await sitePaths(codeRoot(site), site.dataroot as string)).filedir,
      send: (node, req) => onNode(rt, node, 'files-send', req, step),
    }),
    delivery: {
      nodes: rt.config.nodes,
      lastReport: (node) => rt.deliveryReport(node),
      journal: rt.journal,
    },
  };
}

/** See CommandContext.onNode: a job on the node's queue, looked at until it ends or the work is stopped. */
async function onNode<K extends NodeTaskName>(
  rt: RunServices,
  node: string,
  task: K,
  payload: NodeTasks[K]['payload'],
  step: (message: string) => void,
): Promise<NodeTasks[K]['answer']> {
  findNode(rt.config.nodes, node);
  const queue = rt.queueOf(node);
  const added = await queue.add(
    NODE_TASK,
    { installation: rt.installation, task, payload } satisfies ExecutorJobs[typeof NODE_TASK],
    { attempts: 1, removeOnComplete: { age: 3600 }, removeOnFail: { age: 3600 } },
  );
  const signal = workSignal();
  const patienceMs = rt.config.executor.targetTimeout * 1000;
  let absentSince: number | undefined;
  for (;;) {
    const job = await Job.fromId(queue, added.id as string);
    if (!job) throw new NodeTaskError(`node ${node}: the ${task} job left the queue before it ended`);
    if (job.finishedOn) {
      if (job.failedReason) throw new NodeTaskError(`node ${node}: ${task} failed: ${job.failedReason}`);
      return job.returnvalue as NodeTasks[K]['answer'];
    }
    // As for a target queued for a node: it waits for a worker of the node, told once, for the target timeout at most.
    if (await nodeAlive(rt, node)) {
      absentSince = undefined;
    } else {
      if (absentSince === undefined) step(waitingMessage(node));
      absentSince ??= Date.now();
      if (Date.now() - absentSince > patienceMs && !(await job.isActive())) {
        await job.remove();
        throw new NodeTaskError(
          `no worker of node ${node} took its ${task} within ${patienceMs / 1000} s (start one there: vmoodle worker --node ${node}); the other nodes' work stands`,
        );
      }
    }
    try {
      await delay(NODE_TASK_POLL_MS, undefined, signal ? { signal } : {});
    } catch (err) {
      // Stopped: work not yet taken must not run later, behind the operator's back.
      await job
        .remove()
        .catch((removal) =>
          rt.log.warn({ ...errorFields(removal), node, task }, 'a stopped node task was already running on its node'),
        );
      throw err;
    }
  }
}

async function members(rt: RunServices, given?: Fleet): Promise<FleetMember[]> {
  const fleet = given ?? (await rt.recentFleet());
  const mnet = new Map(fleet.instances.map((i) => [i.id, i.mnet]));
  return [...(fleet.masterHost.wwwroot ? [fleet.masterHost] : []), ...fleet.hosts].map((host) => ({
    target: rt.moodleTarget(fleet, host),
    name: host.name,
    mnet: host.kind === 'master' ? 0 : (mnet.get(host.id) ?? -1),
    enabled: host.enabled,
  }));
}

/** Registry hosts by wwwroot. */
async function hostsByWwwroot(
  rt: RunServices,
  wwwroots: readonly string[],
  given?: Fleet,
): Promise<Map<string, MoodleTarget>> {
  const fleet = given ?? (await rt.recentFleet());
  const found = new Map<string, MoodleTarget>();
  for (const wwwroot of wwwroots) {
    const host = [fleet.masterHost, ...fleet.hosts].find(
      (h) => h.wwwroot.replace(/\/+$/, '').toLowerCase() === wwwroot.replace(/\/+$/, '').toLowerCase(),
    );
    if (host) found.set(wwwroot, rt.moodleTarget(fleet, host));
  }
  return found;
}

/** Runs `work` once one of the node's PHP slots is free, waiting as the executor waits for one; gives it back after. */
async function withPhpSlot<T>(
  rt: RunServices,
  node: NodeConfig,
  timeoutMs: number,
  work: () => Promise<T>,
): Promise<T> {
  const key = rt.keys.phpSlots(node.name);
  const owner = `unadmitted-${randomUUID()}`;
  const signal = workSignal();
  while (!(await rt.gate.takePhpSlot(key, owner, node.maxPhp, timeoutMs + 30_000))) {
    signal?.throwIfAborted();
    await delay(PHP_SLOT_POLL_MS, undefined, signal ? { signal } : {});
  }
  try {
    return await work();
  } finally {
    await rt.gate.releasePhpSlot(key, owner);
  }
}
