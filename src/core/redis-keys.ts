/**
 * The Redis keys the executor keeps beside BullMQ's, all under the same prefix. A run's keys name its master's
 * installation too, since two masters sharing a prefix number their runs alike; locks and server slots are shared,
 * since two masters may reach one instance or one server.
 */
export class RedisKeys {
  private readonly runs: string;

  constructor(
    readonly prefix: string,
    installation: string,
  ) {
    this.runs = `${prefix}:x:i${installation.slice(0, 12)}:run`;
  }

  cancel(runId: number): string {
    return `${this.runs}:${runId}:cancel`;
  }

  failures(runId: number): string {
    return `${this.runs}:${runId}:failures`;
  }

  /** The names of the flows a run's recoveries added, beside its first: its jobs are under any of them. */
  flows(runId: number): string {
    return `${this.runs}:${runId}:flows`;
  }

  events(runId: number): string {
    return `${this.runs}:${runId}:events`;
  }

  /** When a worker of a node last said it was alive, in ms since the epoch. */
  nodeSeen(node: string): string {
    return `${this.prefix}:x:node:${node}:seen`;
  }

  /** Moodle PHP processes running on a node, a sorted set of holders scored by expiry, like server slots. */
  phpSlots(node: string): string {
    return `${this.prefix}:x:node:${node}:php`;
  }

  /** Held while a delivery step works on a node's code trees: one step at a time per node, whoever asked. */
  deliveryLock(node: string): string {
    return `${this.prefix}:x:node:${node}:delivery:lock`;
  }

  /** What a node said of its delivery state after its last step, for status views that cannot read its files. */
  deliveryState(node: string): string {
    return `${this.prefix}:x:node:${node}:delivery:state`;
  }

  /** One chunk of a file content on its way from a source's node to a target's (see files/transfer.ts). */
  transferChunk(transfer: string, hash: string, index: number): string {
    return `${this.prefix}:x:transfer:${transfer}:${hash}:${index}`;
  }

  /** Held by the worker looking at waiting node work this round, so that one looks, not all. */
  nodeWatch(): string {
    return `${this.runs}:nodewatch`;
  }

  /** One writer at a time per Moodle database (and prefix), whichever run it belongs to. */
  instanceLock(server: string, database: string, prefix: string): string {
    return `${this.prefix}:x:lock:${server}/${database}/${prefix}`;
  }

  /** Held while a host's cron runs, so that no two workers run it at once. */
  cronLock(instanceId: number): string {
    return `${this.runs}:cron:lock:${instanceId}`;
  }

  /** The registry id of the last host a round-robin tick started. */
  cronLastHost(): string {
    return `${this.runs}:cron:lasthost`;
  }

  /** Each host's last cron outcome and when (`outcome time`), by registry id. */
  cronOutcomes(): string {
    return `${this.runs}:cron:outcomes`;
  }

  /**
   * Notices waiting for the chat to post them in each run's thread (command-line decisions, recoveries); the key
   * keeps the name it had when it held break-glass decisions only, so that none waiting is lost on an upgrade.
   */
  runNotices(): string {
    return `${this.runs}:break-glass`;
  }

  /** Alerts waiting for the chat to post them to the ops channel, oldest first. */
  alerts(): string {
    return `${this.runs}:alerts`;
  }

  /** A sorted set of slot holders, scored by expiry, so a dead worker's slot frees itself. */
  serverSlots(server: string): string {
    return `${this.prefix}:x:slots:${server}`;
  }
}
