import { Redis } from 'ioredis';
import { redactUrl } from './db/mysql-url.ts';
import { errorFields, type Logger } from './log.ts';
import { OpsError } from './errors.ts';

/** Who holds a connection: a front end waits a bounded time for Redis; a worker waits for it to come back. */
export type RedisRole = 'front' | 'worker';

/**
 * A Redis connection as BullMQ wants it (commands wait for a reconnect rather than fail), with one log line per
 * change of state instead of a stack trace per attempt. A front end's commands give up after `timeoutMs`, so a
 * command line or a chat reply never waits for ever on a Redis that went away.
 */
export function redisConnection(url: string, role: RedisRole, log: Logger, timeoutMs: number): Redis {
  const redis = new Redis(url, {
    maxRetriesPerRequest: null,
    connectTimeout: Math.min(timeoutMs, 10_000),
    retryStrategy: (attempt) => Math.min(100 * 2 ** attempt, 5_000),
    ...(role === 'front' ? { commandTimeout: timeoutMs } : {}),
  });
  let down: string | undefined;
  redis.on('error', (err: NodeJS.ErrnoException) => {
    const code = err.code ?? err.message;
    if (code === down) return;
    down = code;
    log.warn({ ...errorFields(err, 'Redis'), redis: redactUrl(url) }, 'Redis cannot be reached; retrying');
  });
  redis.on('ready', () => {
    if (down === undefined) return;
    down = undefined;
    log.info({ redis: redactUrl(url) }, 'Redis is back');
  });
  return redis;
}

/** Redis going away as a front end's connection reports it: refused, reset, closed, or a command that timed out. */
export function isRedisAway(err: unknown): boolean {
  const e = err as NodeJS.ErrnoException;
  return (
    ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE'].includes(e.code ?? '') ||
    /^(Command timed out|Connection is closed|Stream isn't writeable)/.test(e.message ?? '')
  );
}

/**
 * Checks that Redis answers, on a front end's connection, whose commands give up after `timeoutMs`: a Redis that
 * does not answer is said in one line rather than waited for or shown as a driver's trace.
 */
export async function assertRedisAnswers(redis: Redis, url: string, timeoutMs: number): Promise<void> {
  let lastError: NodeJS.ErrnoException | undefined;
  const remember = (err: NodeJS.ErrnoException) => {
    lastError = err;
  };
  redis.on('error', remember);
  try {
    await redis.ping();
  } catch (err) {
    const reason = lastError?.code ?? (err as Error).message;
    throw new OpsError(
      'unavailable',
      `cannot reach Redis at ${redactUrl(url)} within ${timeoutMs / 1000} s (${reason})`,
      { hint: 'check REDIS_URL and that Redis is running; runs already queued wait for it' },
    );
  } finally {
    redis.off('error', remember);
  }
}
