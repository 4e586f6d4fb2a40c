import type { Redis } from 'ioredis';
import type { RedisKeys } from '../../core/redis-keys.ts';
import { redisScripts, type RedisScripts } from '../../core/redis-scripts.ts';

export type Admission = 'go' | 'cancelled' | 'braked' | 'locked' | 'busy';

export interface AdmitRequest {
  runId: number;
  jobId: string;
  lockKey: string;
  slotsKey: string;
  maxFailures: number;
  holdMs: number;
  perServer: number;
  /** The node's PHP slots and how many there are, for work through Moodle's PHP; a cap of 0 takes none. */
  phpSlotsKey: string;
  phpCap: number;
}

/**
 * Whether a target may start now, decided in one Redis round trip (redis-scripts/admit-5.lua): cancelled runs and runs past their failure
 * brake start nothing more; otherwise the instance lock, a slot on its DB server and, for work through Moodle's PHP,
 * a PHP slot on its node are taken together, or none. Lock and slots are owned by the job id, so a job redelivered
 * after its worker died takes them back.
 */
export class Gate {
  private readonly scripts: RedisScripts;

  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
  ) {
    this.scripts = redisScripts(redis);
  }

  async admit(r: AdmitRequest): Promise<Admission> {
    return (await this.scripts.vmopsAdmit(
      this.keys.cancel(r.runId),
      this.keys.failures(r.runId),
      r.lockKey,
      r.slotsKey,
      r.phpSlotsKey,
      r.maxFailures,
      r.jobId,
      r.holdMs,
      Date.now(),
      r.perServer,
      r.phpCap,
    )) as Admission;
  }

  async release(r: Pick<AdmitRequest, 'jobId' | 'lockKey' | 'slotsKey' | 'phpSlotsKey'>): Promise<void> {
    await this.scripts.vmopsRelease(r.lockKey, r.slotsKey, r.phpSlotsKey, r.jobId);
  }

  async takePhpSlot(slotsKey: string, owner: string, cap: number, holdMs: number): Promise<boolean> {
    return (await this.scripts.vmopsTakePhp(slotsKey, owner, holdMs, Date.now(), cap)) === 1;
  }

  async releasePhpSlot(slotsKey: string, owner: string): Promise<void> {
    await this.redis.zrem(slotsKey, owner);
  }

  /** A lock of its own (a host's cron), held until let go or until it expires; false when another holds it. */
  async lock(key: string, owner: string, holdMs: number): Promise<boolean> {
    return (await this.redis.set(key, owner, 'PX', holdMs, 'NX')) === 'OK';
  }

  async unlock(key: string, owner: string): Promise<void> {
    await this.scripts.vmopsUnlock(key, owner);
  }

  async countFailure(runId: number): Promise<void> {
    await this.redis
      .multi()
      .incr(this.keys.failures(runId))
      .expire(this.keys.failures(runId), 7 * 86_400)
      .exec();
  }

  /** A run that ended needs neither its failure count, its cancel mark nor its flows' names: no work of it is admitted any more. */
  async forget(runId: number): Promise<void> {
    await this.redis.del(this.keys.failures(runId), this.keys.cancel(runId), this.keys.flows(runId));
  }

  async cancel(runId: number): Promise<void> {
    await this.redis.set(this.keys.cancel(runId), '1', 'EX', 7 * 86_400);
  }
}
