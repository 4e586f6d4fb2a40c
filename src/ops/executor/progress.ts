import type { Redis } from 'ioredis';
import type { RedisKeys } from '../../core/redis-keys.ts';
import type { RunState, TargetStatus } from './run-model.ts';

/** What a front end hears about a run: each target's result as it lands, and state changes. Never a secret. */
export type ProgressEvent =
  | { type: 'target'; targetId: number; shortname: string; status: TargetStatus; message: string | null }
  | { type: 'state'; state: RunState }
  /** Targets queued for a node that no worker serves: they wait (until the target timeout), they have not failed. */
  | { type: 'waiting'; node: string; targets: number; message: string }
  /** Where a long target stands (a dump's tables, a creation's step), before its result. */
  | { type: 'step'; targetId: number; shortname: string; message: string };

/**
 * Events go to a Redis stream per run, so any number of front ends can follow a run from any point, blocking on
 * the stream rather than polling the database.
 */
export class Progress {
  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
  ) {}

  async publish(runId: number, event: ProgressEvent): Promise<void> {
    const key = this.keys.events(runId);
    await this.redis
      .multi()
      .xadd(key, 'MAXLEN', '~', '100000', '*', 'e', JSON.stringify(event))
      .expire(key, 7 * 86_400)
      .exec();
  }

  /**
   * Calls `onEvent` for every event from the start of the run until `until` returns true or the signal aborts.
   * Uses its own connection, since a blocking read holds it.
   */
  async follow(
    runId: number,
    onEvent: (e: ProgressEvent) => void | Promise<void>,
    until: (e: ProgressEvent) => boolean,
    signal?: AbortSignal,
  ): Promise<void> {
    const reader = this.redis.duplicate();
    // Its failures reach the caller through the read that fails; the connection this one copies logs Redis's state.
    reader.on('error', () => undefined);
    let last = '0';
    try {
      while (!signal?.aborted) {
        const reply = (await reader.xread(
          'COUNT',
          500,
          'BLOCK',
          1000,
          'STREAMS',
          this.keys.events(runId),
          last,
        )) as Array<[string, Array<[string, string[]]>]> | null;
        for (const [, entries] of reply ?? []) {
          for (const [id, fields] of entries) {
            last = id;
            const event = JSON.parse(fields[1] as string) as ProgressEvent;
            await onEvent(event);
            if (until(event)) return;
          }
        }
      }
    } finally {
      reader.disconnect();
    }
  }
}
