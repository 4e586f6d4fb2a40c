import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { PoolConnection } from 'mysql2/promise';
import type { MoodleAccess } from './access.ts';
import { MOODLE_TABLES } from './tables.ts';
import type { MoodleTarget } from './target.ts';
import { invalidateConfigEntry, purgeRedisStores, readMucConfig } from './muc.ts';

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
 * write made in SQL is invisible until `$dataroot/cache` is emptied (moodle-facts §1.6). Returns false when the
 * dataroot is not reachable from this node: the change is made but Moodle will not see it yet.
 */
export async function purgeDataCache(target: MoodleTarget): Promise<boolean> {
  if (!(await isDir(target.dataroot))) return false;
  return emptyDir(join(target.dataroot as string, 'cache'));
}

/**
 * Invalidates a setting change the way set_config does: only the core/config entry of its plugin (`core` for a core
 * setting), in the store the site's MUC configuration maps it to. A site with no MUC configuration yet has its
 * `cache/` emptied as before. False when the dataroot or the store cannot be reached: Moodle will not see the change
 * until its caches are purged.
 */
export async function invalidateSettingCache(target: MoodleTarget, plugin: string, secrets: { add(...values: string[]): void }): Promise<boolean> {
  if (!(await isDir(target.dataroot))) return false;
  const dataroot = target.dataroot as string;
  const muc = await readMucConfig(dataroot);
  if (!muc) return purgeDataCache(target);
  return (await invalidateConfigEntry(muc, dataroot, plugin, secrets)) === 'done';
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

/** The files side of purge_caches(): cache and localcache emptied (other nodes follow localcachedirpurged). */
export async function purgeAllCacheFiles(target: MoodleTarget): Promise<boolean> {
  if (!(await isDir(target.dataroot))) return false;
  const emptied = await Promise.all(['cache', 'localcache'].map((d) => emptyDir(join(target.dataroot as string, d))));
  return emptied.every(Boolean);
}

/**
 * What purge_caches() does, from here: the revisions and every course's cacherev moved forward, then the cache folders
 * emptied and the site's Redis stores purged.
 */
export async function purgeAll(access: MoodleAccess, target: MoodleTarget, secrets: { add(...values: string[]): void }): Promise<boolean> {
  await access.withTransaction(target, (conn) => bumpRevisions(access, conn, target));
  const files = await purgeAllCacheFiles(target);
  const muc = files ? await readMucConfig(target.dataroot as string) : undefined;
  return files && (!muc || (await purgeRedisStores(muc, secrets)) === 'done');
}
