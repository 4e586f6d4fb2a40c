import { stat } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { emptyFolder, isLink } from '../../core/paths.ts';
import type { PoolConnection } from 'mysql2/promise';
import type { MoodleAccess } from './access.ts';
import { MOODLE_TABLES } from './tables.ts';
import type { MoodleTarget } from './target.ts';
import { applyCacheChanges, purgeRedisStores, readMucConfig, type CacheChange, type Invalidation } from './muc.ts';
import { sitePaths, type SitePaths } from './code-config.ts';
import type { PhpScripts } from './php.ts';
import type { MoodleSite } from './site.ts';
import { describeError } from '../../core/db/db-errors.ts';

/**
 * What cache work needs of a command's context: where the site's code tree is (its config.php may move the caches),
 * the secrets list, and Moodle's PHP for the stores only Moodle can reach.
 */
type CacheSite = Pick<MoodleSite, 'codeRoot' | 'secrets' | 'php'>;

/** What a write says of the caches: purged or not, and how, or why not. */
export interface CacheOutcome {
  /** Whether Moodle's caches were invalidated after a write (false when the dataroot or a store is out of reach). */
  cachePurged?: boolean;
  /** How the caches were purged when not directly, or why they were not. */
  cacheNote?: string;
}

/** The VMoodle wrapper a command that writes declares, for the caches it cannot purge itself. */
export const PURGE_THROUGH_MOODLE: PhpScripts = { purge_caches: {} };

/** The config revisions a full purge_caches moves forward (moodle-facts §2.5). */
export const PURGED_REVS = [
  'themerev',
  'jsrev',
  'langrev',
  'templaterev',
  'localcachedirpurged',
  'scheduledtaskreset',
] as const;

async function isDir(path: string | undefined): Promise<boolean> {
  if (!path) return false;
  try {
    return (await stat(path)).isDirectory();
  } catch {
    // biome-ignore lint/plugin: a folder that cannot be read is not one the caches can be purged in
    return false;
  }
}

/** The site's dataroot, cache folders and MUC configuration, or undefined when this node cannot reach the dataroot. */
async function siteDirs(
  site: Pick<CacheSite, 'codeRoot'>,
  target: MoodleTarget,
): Promise<(SitePaths & { dataroot: string }) | undefined> {
  if (!(await isDir(target.dataroot))) return undefined;
  const dataroot = target.dataroot as string;
  return { dataroot, ...(await sitePaths(site.codeRoot(target), dataroot)) };
}

const UNREACHABLE_DATAROOT = 'the dataroot cannot be reached from this worker';

/**
 * Where a cache could not be reached from here, Moodle purges its own through VMoodle's purge_caches wrapper on the
 * site's node (holding one of the node's PHP slots); without a node it stays unpurged, with the reason.
 */
async function purgeThroughMoodle(site: CacheSite, target: MoodleTarget, why: string): Promise<CacheOutcome> {
  if (site.codeRoot(target) === undefined) return { cachePurged: false, cacheNote: why };
  try {
    const run = await site.php(target, 'purge_caches');
    if (run.ok) return { cachePurged: true, cacheNote: `${why}: purged by Moodle's purge_caches on the node instead` };
    return { cachePurged: false, cacheNote: `${why}, and Moodle's purge_caches on the node failed: ${run.message}` };
  } catch (err) {
    return {
      cachePurged: false,
      cacheNote: `${why}, and Moodle's purge_caches on the node could not run: ${describeError(err)}`,
    };
  }
}

async function settle(site: CacheSite, target: MoodleTarget, result: Invalidation): Promise<CacheOutcome> {
  return result === 'done' ? { cachePurged: true } : purgeThroughMoodle(site, target, result.unreachable);
}

/**
 * Empties a cache folder; why not when it could not (a permission, or a folder that is a link, which is neither
 * emptied through nor removed), so that the target is reported "cache not purged" rather than purged.
 */
async function emptyDir(path: string): Promise<Invalidation> {
  try {
    const emptied = await emptyFolder(path);
    return emptied === 'done' ? 'done' : { unreachable: `cache not purged: ${emptied.refused}` };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { unreachable: `the cache folder ${path} could not be emptied (${code ?? (err as Error).message})` };
  }
}

/**
 * Moodle reads config and role definitions through its MUC file cache, which has no invalidation events, so a
 * write made in SQL is invisible until the cache folder (`$dataroot/cache`, or `$CFG->cachedir`) is emptied (moodle-facts §1.6). Returns false when the
 * dataroot is not reachable from this node: the change is made but Moodle will not see it yet.
 */
export async function purgeDataCache(site: CacheSite, target: MoodleTarget): Promise<CacheOutcome> {
  const dirs = await siteDirs(site, target);
  return settle(site, target, dirs ? await emptyDir(dirs.cachedir) : { unreachable: UNREACHABLE_DATAROOT });
}

/**
 * Invalidates what a write changed the way Moodle's own code does after it (see CacheChange), in the stores the
 * site's MUC configuration maps each definition to. A site with no MUC configuration yet has its `cache/` emptied.
 * Where the dataroot or a store cannot be reached from here, Moodle purges through its PHP on the node (or, with no
 * node, the result says Moodle will not see the change until its caches are purged).
 */
export async function invalidateCaches(
  site: CacheSite,
  target: MoodleTarget,
  changes: readonly CacheChange[],
): Promise<CacheOutcome> {
  const { dataroot } = target;
  if (!dataroot) return settle(site, target, { unreachable: UNREACHABLE_DATAROOT });
  const dirs = await sitePaths(site.codeRoot(target), dataroot);
  const muc = await readMucConfig(dirs.mucConfig);
  // A MUC configuration read from under the dataroot shows it is reachable; otherwise that is checked (one stat less per write).
  if (!(muc && dirs.mucConfig.startsWith(join(dataroot, sep))) && !(await isDir(dataroot)))
    return settle(site, target, { unreachable: UNREACHABLE_DATAROOT });
  if (await isLink(dirs.cachedir))
    return settle(site, target, { unreachable: `cache not purged: ${dirs.cachedir} is a link` });
  return settle(
    site,
    target,
    muc ? await applyCacheChanges(muc, dirs.cachedir, changes, site.secrets) : await emptyDir(dirs.cachedir),
  );
}

/** A setting change invalidated as set_config does: its plugin's core/config entry (`core` for a core setting). */
export const invalidateSettingCache = (site: CacheSite, target: MoodleTarget, plugin: string) =>
  invalidateCaches(site, target, [{ definition: 'core/config', keys: [plugin] }]);

/**
 * The SQL side of purge_caches(): every rev moves strictly forward (cache-busting URLs depend on it) and every
 * course's cacherev is bumped. Runs in the caller's transaction.
 */
export async function bumpRevisions(access: MoodleAccess, conn: PoolConnection, target: MoodleTarget): Promise<void> {
  const config = access.table(target, MOODLE_TABLES.config);
  await conn.query(
    `UPDATE ${config} SET value = GREATEST(CAST(value AS UNSIGNED) + 1, UNIX_TIMESTAMP()) WHERE name IN (${PURGED_REVS.map(() => '?').join(', ')})`,
    [...PURGED_REVS],
  );
  await conn.query(
    `UPDATE ${access.table(target, MOODLE_TABLES.course)} SET cacherev = GREATEST(cacherev + 1, UNIX_TIMESTAMP())`,
  );
}

/**
 * What purge_caches() does, from here: the revisions and every course's cacherev moved forward, then cachedir and
 * localcachedir emptied (other nodes follow localcachedirpurged) and the site's Redis stores purged.
 */
export async function purgeAll(
  site: CacheSite & { moodle: MoodleAccess },
  target: MoodleTarget,
): Promise<CacheOutcome> {
  await site.moodle.withTransaction(target, (conn) => bumpRevisions(site.moodle, conn, target));
  const dirs = await siteDirs(site, target);
  if (!dirs) return settle(site, target, { unreachable: UNREACHABLE_DATAROOT });
  const emptied = await Promise.all([dirs.cachedir, dirs.localcachedir].map(emptyDir));
  const failed = emptied.find((e) => e !== 'done');
  if (failed) return settle(site, target, failed);
  const muc = await readMucConfig(dirs.mucConfig);
  return settle(site, target, muc ? await purgeRedisStores(muc, site.secrets) : 'done');
}
