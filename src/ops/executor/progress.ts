import { setTimeout as delay } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { OpsError } from '../../core/errors.ts';
import { isRedisAway } from '../../core/redis.ts';
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

/** How long a follower waits for Redis to come back before it says it cannot follow. */
const FOLLOW_PATIENCE_MS = 120_000;

/** What a follower does while Redis is away: tell its reader, ask the master whether the run ended, give up after a while. */
export interface FollowWhileAway {
  signal?: AbortSignal;
  /**
   * Whether the run has ended, asked of the master while Redis is away or the stream is quiet; without it, Redis
   * going away ends the follow.
   */
  ended?(): Promise<boolean>;
  onRedisAway?(): void | Promise<void>;
  patienceMs?: number;
}

const ENDED_RUN_EVENTS_SECONDS = 3600;
const ENDED_RUN_EVENTS_KEPT = 100;

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
   * A run that ended keeps its last events an hour, for the followers still reading them (one far behind skips to
   * them; every follower reads the run's end from the master); later ones read the master.
   */
  async ended(runId: number): Promise<void> {
    const key = this.keys.events(runId);
    await this.redis.multi().xtrim(key, 'MAXLEN', ENDED_RUN_EVENTS_KEPT).expire(key, ENDED_RUN_EVENTS_SECONDS).exec();
  }

  /**
   * Calls `onEvent` for every event from the start of the run until `until` returns true or the signal aborts.
   * Uses its own connection, since a blocking read holds it.
   */
  async follow(
    runId: number,
    onEvent: (e: ProgressEvent) => void | Promise<void>,
    until: (e: ProgressEvent) => boolean,
    options: FollowWhileAway = {},
  ): Promise<void> {
    const { signal } = options;
    const reader = this.redis.duplicate();
    // Its failures reach the caller through the read that fails; the connection this one copies logs Redis's state.
    reader.on('error', () => undefined);
    let last = '0';
    let awaySince: number | undefined;
    try {
      while (!signal?.aborted) {
        let reply: Array<[string, Array<[string, string[]]>]> | null;
        try {
          reply = (await reader.xread(
            'COUNT',
            500,
            'BLOCK',
            1000,
            'STREAMS',
            this.keys.events(runId),
            last,
          )) as typeof reply;
        } catch (err) {
          // Redis went away: the run goes on without the follower, which waits for Redis (or for the master to say the
          // run ended) for a bounded time, then says it could not follow.
          if (!isRedisAway(err) || !options.ended) throw err;
          if (awaySince === undefined) await options.onRedisAway?.();
          awaySince ??= Date.now();
          if (await options.ended()) return;
          if (Date.now() - awaySince > (options.patienceMs ?? FOLLOW_PATIENCE_MS))
            throw new OpsError(
              'unavailable',
              `Redis has not answered for ${Math.round((Date.now() - awaySince) / 1000)} s: stopped following run ${runId}, which goes on without it`,
              { hint: `vmoodle runs show ${runId} says where it stands` },
            );
          await delay(1000, undefined, signal ? { signal } : {}).catch((err: unknown) => {
            if (!signal?.aborted) throw err;
          });
          continue;
        }
        awaySince = undefined;
        // A quiet second: a run that ended while its last events were lost (or have expired) is not waited for.
        if (reply === null && (await options.ended?.())) return;
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
