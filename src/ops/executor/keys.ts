/** The Redis keys the executor keeps beside BullMQ's, all under the same prefix. */
export class ExecutorKeys {
  constructor(readonly prefix: string) {}

  cancel(runId: number): string {
    return `${this.prefix}:x:run:${runId}:cancel`;
  }

  failures(runId: number): string {
    return `${this.prefix}:x:run:${runId}:failures`;
  }

  events(runId: number): string {
    return `${this.prefix}:x:run:${runId}:events`;
  }

  /** One writer at a time per Moodle database (and prefix), whichever run it belongs to. */
  instanceLock(server: string, database: string, prefix: string): string {
    return `${this.prefix}:x:lock:${server}/${database}/${prefix}`;
  }

  /** A sorted set of slot holders, scored by expiry, so a dead worker's slot frees itself. */
  serverSlots(server: string): string {
    return `${this.prefix}:x:slots:${server}`;
  }
}
