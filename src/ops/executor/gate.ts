import type { Redis } from 'ioredis';
import type { ExecutorKeys } from './keys.ts';

/**
 * Whether a target may start now, decided in one Redis round trip: cancelled runs and runs past their failure
 * brake start nothing more; otherwise the instance lock and a slot on its DB server are taken together, or neither.
 * Lock and slot are owned by the job id, so a job redelivered after its worker died takes them back.
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
redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[3])
redis.call('ZADD', KEYS[4], now + tonumber(ARGV[3]), ARGV[2])
return 'go'
`;

const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
`;

export type Admission = 'go' | 'cancelled' | 'braked' | 'locked' | 'busy';

export interface AdmitRequest {
  runId: number;
  jobId: string;
  lockKey: string;
  slotsKey: string;
  maxFailures: number;
  holdMs: number;
  perServer: number;
}

export class Gate {
  constructor(
    private readonly redis: Redis,
    private readonly keys: ExecutorKeys,
  ) {}

  async admit(r: AdmitRequest): Promise<Admission> {
    return (await this.redis.eval(ADMIT, 4, this.keys.cancel(r.runId), this.keys.failures(r.runId), r.lockKey, r.slotsKey,
      r.maxFailures, r.jobId, r.holdMs, Date.now(), r.perServer)) as Admission;
  }

  async release(r: Pick<AdmitRequest, 'jobId' | 'lockKey' | 'slotsKey'>): Promise<void> {
    await this.redis.eval(RELEASE, 2, r.lockKey, r.slotsKey, r.jobId);
  }

  async countFailure(runId: number): Promise<void> {
    await this.redis.multi().incr(this.keys.failures(runId)).expire(this.keys.failures(runId), 7 * 86_400).exec();
  }

  async cancel(runId: number): Promise<void> {
    await this.redis.set(this.keys.cancel(runId), '1', 'EX', 7 * 86_400);
  }
}
