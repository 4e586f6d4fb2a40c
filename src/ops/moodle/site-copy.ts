import type { Connection } from 'mysql2/promise';
import { qualifiedTable } from '../../core/db/identifiers.ts';
import { restoreSql, type MoodleDump } from './dump.ts';
import { phpSerialize, phpUnserialize } from './php-values.ts';
import { makeDistinctSite, type SiteIdentity } from './site-identity.ts';
import { MOODLE_TABLES } from './tables.ts';

/**
 * The tables Moodle's db_replace() leaves alone: it rewrites every other table's text, and the config tables and
 * block configuration are done apart (the config tables plainly; block configdata decoded, since it is serialized).
 */
export const DB_REPLACE_SKIP: readonly string[] = [
  'config',
  'config_plugins',
  'filter_config',
  'sessions',
  'events_queue',
  'repository_instance_config',
  'block_instances',
  'files',
];

/**
 * The SQL that loads a template's dump as a new site: every table under the new prefix (only the names at the head
 * of each statement change, never the data), and the old wwwroot replaced by the new one in the rows of every table
 * db_replace() rewrites.
 */
export function copySql(dump: MoodleDump, opts: { prefix: string; from: string; to: string }): string {
  return restoreSql(dump, {
    prefix: opts.prefix,
    rewriteRows: (table, insert) => (DB_REPLACE_SKIP.includes(table) ? insert : insert.replaceAll(opts.from, opts.to)),
  });
}

/** Every string in a value with `from` replaced by `to`, arrays and objects walked. */
function replaceDeep(value: unknown, from: string, to: string): unknown {
  if (typeof value === 'string') return value.replaceAll(from, to);
  if (Array.isArray(value)) return value.map((v) => replaceDeep(v, from, to));
  if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) (value as Record<string, unknown>)[k] = replaceDeep(v, from, to);
  }
  return value;
}

/** Classes for the objects a serialized value names, so that they come back as themselves (stdClass, mostly). */
function classesOf(serialized: string): Record<string, new () => object> {
  const names = new Set([...serialized.matchAll(/O:\d+:"([^"]+)"/g)].map((m) => m[1] as string));
  return Object.fromEntries([...names].map((name) => [name, { [name]: class {} }[name] as new () => object]));
}

/**
 * Block instances keep their settings as base64 of PHP serialize(): a URL inside is rewritten in the decoded value,
 * and serialized again, so that every string's length is right (a plain replace would break them). Returns how
 * many blocks changed; one that cannot be read is left as it was, and named.
 */
export async function rewriteBlockConfig(
  conn: Connection,
  database: string,
  prefix: string,
  from: string,
  to: string,
): Promise<{ changed: number; unreadable: number[] }> {
  const table = qualifiedTable(database, prefix, 'block_instances');
  const [rows] = await conn.query(`SELECT id, configdata FROM ${table} WHERE configdata <> ''`);
  let changed = 0;
  const unreadable: number[] = [];
  for (const row of rows as Array<{ id: number; configdata: string }>) {
    const serialized = Buffer.from(row.configdata, 'base64').toString('utf8');
    if (!serialized.includes(from)) continue;
    let value: unknown;
    try {
      value = phpUnserialize(serialized, classesOf(serialized));
    } catch {
      unreadable.push(Number(row.id));
      continue;
    }
    const rewritten = Buffer.from(phpSerialize(replaceDeep(value, from, to)), 'utf8').toString('base64');
    await conn.query(`UPDATE ${table} SET configdata = ? WHERE id = ?`, [rewritten, row.id]);
    changed++;
  }
  return { changed, unreadable };
}

export interface CopyIdentity extends SiteIdentity {
  /** The template's dataroot, which paths in its settings name (geoip2file and the like). */
  oldDataroot: string;
  /** The session cookie suffix, so that sites on one host do not share sessions. */
  sessioncookie: string;
}

/**
 * Makes a loaded copy a site of its own (moodle-facts §1.7 and the fixture's README): what makeDistinctSite does (a new
 * siteidentifier, the local mnet_host row, no inherited MNET key, the config tables' wwwroot, geoip, site course
 * names), the template's dataroot replaced by the new one in settings, its own session cookie, and block
 * configuration rewritten.
 */
export async function finishCopy(
  conn: Connection,
  site: CopyIdentity,
): Promise<{ blocks: number; unreadableBlocks: number[] }> {
  await makeDistinctSite(conn, site);
  const t = (name: string) => qualifiedTable(site.database, site.prefix, name);
  if (site.oldDataroot && site.oldDataroot !== site.dataroot) {
    for (const table of [MOODLE_TABLES.config, MOODLE_TABLES.configPlugins]) {
      await conn.query(`UPDATE ${t(table)} SET value = REPLACE(value, ?, ?) WHERE INSTR(value, ?) > 0`, [
        site.oldDataroot,
        site.dataroot,
        site.oldDataroot,
      ]);
    }
  }
  const [found] = await conn.query(`SELECT id FROM ${t(MOODLE_TABLES.config)} WHERE name = 'sessioncookie'`);
  if ((found as unknown[]).length)
    await conn.query(`UPDATE ${t(MOODLE_TABLES.config)} SET value = ? WHERE name = 'sessioncookie'`, [
      site.sessioncookie,
    ]);
  else
    await conn.query(`INSERT INTO ${t(MOODLE_TABLES.config)} (name, value) VALUES ('sessioncookie', ?)`, [
      site.sessioncookie,
    ]);
  const blocks = await rewriteBlockConfig(conn, site.database, site.prefix, site.oldWwwroot, site.wwwroot);
  return { blocks: blocks.changed, unreadableBlocks: blocks.unreadable };
}
