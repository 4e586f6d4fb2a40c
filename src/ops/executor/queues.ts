import type { Job } from 'bullmq';
import type { NodeTaskName, NodeTasks } from '../commands/node-tasks.ts';

/**
 * The executor's BullMQ queues, by name. Each master's installation has queues of its own, so that two masters
 * sharing a Redis, even under one queue prefix, never take each other's jobs: one shared by its workers, and one per
 * node for the work that must run there.
 */

/** The name every master's queue had before installations had their own; jobs left there are reported at start. */
export const QUEUE_NAME = 'vmoodle-ops';

/** The job name of work one node's own worker does for a run (see CommandContext.onNode). */
export const NODE_TASK = 'node-task';

/** The queue any worker of the installation serves. */
export const sharedQueueName = (installation: string) => `${QUEUE_NAME}-${installation.slice(0, 12)}`;

/** The queue of the work that must run on one node; its workers serve it besides the shared one. */
export const nodeQueueName = (installation: string, node: string) => `${sharedQueueName(installation)}@${node}`;

/** The queue a target's job goes to. */
export const queueNameOf = (installation: string, node: string | null) =>
  node ? nodeQueueName(installation, node) : sharedQueueName(installation);

/** The queue prefix before installation ids: jobs left under it are reported when a worker starts. */
export const LEGACY_QUEUE_PREFIX = 'vmops';

/** Each master its own queue prefix on a shared Redis, whatever address its database is reached by. */
export const defaultQueuePrefix = (installation: string) => `vmops-${installation.slice(0, 12)}`;

/**
 * What each job of an installation's queues carries, by job name: ids only, since parameters are read from the
 * stored plan. Scheduled work (ops/schedules) adds jobs of its own names, carrying the installation and ids too.
 */
export interface ExecutorJobs {
  run: { runId: number; installation: string };
  target: {
    runId: number;
    targetId: number;
    installation: string;
    /** Set by its first passing failure: it is tried again, later each time, until the target's deadline from then. */
    firstFailedAt?: number;
    failures?: number;
  };
  [NODE_TASK]: { installation: string; task: NodeTaskName; payload: NodeTasks[NodeTaskName]['payload'] };
}

export type ExecutorJobName = keyof ExecutorJobs;

/** The data of any job the executor's workers take: one of the above, or a schedule's. */
export type ExecutorJobData = ExecutorJobs[ExecutorJobName] | ScheduledJobData;

export interface ScheduledJobData {
  installation: string;
  instanceId?: number;
}

/** Any job an installation's workers take. */
export type AnyExecutorJob = Job<ExecutorJobData, unknown, string>;

/** Tells a job by its name, typing its data as that name's (BullMQ's generics carry no link between the two). */
export const isJobNamed = <K extends ExecutorJobName>(
  job: AnyExecutorJob,
  name: K,
): job is Job<ExecutorJobs[K], unknown, K> => job.name === name;
