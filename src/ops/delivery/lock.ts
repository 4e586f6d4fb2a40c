import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from '../../core/log.ts';
import { errorFields } from '../../core/log.ts';
import { redisScripts } from '../../core/redis-scripts.ts';
import type { NodeLock } from './steps.ts';

/** How long a held lock lives without renewal: a worker that died frees its node after this. */
const LOCK_MS = 60_000;
const RENEW_MS = LOCK_MS / 3;

/**
 * A node's delivery lock in Redis, shared by every worker and front end: held for a step's whole work and renewed
 * while it lasts. The value says who holds it, so that a refused step can say why.
 */
export function redisNodeLock(redis: Redis, keyOf: (node: string) => string, log: Logger): NodeLock {
  const scripts = redisScripts(redis);
  return {
    async take(node, holder) {
      const key = keyOf(node);
      const token = `${randomUUID()} ${new Date().toISOString()} ${holder}`;
      if ((await redis.set(key, token, 'PX', LOCK_MS, 'NX')) !== 'OK') {
        const other = (await redis.get(key)) ?? '';
        const [, since, ...who] = other.split(' ');
        return { busy: other ? `${who.join(' ')} since ${since}` : 'another step is just ending' };
      }
      const renewal = setInterval(() => {
        scripts
          .vmopsRenew(key, token, LOCK_MS)
          .catch((err) => log.warn({ ...errorFields(err), node }, 'could not renew the delivery lock of a node'));
      }, RENEW_MS);
      return {
        async release() {
          clearInterval(renewal);
          await scripts.vmopsUnlock(key, token);
        },
      };
    },
  };
}
