import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { confinementProblem } from '../../core/paths.ts';
import { dirname, join } from 'node:path';
import type { Redis } from 'ioredis';
import { parsePhp, phpLiteral, phpSerialize } from './php-values.ts';
import { TargetError } from './target.ts';

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
  /** The definitions the site's configuration lists (Moodle writes every one), by `component/area`. */
  definitions: Record<string, MucDefinition>;
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
  const assignment = parsePhp(code, 'muc/config.php').children?.find(
    (c) =>
      c.kind === 'expressionstatement' &&
      c.expression?.kind === 'assign' &&
      c.expression.left?.name === 'configuration',
  );
  if (!assignment?.expression?.right) throw new TargetError('muc/config.php has no $configuration');
  const raw = phpLiteral(assignment.expression.right) as Record<string, unknown>;
  const list = <T>(value: unknown) => Object.values((value ?? {}) as Record<string, T>);
  return {
    siteidentifier: String(raw.siteidentifier ?? ''),
    stores: Object.fromEntries(
      Object.entries((raw.stores ?? {}) as Record<string, Record<string, unknown>>).map(([name, s]) => [
        name,
        {
          name,
          plugin: String(s.plugin),
          configuration: (s.configuration ?? {}) as Record<string, unknown>,
        },
      ]),
    ),
    modemappings: list(raw.modemappings),
    definitionmappings: list(raw.definitionmappings),
    definitions: Object.fromEntries(
      Object.entries((raw.definitions ?? {}) as Record<string, Record<string, unknown>>).map(([name, d]) => [
        name,
        {
          mode: Number(d.mode),
          simplekeys: d.simplekeys === true,
          invalidationevents: Object.values((d.invalidationevents ?? {}) as Record<string, unknown>).map(String),
        },
      ]),
    ),
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

/** A Redis store's hash for one definition: `<prefix>` + md5("<mode> <component> <area>"), with no site identifier. */
const redisHashName = (store: MucStore, component: string, area: string) =>
  `${String(store.configuration.prefix ?? '')}${md5(`${MODE_APPLICATION} ${component} ${area}`)}`;

/** Done, or why a store could not be reached. */
export type Invalidation = 'done' | { unreachable: string };

const unreachable = (store: MucStore, why: string): Invalidation => ({
  unreachable: `cache store ${JSON.stringify(store.name)} (${store.plugin}) ${why}`,
});

/**
 * What a write asks of Moodle's application caches, as Moodle's own code does after the same change: some entries of
 * a definition deleted (set_config deletes its plugin's core/config entry, a role change its core/roledefs entry), a
 * whole definition purged (the plugin manager's), or an invalidation event (`purge_by_event`: the application
 * definitions it names purged, and the event recorded in core/eventinvalidation so sessions drop theirs).
 */
export type CacheChange =
  | { definition: string; keys: readonly string[] }
  | { definition: string; purge: true }
  | { event: string };

/** What the product needs of a cache definition (Moodle's lib/db/caches.php, or the site's MUC configuration). */
interface MucDefinition {
  mode: number;
  simplekeys: boolean;
  invalidationevents: readonly string[];
}

/**
 * The core definitions the product's writes touch, from Moodle 4.5's lib/db/caches.php; a site's MUC configuration,
 * which lists every definition with its events, is read first.
 */
const CORE_DEFINITIONS: Readonly<Record<string, MucDefinition>> = {
  'core/config': { mode: MODE_APPLICATION, simplekeys: false, invalidationevents: [] },
  'core/roledefs': { mode: MODE_APPLICATION, simplekeys: true, invalidationevents: [] },
  'core/plugin_manager': { mode: MODE_APPLICATION, simplekeys: true, invalidationevents: [] },
  'core/coursecattree': { mode: MODE_APPLICATION, simplekeys: false, invalidationevents: ['changesincoursecat'] },
  'core/eventinvalidation': { mode: MODE_APPLICATION, simplekeys: false, invalidationevents: [] },
  'core/coursemodinfo': { mode: MODE_APPLICATION, simplekeys: true, invalidationevents: [] },
  'core/course_image': { mode: MODE_APPLICATION, simplekeys: true, invalidationevents: [] },
};

const EVENT_INVALIDATION = 'core/eventinvalidation';

function definitionOf(muc: MucConfig, name: string): MucDefinition {
  return (
    muc.definitions[name] ??
    CORE_DEFINITIONS[name] ?? { mode: MODE_APPLICATION, simplekeys: false, invalidationevents: [] }
  );
}

/** The application definitions an event purges: the site's own list when its configuration has one. */
function definitionsOnEvent(muc: MucConfig, event: string): string[] {
  const all = Object.keys(muc.definitions).length > 0 ? muc.definitions : CORE_DEFINITIONS;
  return Object.entries(all)
    .filter(([, d]) => d.mode === MODE_APPLICATION && d.invalidationevents.includes(event))
    .map(([name]) => name);
}

/**
 * An entry's key as MUC makes it: P = md5("1/<component>/<area>/<siteidentifier>"), then sha1(P-K), or K-P for a
 * definition with simple keys (moodle-facts §3.3).
 */
function storedKey(muc: MucConfig, definition: string, key: string): string {
  const [component, area] = splitDefinition(definition);
  const prefix = md5(`${MODE_APPLICATION}/${component}/${area}/${muc.siteidentifier}`);
  return definitionOf(muc, definition).simplekeys ? `${key}-${prefix}` : sha1(`${prefix}-${key}`);
}

const splitDefinition = (definition: string) => definition.split('/') as [string, string];

/**
 * The token purge_by_event() records: microtime(true) as PHP prints it, then uniqid('', true) (13 hex digits and a
 * random fraction), e.g. `1795499222.8512-6b0524d6cfcfb5.38376012`.
 */
function purgeToken(now = Date.now()): string {
  const seconds = Number((now / 1000).toPrecision(14)).toString();
  const usec = Math.floor((now % 1000) * 1000 + Math.random() * 1000);
  const hex = `${Math.floor(now / 1000)
    .toString(16)
    .padStart(8, '0')}${usec.toString(16).padStart(5, '0')}`;
  return `${seconds}-${hex}${(Math.random() * 10).toFixed(8)}`;
}

/** What one store is asked: entries deleted, definitions purged, entries written. */
interface StoreWork {
  store: MucStore;
  deletes: Array<{ definition: string; key: string }>;
  purges: Set<string>;
  sets: Array<{ definition: string; key: string; value: unknown }>;
}

/**
 * Applies cache changes where the site keeps each definition (its own mapping, else the application store): files
 * of a file store, hashes of a Redis store (moodle-facts §3.3). Another kind of store is unreachable from here.
 */
export async function applyCacheChanges(
  muc: MucConfig,
  cachedir: string,
  changes: readonly CacheChange[],
  secrets: Secrets,
): Promise<Invalidation> {
  const byStore = new Map<string, StoreWork>();
  const work = (definition: string): StoreWork | undefined => {
    const store = applicationStore(muc, definition);
    if (!store) return undefined;
    let found = byStore.get(store.name);
    if (!found) byStore.set(store.name, (found = { store, deletes: [], purges: new Set(), sets: [] }));
    return found;
  };
  for (const change of changes) {
    if ('keys' in change) {
      const w = work(change.definition);
      if (!w) return { unreachable: `the MUC configuration maps no store to ${change.definition}` };
      for (const key of change.keys) w.deletes.push({ definition: change.definition, key });
    } else if ('purge' in change) {
      const w = work(change.definition);
      if (!w) return { unreachable: `the MUC configuration maps no store to ${change.definition}` };
      w.purges.add(change.definition);
    } else {
      for (const definition of definitionsOnEvent(muc, change.event)) work(definition)?.purges.add(definition);
      const w = work(EVENT_INVALIDATION);
      if (!w) return { unreachable: `the MUC configuration maps no store to ${EVENT_INVALIDATION}` };
      w.sets.push({ definition: EVENT_INVALIDATION, key: change.event, value: { purged: purgeToken() } });
    }
  }
  for (const w of byStore.values()) {
    const result =
      w.store.plugin === 'file'
        ? await fileStoreWork(muc, cachedir, w)
        : w.store.plugin === 'redis'
          ? await redisStoreWork(muc, w, secrets)
          : unreachable(w.store, 'is of a kind only Moodle itself can reach');
    if (result !== 'done') return result;
  }
  return 'done';
}

/** A file store's folder for one definition: `<store path>/<component>_<area>`. */
function fileDefinitionDir(cachedir: string, store: MucStore, definition: string): string {
  const base =
    typeof store.configuration.path === 'string' && store.configuration.path
      ? store.configuration.path
      : join(cachedir, 'cachestore_file', store.name);
  return join(base, splitDefinition(definition).join('_'));
}

/** Where a file store keeps an entry: `<definition folder>/<k[0..2]>-cache/<k>.cache`. */
function fileEntry(muc: MucConfig, cachedir: string, store: MucStore, definition: string, key: string): string {
  const stored = storedKey(muc, definition, key);
  return join(fileDefinitionDir(cachedir, store, definition), `${stored.slice(0, 3)}-cache`, `${stored}.cache`);
}

/** The folder a file store's entries must stay in: its own configured path, else the cache folder. */
const storeRoot = (cachedir: string, store: MucStore) =>
  typeof store.configuration.path === 'string' && store.configuration.path ? store.configuration.path : cachedir;

async function fileStoreWork(muc: MucConfig, cachedir: string, w: StoreWork): Promise<Invalidation> {
  const definitions = new Set([...w.deletes, ...w.sets].map((d) => d.definition).concat([...w.purges]));
  for (const definition of definitions) {
    // A link on the way to a definition's folder would lead the deletes elsewhere: nothing is touched through it.
    const problem = await confinementProblem(fileDefinitionDir(cachedir, w.store, definition), {
      root: { path: storeRoot(cachedir, w.store), what: 'its cache store' },
      keep: [],
      rootItself: true,
    });
    if (problem) return { unreachable: `cache not purged: ${problem}` };
  }
  try {
    // One unlink per entry: an entry that is not cached is already invalidated.
    await Promise.all(
      w.deletes
        .filter((d) => !w.purges.has(d.definition))
        .map((d) =>
          unlink(fileEntry(muc, cachedir, w.store, d.definition, d.key)).catch((err: NodeJS.ErrnoException) => {
            if (err.code !== 'ENOENT') throw err;
          }),
        ),
    );
    await Promise.all(
      [...w.purges].map((d) => rm(fileDefinitionDir(cachedir, w.store, d), { recursive: true, force: true })),
    );
  } catch (err) {
    // The write it follows is committed: what could not be invalidated is said, never turned into a failed write.
    return { unreachable: `cache not purged: ${fileProblem(err, 'deleted')}` };
  }
  try {
    for (const set of w.sets) {
      // Written as cachestore_file writes: serialize()d, to a temporary file renamed into place.
      const path = fileEntry(muc, cachedir, w.store, set.definition, set.key);
      await mkdir(dirname(path), { recursive: true });
      const temp = `${path}.${process.pid}.${Date.now()}.tmp`;
      await writeFile(temp, phpSerialize(set.value));
      await rename(temp, path);
    }
  } catch (err) {
    return { unreachable: `cache not purged: ${fileProblem(err, 'written')}` };
  }
  return 'done';
}

/** A cache file the store could not change, and why, in a line (the path is the site's, never a secret). */
function fileProblem(err: unknown, what: 'deleted' | 'written'): string {
  const e = err as NodeJS.ErrnoException;
  return `${e.path ?? 'a cache file'} could not be ${what} (${e.code ?? e.message})`;
}

async function redisStoreWork(muc: MucConfig, w: StoreWork, secrets: Secrets): Promise<Invalidation> {
  const { configuration } = w.store;
  // Entries are written as phpredis writes them with the PHP serializer (1) and no compressor; any other is Moodle's to write.
  if (
    w.sets.length > 0 &&
    (Number(configuration.serializer ?? 1) !== 1 || Number(configuration.compressor ?? 0) !== 0)
  ) {
    return unreachable(w.store, 'stores entries in a serializer or compressor only Moodle itself writes');
  }
  const hash = (definition: string) => redisHashName(w.store, ...splitDefinition(definition));
  return withStoreRedis(w.store, secrets, async (redis) => {
    const batch = redis.multi();
    for (const d of w.deletes)
      if (!w.purges.has(d.definition)) batch.hdel(hash(d.definition), storedKey(muc, d.definition, d.key));
    for (const d of w.purges) batch.del(hash(d), `${hash(d)}_ttl`);
    for (const s of w.sets) batch.hset(hash(s.definition), storedKey(muc, s.definition, s.key), phpSerialize(s.value));
    await batch.exec();
  });
}

type Secrets = { add(...values: string[]): void; scrub(text: string): string };

/** Runs `work` on a Redis store's own server (db 0: Moodle's Redis store has no database option). */
async function withStoreRedis(
  store: MucStore,
  secrets: Secrets,
  work: (redis: Redis) => Promise<unknown>,
): Promise<Invalidation> {
  if (typeof store.configuration.server !== 'string') return unreachable(store, 'names no server');
  const [host, port] = store.configuration.server.split(':');
  const password =
    typeof store.configuration.password === 'string' && store.configuration.password
      ? store.configuration.password
      : undefined;
  if (password) secrets.add(password);
  // Loaded here: most commands never reach a Redis store, and the catalogue loads with every command line.
  const { Redis: RedisClient } = await import('ioredis');
  const redis = new RedisClient({
    host,
    port: port ? Number(port) : 6379,
    password,
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    connectTimeout: 5_000,
    retryStrategy: () => null,
  });
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
    return unreachable(
      store,
      `at ${store.configuration.server} could not be reached: ${code ?? secrets.scrub((err as Error).message)}`,
    );
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
      : unreachable(store, "has no prefix, so its keys cannot be told from another site's");
    if (done !== 'done') result = done;
  }
  return result;
}
