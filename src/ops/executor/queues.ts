/** The executor's BullMQ queues, by name: the shared one, one per node, and the prefix they live under. */

export const QUEUE_NAME = 'vmoodle-ops';

/** The job name of work one node's own worker does for a run (see CommandContext.onNode). */
export const NODE_TASK = 'node-task';

/** The queue of the work that must run on one node; its workers serve it besides the shared one. */
export const nodeQueueName = (node: string) => `${QUEUE_NAME}@${node}`;

/** The queue a target's job goes to. */
export const queueNameOf = (node: string | null) => (node ? nodeQueueName(node) : QUEUE_NAME);

/** The queue prefix before installation ids: jobs left under it are reported when a worker starts. */
export const LEGACY_QUEUE_PREFIX = 'vmops';

/** Each master its own queue on a shared Redis, whatever address its database is reached by. */
export const defaultQueuePrefix = (installation: string) => `vmops-${installation.slice(0, 12)}`;
