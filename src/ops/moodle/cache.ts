import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { PoolConnection } from 'mysql2/promise';
import type { MoodleAccess } from './access.ts';
import { MOODLE_TABLES } from './tables.ts';
import type { MoodleTarget } from './target.ts';
import { invalidateConfigEntry, purgeRedisStores, readMucConfig } from './muc.ts';
import { cacheDirs, type CacheDirName } from './code-config.ts';
import type { CommandContext } from '../command.ts';

/** What cache work needs of a command's context: where the site's code tree is (its config.php may move the caches), and the secrets list. */
type CacheSite = Pick<CommandContext, 'codeRoot' | 'secrets'>;

/** The config revisions a full purge_caches moves forward (moodle-facts §2.5). */
export const PURGED_REVS = ['themerev', 'jsrev', 'langrev', 'templaterev', 'localcachedirpurged', 'scheduledtaskreset'] as const;

async function isDir(path: string | undefined): Promise<boolean> {
  if (!path) return false;
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

/** The site's dataroot and cache folders, or undefined when this node cannot reach the dataroot. */
async function siteDirs(site: CacheSite, target: MoodleTarget): Promise<(Record<CacheDirName, string> & { dataroot: string }) | undefined> {
  if (!(await isDir(target.dataroot))) return undefined;
  const dataroot = target.dataroot as string;
  return { dataroot, ...(await cacheDirs(site.codeRoot(target), dataroot)) };
}

/**
 * Empties a cache folder; false when it could not (a permission), so that the target is reported "cache not
 * purged" rather than purged. No folder at all is an empty cache.
 */
async function emptyDir(path: string): Promise<boolean> {
  try {
    const entries = await readdir(path);
    await Promise.all(entries.map((e) => rm(join(path, e), { recursive: true, force: true })));
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

/**
 * Moodle reads config and role definitions through its MUC file cache, which has no invalidation events, so a
 * write made in SQL is invisible until the cache folder (`$dataroot/cache`, or `$CFG->cachedir`) is emptied (moodle-facts §1.6). Returns false when the
 * dataroot is not reachable from this node: the change is made but Moodle will not see it yet.
 */
export async function purgeDataCache(site: CacheSite, target: MoodleTarget): Promise<boolean> {
  const dirs = await siteDirs(site, target);
  return dirs !== undefined && emptyDir(dirs.cachedir);
}

/**
 * Invalidates a setting change the way set_config does: only the core/config entry of its plugin (`core` for a core
 * setting), in the store the site's MUC configuration maps it to. A site with no MUC configuration yet has its
 * `cache/` emptied as before. False when the dataroot or the store cannot be reached: Moodle will not see the change
 * until its caches are purged.
 */
export async function invalidateSettingCache(site: CacheSite, target: MoodleTarget, plugin: string): Promise<boolean> {
  const dirs = await siteDirs(site, target);
  if (!dirs) return false;
  const muc = await readMucConfig(dirs.dataroot);
  if (!muc) return emptyDir(dirs.cachedir);
  return (await invalidateConfigEntry(muc, dirs.cachedir, plugin, site.secrets)) === 'done';
}

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
  await conn.query(`UPDATE ${access.table(target, MOODLE_TABLES.course)} SET cacherev = GREATEST(cacherev + 1, UNIX_TIMESTAMP())`);
}

/**
 * What purge_caches() does, from here: the revisions and every course's cacherev moved forward, then cachedir and
 * localcachedir emptied (other nodes follow localcachedirpurged) and the site's Redis stores purged.
 */
export async function purgeAll(site: CacheSite & { moodle: MoodleAccess }, target: MoodleTarget): Promise<boolean> {
  await site.moodle.withTransaction(target, (conn) => bumpRevisions(site.moodle, conn, target));
  const dirs = await siteDirs(site, target);
  if (!dirs) return false;
  const emptied = await Promise.all([dirs.cachedir, dirs.localcachedir].map(emptyDir));
  if (!emptied.every(Boolean)) return false;
  const muc = await readMucConfig(dirs.dataroot);
  return !muc || (await purgeRedisStores(muc, site.secrets)) === 'done';
}
