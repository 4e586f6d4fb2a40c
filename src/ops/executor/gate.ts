import type { Redis } from 'ioredis';
import type { RedisKeys } from '../../core/redis-keys.ts';

/**
 * Whether a target may start now, decided in one Redis round trip: cancelled runs and runs past their failure
 * brake start nothing more; otherwise the instance lock, a slot on its DB server and, for work through Moodle's PHP,
 * a PHP slot on its node are taken together, or none. Lock and slots are owned by the job id, so a job redelivered
 * after its worker died takes them back.
 */
const ADMIT = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 'cancelled' end
local failures = tonumber(redis.call('GET', KEYS[2]) or '0')
if failures > tonumber(ARGV[1]) then return 'braked' end
local holder = redis.call('GET', KEYS[3])
if holder and holder ~= ARGV[2] then return 'locked' end
local now = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
if not redis.call('ZSCORE', KEYS[4], ARGV[2]) and redis.call('ZCARD', KEYS[4]) >= tonumber(ARGV[5]) then return 'busy' end
local php = tonumber(ARGV[6])
if php > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
  if not redis.call('ZSCORE', KEYS[5], ARGV[2]) and redis.call('ZCARD', KEYS[5]) >= php then return 'busy' end
  redis.call('ZADD', KEYS[5], now + tonumber(ARGV[3]), ARGV[2])
end
redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[3])
redis.call('ZADD', KEYS[4], now + tonumber(ARGV[3]), ARGV[2])
return 'go'
`;

const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
`;

/** One PHP slot on a node, for work that was admitted without one (a cache purge a direct write could not do). */
const TAKE_PHP = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[3]))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
redis.call('ZADD', KEYS[1], tonumber(ARGV[3]) + tonumber(ARGV[2]), ARGV[1])
return 1
`;

/** A lock let go of only by its holder. */
const UNLOCK = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

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

/** The gate's scripts, loaded once and called by their SHA (ioredis falls back to sending one again after a Redis restart). */
interface GateScripts {
  vmopsAdmit(...args: Array<string | number>): Promise<Admission>;
  vmopsRelease(...args: Array<string | number>): Promise<number>;
  vmopsTakePhp(...args: Array<string | number>): Promise<number>;
  vmopsUnlock(...args: Array<string | number>): Promise<number>;
}

export class Gate {
  private readonly scripts: GateScripts;

  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
  ) {
    redis.defineCommand('vmopsAdmit', { numberOfKeys: 5, lua: ADMIT });
    redis.defineCommand('vmopsRelease', { numberOfKeys: 3, lua: RELEASE });
    redis.defineCommand('vmopsTakePhp', { numberOfKeys: 1, lua: TAKE_PHP });
    redis.defineCommand('vmopsUnlock', { numberOfKeys: 1, lua: UNLOCK });
    this.scripts = redis as unknown as GateScripts;
  }

  async admit(r: AdmitRequest): Promise<Admission> {
    return this.scripts.vmopsAdmit(this.keys.cancel(r.runId), this.keys.failures(r.runId), r.lockKey, r.slotsKey, r.phpSlotsKey,
      r.maxFailures, r.jobId, r.holdMs, Date.now(), r.perServer, r.phpCap);
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
    await this.redis.multi().incr(this.keys.failures(runId)).expire(this.keys.failures(runId), 7 * 86_400).exec();
  }

  async cancel(runId: number): Promise<void> {
    await this.redis.set(this.keys.cancel(runId), '1', 'EX', 7 * 86_400);
  }
}
