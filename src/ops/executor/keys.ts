/**
 * The Redis keys the executor keeps beside BullMQ's, all under the same prefix. A run's keys name its master's
 * installation too, since two masters sharing a prefix number their runs alike; locks and server slots are shared,
 * since two masters may reach one instance or one server.
 */
export class ExecutorKeys {
  private readonly runs: string;

  constructor(readonly prefix: string, installation: string) {
    this.runs = `${prefix}:x:i${installation.slice(0, 12)}:run`;
  }

  cancel(runId: number): string {
    return `${this.runs}:${runId}:cancel`;
  }

  failures(runId: number): string {
    return `${this.runs}:${runId}:failures`;
  }

  events(runId: number): string {
    return `${this.runs}:${runId}:events`;
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
