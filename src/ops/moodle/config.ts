import type { PoolConnection } from 'mysql2/promise';
import type { MoodleAccess } from './access.ts';
import { isSensitiveSetting } from './sensitive.ts';
import { MOODLE_TABLES } from './tables.ts';
import type { MoodleTarget } from './target.ts';

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

/**
 * Writes a setting as Moodle's set_config does (insert or update, and the config_log row it adds: userid 0 as
 * from the CLI, plugin NULL for core), inside the caller's transaction. A sensitive setting is logged as Moodle's
 * admin password settings log theirs: a value that is not empty becomes ********.
 */
export async function writeSetting(access: MoodleAccess, conn: PoolConnection, target: MoodleTarget, ref: SettingRef, value: string, old: string | null): Promise<void> {
  const w = where(access, target, ref);
  if (old === null) {
    if (ref.plugin) await conn.query(`INSERT INTO ${w.table} (plugin, name, value) VALUES (?, ?, ?)`, [ref.plugin, ref.name, value]);
    else await conn.query(`INSERT INTO ${w.table} (name, value) VALUES (?, ?)`, [ref.name, value]);
  } else {
    await conn.query(`UPDATE ${w.table} SET value = ? WHERE ${w.sql}`, [value, ...w.binds]);
  }
  const logged = (v: string | null) => (v !== null && v !== '' && isSensitiveSetting(ref.name, ref.plugin) ? LOGGED_PASSWORD : v);
  await conn.query(
    `INSERT INTO ${access.table(target, MOODLE_TABLES.configLog)} (userid, timemodified, plugin, name, value, oldvalue) VALUES (0, UNIX_TIMESTAMP(), ?, ?, ?, ?)`,
    [ref.plugin ?? null, ref.name, logged(value), logged(old)],
  );
}

/** Removes a setting as unset_config does (Moodle logs nothing for it). */
export async function deleteSetting(access: MoodleAccess, conn: PoolConnection, target: MoodleTarget, ref: SettingRef): Promise<void> {
  const w = where(access, target, ref);
  await conn.query(`DELETE FROM ${w.table} WHERE ${w.sql}`, w.binds);
}
