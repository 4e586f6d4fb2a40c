import { createHash } from 'node:crypto';
import { readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { parsePhp, phpLiteral, type PhpNode } from './php-values.ts';

/** A cache store of the site's MUC configuration (`$dataroot/muc/config.php`). */
export interface MucStore {
  name: string;
  plugin: string;
  configuration: Record<string, unknown>;
}

/** What the product needs of the site's MUC configuration (moodle-facts §3.3). */
export interface MucConfig {
  siteidentifier: string;
  stores: Record<string, MucStore>;
  modemappings: Array<{ mode: number; store: string; sort: number }>;
  definitionmappings: Array<{ definition: string; store: string; sort: number }>;
}

/** MUC's application mode, the one core/config and core/roledefs are cached in. */
const MODE_APPLICATION = 1;

const md5 = (s: string) => createHash('md5').update(s).digest('hex');
const sha1 = (s: string) => createHash('sha1').update(s).digest('hex');

/**
 * Reads the site's MUC configuration (`$dataroot/muc/config.php`, or where `altcacheconfigpath` puts it) as text,
 * never running it: its `$configuration = array(…)` literal. Undefined when the site has none yet (Moodle writes it at
 * the first cache use).
 */
export async function readMucConfig(path: string): Promise<MucConfig | undefined> {
  let seen: { mtimeMs: number; size: number };
  try {
    seen = await stat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  // Parsed once per version of the file: Moodle rewrites it when its stores or mappings change.
  const known = parsed.get(path);
  if (known && known.mtimeMs === seen.mtimeMs && known.size === seen.size) return known.config;
  const config = parseMucConfig(await readFile(path, 'utf8'));
  if (parsed.size >= PARSED_KEPT) parsed.clear();
  parsed.set(path, { mtimeMs: seen.mtimeMs, size: seen.size, config });
  return config;
}

/** Parsed MUC configurations by path, with the file's version they were read from. */
const parsed = new Map<string, { mtimeMs: number; size: number; config: MucConfig }>();
const PARSED_KEPT = 10_000;

function parseMucConfig(code: string): MucConfig {
  const assignment = parsePhp(code, 'muc/config.php').children?.find((c) => c.kind === 'expressionstatement' && c.expression?.kind === 'assign' && c.expression.left?.name === 'configuration');
  if (!assignment?.expression?.right) throw new Error('muc/config.php has no $configuration');
  const raw = phpLiteral(assignment.expression.right) as Record<string, unknown>;
  const list = <T>(value: unknown) => Object.values((value ?? {}) as Record<string, T>);
  return {
    siteidentifier: String(raw.siteidentifier ?? ''),
    stores: Object.fromEntries(Object.entries((raw.stores ?? {}) as Record<string, Record<string, unknown>>).map(([name, s]) => [name, {
      name, plugin: String(s.plugin), configuration: (s.configuration ?? {}) as Record<string, unknown>,
    }])),
    modemappings: list(raw.modemappings),
    definitionmappings: list(raw.definitionmappings),
  };
}

/** The store an application definition's entries live in: its own mapping, else the application mode's first. */
export function applicationStore(muc: MucConfig, definition: string): MucStore | undefined {
  const bySort = <T extends { sort: number }>(a: T, b: T) => a.sort - b.sort;
  const own = muc.definitionmappings.filter((m) => m.definition === definition).sort(bySort)[0];
  const mode = muc.modemappings.filter((m) => m.mode === MODE_APPLICATION).sort(bySort)[0];
  const name = own?.store ?? mode?.store;
  return name ? muc.stores[name] : undefined;
}

/** An entry's key as MUC hashes it: sha1(P-K) with P = md5("1/<component>/<area>/<siteidentifier>"). */
export function entryKey(muc: MucConfig, component: string, area: string, key: string): string {
  return sha1(`${md5(`${MODE_APPLICATION}/${component}/${area}/${muc.siteidentifier}`)}-${key}`);
}

/** Where a file store keeps an entry: `<store path>/<component>_<area>/<k[0..2]>-cache/<k>.cache`. */
export function fileEntryPath(cachedir: string, store: MucStore, component: string, area: string, hashed: string): string {
  const base = typeof store.configuration.path === 'string' && store.configuration.path ? store.configuration.path : join(cachedir, 'cachestore_file', store.name);
  return join(base, `${component}_${area}`, `${hashed.slice(0, 3)}-cache`, `${hashed}.cache`);
}

/** A Redis store's hash for one definition: `<prefix>` + md5("<mode> <component> <area>"), with no site identifier. */
export const redisHashName = (store: MucStore, component: string, area: string) =>
  `${String(store.configuration.prefix ?? '')}${md5(`${MODE_APPLICATION} ${component} ${area}`)}`;

/** Done, or why a store could not be reached. */
export type Invalidation = 'done' | { unreachable: string };

const unreachable = (store: MucStore, why: string): Invalidation => ({ unreachable: `cache store ${JSON.stringify(store.name)} (${store.plugin}) ${why}` });

/**
 * Invalidates one core/config entry (a plugin's settings, or `core` for mdl_config) where the site caches it, as
 * set_config does: the one file of a file store, the hash field of a Redis store (moodle-facts §3.3). Another kind of
 * store is unreachable from here.
 */
export async function invalidateConfigEntry(muc: MucConfig, cachedir: string, plugin: string, secrets: Secrets): Promise<Invalidation> {
  const store = applicationStore(muc, 'core/config');
  if (!store) return { unreachable: 'the MUC configuration maps no store to core/config' };
  const hashed = entryKey(muc, 'core', 'config', plugin);
  if (store.plugin === 'file') {
    // One unlink: an entry that is not cached is already invalidated.
    await unlink(fileEntryPath(cachedir, store, 'core', 'config', hashed)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
    return 'done';
  }
  if (store.plugin === 'redis') return withStoreRedis(store, secrets, (redis) => redis.hdel(redisHashName(store, 'core', 'config'), hashed));
  return unreachable(store, 'is of a kind only Moodle itself can reach');
}

type Secrets = { add(...values: string[]): void; scrub(text: string): string };

/** Runs `work` on a Redis store's own server (db 0: Moodle's Redis store has no database option). */
async function withStoreRedis(store: MucStore, secrets: Secrets, work: (redis: Redis) => Promise<unknown>): Promise<Invalidation> {
  if (typeof store.configuration.server !== 'string') return unreachable(store, 'names no server');
  const [host, port] = store.configuration.server.split(':');
  const password = typeof store.configuration.password === 'string' && store.configuration.password ? store.configuration.password : undefined;
  if (password) secrets.add(password);
  // Loaded here: most commands never reach a Redis store, and the catalogue loads with every command line.
  const { Redis: RedisClient } = await import('ioredis');
  const redis = new RedisClient({ host, port: port ? Number(port) : 6379, password, lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 5_000, retryStrategy: () => null });
  // A store that cannot be reached is reported by the result ("cache not purged"), with the connection's own error.
  let connectionError: Error | undefined;
  redis.on('error', (err: Error) => void (connectionError = err));
  try {
    await redis.connect();
    await work(redis);
    return 'done';
  } catch (thrown) {
    const err = connectionError ?? thrown;
    const code = (err as NodeJS.ErrnoException).code;
    return unreachable(store, `at ${store.configuration.server} could not be reached: ${code ?? secrets.scrub((err as Error).message)}`);
  } finally {
    redis.disconnect();
  }
}

const globEscape = (text: string) => text.replace(/[*?[\]\\]/g, '\\$&');

/**
 * Purges every Redis store of the site, as a purge does: all its hashes, found under the store's own prefix. A store
 * without a prefix is left alone (its keys cannot be told from another site's) and counts as not purged.
 */
export async function purgeRedisStores(muc: MucConfig, secrets: Secrets): Promise<Invalidation> {
  let result: Invalidation = 'done';
  for (const store of Object.values(muc.stores).filter((s) => s.plugin === 'redis')) {
    const prefix = String(store.configuration.prefix ?? '');
    const done = prefix
      ? await withStoreRedis(store, secrets, async (redis) => {
        let cursor = '0';
        do {
          const [next, keys] = await redis.scan(cursor, 'MATCH', `${globEscape(prefix)}*`, 'COUNT', 500);
          if (keys.length > 0) await redis.del(...keys);
          cursor = next;
        } while (cursor !== '0');
      })
      : unreachable(store, 'has no prefix, so its keys cannot be told from another site\'s');
    if (done !== 'done') result = done;
  }
  return result;
}
