import { randomBytes } from 'node:crypto';
import type { Connection } from 'mysql2/promise';
import { escapeLike, qualifiedTable } from '../../core/db/identifiers.ts';
import { MOODLE_TABLES } from './tables.ts';
import { TargetError } from './target.ts';

export interface SiteIdentity {
  database: string;
  prefix: string;
  /** The wwwroot the restored database was made with. */
  oldWwwroot: string;
  wwwroot: string;
  dataroot: string;
  fullname: string;
  shortname: string;
}

/** The wwwroot a database holds: its local mnet_host row is the only copy of it in the database. */
export async function readWwwroot(conn: Connection, database: string, prefix: string): Promise<string> {
  const config = qualifiedTable(database, prefix, MOODLE_TABLES.config);
  const mnetHost = qualifiedTable(database, prefix, MOODLE_TABLES.mnetHost);
  const [rows] = await conn.query(
    `SELECT h.wwwroot FROM ${mnetHost} h JOIN ${config} c ON c.name = 'mnet_localhost_id' AND h.id = c.value`,
  );
  const row = (rows as Array<{ wwwroot: string }>)[0];
  if (!row) throw new TargetError(`${database} has no local mnet_host row: is it a Moodle database?`);
  return row.wwwroot;
}

/**
 * Makes a restored copy of a Moodle database a distinct site (moodle-facts §1.7): a new siteidentifier, the
 * new wwwroot in its local mnet_host row and wherever the config tables embed the old one, no inherited MNET
 * private key, its own geoip path and site course names.
 */
export async function makeDistinctSite(conn: Connection, site: SiteIdentity): Promise<void> {
  const t = (name: string) => qualifiedTable(site.database, site.prefix, name);
  const host = new URL(site.wwwroot).hostname;
  const siteIdentifier = randomBytes(16).toString('hex') + host;
  const oldLike = `%${escapeLike(site.oldWwwroot)}%`;
  await conn.beginTransaction();
  try {
    await conn.execute(`UPDATE ${t(MOODLE_TABLES.config)} SET value = ? WHERE name = 'siteidentifier'`, [
      siteIdentifier,
    ]);
    await conn.execute(
      `UPDATE ${t(MOODLE_TABLES.mnetHost)} SET wwwroot = ?, public_key = '', public_key_expires = 0
        WHERE id = (SELECT value FROM ${t(MOODLE_TABLES.config)} WHERE name = 'mnet_localhost_id')`,
      [site.wwwroot],
    );
    await conn.execute(
      `DELETE FROM ${t(MOODLE_TABLES.configPlugins)} WHERE plugin = 'mnet' AND name IN ('openssl', 'openssl_history')`,
    );
    for (const table of [MOODLE_TABLES.config, MOODLE_TABLES.configPlugins]) {
      await conn.execute(`UPDATE ${t(table)} SET value = REPLACE(value, ?, ?) WHERE value LIKE ?`, [
        site.oldWwwroot,
        site.wwwroot,
        oldLike,
      ]);
    }
    await conn.execute(`UPDATE ${t(MOODLE_TABLES.adminpresets)} SET site = REPLACE(site, ?, ?)`, [
      site.oldWwwroot,
      site.wwwroot,
    ]);
    await conn.execute(`UPDATE ${t(MOODLE_TABLES.config)} SET value = ? WHERE name = 'geoip2file'`, [
      `${site.dataroot}/geoip/GeoIP-City.mmdb`,
    ]);
    await conn.execute(`UPDATE ${t(MOODLE_TABLES.course)} SET fullname = ?, shortname = ? WHERE format = 'site'`, [
      site.fullname,
      site.shortname,
    ]);
    await conn.commit();
  } catch (err) {
    await conn.rollback();
    throw err;
  }
}
