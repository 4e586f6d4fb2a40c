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
