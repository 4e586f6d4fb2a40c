import type { PoolConnection } from 'mysql2/promise';
import type { MoodleAccess } from './access.ts';
import { isSensitiveSetting } from './sensitive.ts';
import { MOODLE_TABLES } from './tables.ts';
import type { MoodleTarget } from './target.ts';
import { phpJsonEncode, phpSerialize } from './php-values.ts';

/** A setting: core (`plugin` undefined) in {config}, or a plugin's in {config_plugins}. */
export interface SettingRef {
  name: string;
  plugin?: string;
}

function where(access: MoodleAccess, target: MoodleTarget, ref: SettingRef): { table: string; sql: string; binds: string[] } {
  return ref.plugin
    ? { table: access.table(target, MOODLE_TABLES.configPlugins), sql: 'plugin = ? AND name = ?', binds: [ref.plugin, ref.name] }
    : { table: access.table(target, MOODLE_TABLES.config), sql: 'name = ?', binds: [ref.name] };
}

export async function readSetting(access: MoodleAccess, conn: PoolConnection, target: MoodleTarget, ref: SettingRef, lock = false): Promise<string | null> {
  const w = where(access, target, ref);
  const [rows] = await conn.query(`SELECT value FROM ${w.table} WHERE ${w.sql}${lock ? ' FOR UPDATE' : ''}`, w.binds);
  const row = (rows as Array<{ value: string }>)[0];
  return row ? row.value : null;
}

/** All of a plugin's settings, as get_config(plugin) returns them. */
export async function readPluginSettings(access: MoodleAccess, conn: PoolConnection, target: MoodleTarget, plugin: string): Promise<Map<string, string>> {
  const [rows] = await conn.query(`SELECT name, value FROM ${access.table(target, MOODLE_TABLES.configPlugins)} WHERE plugin = ? ORDER BY name`, [plugin]);
  return new Map((rows as Array<{ name: string; value: string }>).map((r) => [r.name, r.value]));
}

/** What Moodle's password settings write to config_log for a value that is not empty (admin_setting_configpasswordunmask). */
const LOGGED_PASSWORD = '********';

const CONFIG_LOG_CREATED = '\\core\\event\\config_log_created';

/** How the standard log store writes `other` on this site, or undefined when it is not enabled (no row then). */
async function standardLogFormat(access: MoodleAccess, conn: PoolConnection, target: MoodleTarget): Promise<'json' | 'serialize' | undefined> {
  const [rows] = await conn.query(
    `SELECT plugin, value FROM ${access.table(target, MOODLE_TABLES.configPlugins)} WHERE (plugin = 'tool_log' AND name = 'enabled_stores') OR (plugin = 'logstore_standard' AND name = 'jsonformat')`,
  );
  const values = new Map((rows as Array<{ plugin: string; value: string }>).map((r) => [r.plugin, r.value]));
  if (!(values.get('tool_log') ?? '').split(',').map((s) => s.trim()).includes('logstore_standard')) return undefined;
  return values.get('logstore_standard') === '1' ? 'json' : 'serialize';
}

/** Who a change is logged as: cfg.php's user 0 from the CLI, or the admin who saves an admin settings page. */
export interface LogActor {
  userid: number;
  origin: 'cli' | 'web';
}

export const CLI_ACTOR: LogActor = { userid: 0, origin: 'cli' };

/**
 * The site's main admin as get_admin() finds it: the first of `siteadmins` that is a user not deleted. A change an
 * admin settings page makes is logged as theirs; a site with none is logged as from the CLI.
 */
export async function mainAdmin(access: MoodleAccess, conn: PoolConnection, target: MoodleTarget): Promise<LogActor> {
  const ids = ((await readSetting(access, conn, target, { name: 'siteadmins' })) ?? '').split(',').map((id) => Number(id.trim())).filter((id) => Number.isInteger(id) && id > 0);
  if (ids.length === 0) return CLI_ACTOR;
  const [rows] = await conn.query(`SELECT id FROM ${access.table(target, MOODLE_TABLES.user)} WHERE deleted = 0 AND id IN (?)`, [ids]);
  const present = new Set((rows as Array<{ id: number }>).map((r) => Number(r.id)));
  const admin = ids.find((id) => present.has(id));
  return admin === undefined ? CLI_ACTOR : { userid: admin, origin: 'web' };
}

/**
 * What set_config and unset_config leave behind (moodle-facts §3.1): the config_log row (by user 0 from the CLI or an admin,
 * plugin NULL for core, oldvalue '0' for a setting that did not exist, value NULL for a removal) and, when the
 * standard log store is enabled, the `\core\event\config_log_created` row, with `other` as the store's format says.
 * Read after the write, as Moodle loads its stores at the first event. A sensitive setting is logged as Moodle's
 * admin password settings log theirs: a value that is not empty becomes ********.
 */
async function logConfigChange(access: MoodleAccess, conn: PoolConnection, target: MoodleTarget, ref: SettingRef, value: string | null, old: string | null, by: LogActor): Promise<void> {
  const sensitive = isSensitiveSetting(ref.name, ref.plugin);
  const logged = (v: string | null) => (v !== null && v !== '' && sensitive ? LOGGED_PASSWORD : v);
  const now = Math.floor(Date.now() / 1000);
  const [inserted] = await conn.query(
    `INSERT INTO ${access.table(target, MOODLE_TABLES.configLog)} (userid, timemodified, plugin, name, value, oldvalue) VALUES (?, ?, ?, ?, ?, ?)`,
    [by.userid, now, ref.plugin ?? null, ref.name, logged(value), old === null ? '0' : logged(old)],
  );
  const format = await standardLogFormat(access, conn, target);
  if (!format) return;
  const other = { name: ref.name, oldvalue: old === null ? false : logged(old), value: logged(value), plugin: ref.plugin ?? null };
  await conn.query(
    `INSERT INTO ${access.table(target, MOODLE_TABLES.logstoreStandardLog)}
      (eventname, component, action, target, objecttable, objectid, crud, edulevel, contextid, contextlevel, contextinstanceid,
       userid, courseid, relateduserid, anonymous, other, timecreated, origin, ip, realuserid)
     VALUES (?, 'core', 'created', 'config_log', 'config_log', ?, 'c', 0, 1, 10, 0, ?, 0, NULL, 0, ?, ?, ?, NULL, NULL)`,
    [CONFIG_LOG_CREATED, (inserted as { insertId: number }).insertId, by.userid, format === 'json' ? phpJsonEncode(other) : phpSerialize(other), now, by.origin],
  );
}

/** Writes a setting as Moodle's set_config does: insert or update, and what it logs. Inside the caller's transaction. */
export async function writeSetting(access: MoodleAccess, conn: PoolConnection, target: MoodleTarget, ref: SettingRef, value: string, old: string | null, by = CLI_ACTOR): Promise<void> {
  const w = where(access, target, ref);
  if (old === null) {
    if (ref.plugin) await conn.query(`INSERT INTO ${w.table} (plugin, name, value) VALUES (?, ?, ?)`, [ref.plugin, ref.name, value]);
    else await conn.query(`INSERT INTO ${w.table} (name, value) VALUES (?, ?)`, [ref.name, value]);
  } else {
    await conn.query(`UPDATE ${w.table} SET value = ? WHERE ${w.sql}`, [value, ...w.binds]);
  }
  await logConfigChange(access, conn, target, ref, value, old, by);
}

/** Removes a setting as unset_config does (`cfg.php --unset`), with what it logs. Inside the caller's transaction. */
export async function deleteSetting(access: MoodleAccess, conn: PoolConnection, target: MoodleTarget, ref: SettingRef, old: string | null): Promise<void> {
  const w = where(access, target, ref);
  await conn.query(`DELETE FROM ${w.table} WHERE ${w.sql}`, w.binds);
  await logConfigChange(access, conn, target, ref, null, old, CLI_ACTOR);
}
