import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';

/**
 * The product's Lua scripts, one file each in redis-scripts/ (named `<name>-<number of keys>.lua`, as BullMQ names
 * its own), copied beside the compiled modules by the build. Each is defined once per connection and then called by
 * its SHA; ioredis sends the script again after a Redis restart.
 */
const FILES = {
  vmopsAdmit: 'admit-5.lua',
  vmopsRelease: 'release-3.lua',
  vmopsTakePhp: 'take-php-1.lua',
  vmopsUnlock: 'unlock-1.lua',
  vmopsRenew: 'renew-1.lua',
} as const;

type ScriptName = keyof typeof FILES;
export type RedisScripts = Record<ScriptName, (...args: Array<string | number>) => Promise<unknown>>;

const defined = new WeakSet<Redis>();

/** The scripts as commands of this connection. */
export function redisScripts(redis: Redis): RedisScripts {
  if (!defined.has(redis)) {
    for (const [name, file] of Object.entries(FILES)) {
      const keys = Number(/-(\d+)\.lua$/.exec(file)?.[1]);
      redis.defineCommand(name, {
        numberOfKeys: keys,
        lua: readFileSync(new URL(`./redis-scripts/${file}`, import.meta.url), 'utf8'),
      });
    }
    defined.add(redis);
  }
  return redis as unknown as RedisScripts;
}
