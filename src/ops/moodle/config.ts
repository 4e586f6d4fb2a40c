import type { MoodleAccess } from './access.ts';
import { isSensitiveSetting } from './sensitive.ts';
import type { Statements } from './statements.ts';
import { MOODLE_TABLES } from './tables.ts';
import type { MoodleTarget } from './target.ts';
import { CLI_ACTOR, logEvent, SYSTEM_CONTEXT, type LogActor, type LogStores, type PhpValue } from './events.ts';

/** What a setting's name and a plugin's (frankenstyle) name may be, as the product accepts them. */
export const SETTING_NAME = /^[a-z0-9_]{1,100}$/i;
export const PLUGIN_NAME = /^[a-z][a-z0-9_]{0,99}$/;

/** A setting: core (`plugin` undefined) in {config}, or a plugin's in {config_plugins}. */
export interface SettingRef {
  name: string;
  plugin?: string;
}

function where(
  access: MoodleAccess,
  target: MoodleTarget,
  ref: SettingRef,
): { table: string; sql: string; binds: string[] } {
  return ref.plugin
    ? {
        table: access.table(target, MOODLE_TABLES.configPlugins),
        sql: 'plugin = ? AND name = ?',
        binds: [ref.plugin, ref.name],
      }
    : { table: access.table(target, MOODLE_TABLES.config), sql: 'name = ?', binds: [ref.name] };
}

/** The read of one setting, locked when it is about to be written. */
function settingRead(access: MoodleAccess, target: MoodleTarget, ref: SettingRef, lock: boolean): [string, unknown[]] {
  const w = where(access, target, ref);
  return [`SELECT value FROM ${w.table} WHERE ${w.sql}${lock ? ' FOR UPDATE' : ''}`, w.binds];
}

const firstValue = (rows: Array<{ value: string }>) => (rows[0] ? rows[0].value : null);

export async function readSetting(
  access: MoodleAccess,
  sql: Statements,
  target: MoodleTarget,
  ref: SettingRef,
): Promise<string | null> {
  return firstValue(await sql.read<{ value: string }>(...settingRead(access, target, ref, false)));
}

/** The read of all of a plugin's settings, locked when they are about to be written. */
export function pluginSettingsRead(
  access: MoodleAccess,
  target: MoodleTarget,
  plugin: string,
  lock = false,
): [string, unknown[]] {
  return [
    `SELECT name, value FROM ${access.table(target, MOODLE_TABLES.configPlugins)} WHERE plugin = ? ORDER BY name${lock ? ' FOR UPDATE' : ''}`,
    [plugin],
  ];
}

export const pluginSettingsOf = (rows: Array<{ name: string; value: string }>) =>
  new Map(rows.map((r) => [r.name, r.value]));

/** All of a plugin's settings, as get_config(plugin) returns them. */
export async function readPluginSettings(
  access: MoodleAccess,
  sql: Statements,
  target: MoodleTarget,
  plugin: string,
): Promise<Map<string, string>> {
  return pluginSettingsOf(await sql.read(...pluginSettingsRead(access, target, plugin)));
}

export type { LogStores, LogActor } from './events.ts';
export { CLI_ACTOR } from './events.ts';

const STORES = { plugin: 'tool_log', name: 'enabled_stores' } as const;
const JSONFORMAT = { plugin: 'logstore_standard', name: 'jsonformat' } as const;

export function logStoresRead(access: MoodleAccess, target: MoodleTarget): [string, unknown[]] {
  return [
    `SELECT plugin, value FROM ${access.table(target, MOODLE_TABLES.configPlugins)} WHERE (plugin = ? AND name = ?) OR (plugin = ? AND name = ?)`,
    [STORES.plugin, STORES.name, JSONFORMAT.plugin, JSONFORMAT.name],
  ];
}

export const logStoresOf = (rows: Array<{ plugin: string; value: string }>): LogStores => ({
  enabledStores: rows.find((r) => r.plugin === STORES.plugin)?.value ?? null,
  jsonformat: rows.find((r) => r.plugin === JSONFORMAT.plugin)?.value ?? null,
});

/**
 * A setting about to be written, locked, with the log store settings: one round trip (the transaction begins in
 * it too).
 */
export async function readForWrite(
  access: MoodleAccess,
  sql: Statements,
  target: MoodleTarget,
  ref: SettingRef,
): Promise<{ current: string | null; stores: LogStores }> {
  const [setting, stores] = await sql.readAll<[{ value: string }, { plugin: string; value: string }]>([
    settingRead(access, target, ref, true),
    logStoresRead(access, target),
  ]);
  return { current: firstValue(setting), stores: logStoresOf(stores) };
}

/** What Moodle's password settings write to config_log for a value that is not empty (admin_setting_configpasswordunmask). */
const LOGGED_PASSWORD = '********';

/**
 * The read of the site's main admin as get_admin() finds it: the first of `siteadmins` that is a user not deleted.
 * A change an admin page makes is logged as theirs; a site with none is logged as from the CLI (see adminOf).
 */
export function adminRead(access: MoodleAccess, target: MoodleTarget): [string, unknown[]] {
  const siteadmins = `(SELECT value FROM ${access.table(target, MOODLE_TABLES.config)} WHERE name = 'siteadmins')`;
  return [
    `SELECT id FROM ${access.table(target, MOODLE_TABLES.user)} WHERE deleted = 0 AND FIND_IN_SET(id, REPLACE(${siteadmins}, ' ', '')) > 0
     ORDER BY FIND_IN_SET(id, REPLACE(${siteadmins}, ' ', '')) LIMIT 1`,
    [],
  ];
}

export const adminOf = (rows: Array<{ id: string }>): LogActor =>
  rows[0] ? { userid: Number(rows[0].id), origin: 'web' } : CLI_ACTOR;

/** The log store settings and the main admin: what a change made as an admin page makes it is logged with. */
export async function readAdminLog(
  access: MoodleAccess,
  sql: Statements,
  target: MoodleTarget,
): Promise<{ stores: LogStores; actor: LogActor }> {
  const [stores, admin] = await sql.readAll<[{ plugin: string; value: string }, { id: string }]>([
    logStoresRead(access, target),
    adminRead(access, target),
  ]);
  return { stores: logStoresOf(stores), actor: adminOf(admin) };
}

export async function mainAdmin(access: MoodleAccess, sql: Statements, target: MoodleTarget): Promise<LogActor> {
  return adminOf(await sql.read<{ id: string }>(...adminRead(access, target)));
}

/**
 * What Moodle's add_to_config_log() leaves behind (moodle-facts §3.1): the config_log row (by user 0 from the CLI or an
 * admin; values as PHP casts them to text: false is '0', null is NULL) and, when the standard log store is enabled,
 * the `config_log_created` row pointing at it, whose `other` keeps PHP's types. A sensitive setting is logged as
 * Moodle's admin password settings log theirs: text that is not empty becomes ********. Queued with the write, so
 * that change, log and commit go in one round trip.
 */
export function addToConfigLog(
  access: MoodleAccess,
  sql: Statements,
  target: MoodleTarget,
  entry: ConfigLogEntry,
  stores: LogStores,
  by: LogActor,
): void {
  const sensitive = isSensitiveSetting(entry.name, entry.plugin);
  const logged = (v: PhpValue) => (typeof v === 'string' && v !== '' && sensitive ? LOGGED_PASSWORD : v);
  const [oldvalue, value] = [logged(entry.oldvalue), logged(entry.value)];
  const now = Math.floor(Date.now() / 1000);
  sql.write(
    `INSERT INTO ${access.table(target, MOODLE_TABLES.configLog)} (userid, timemodified, plugin, name, value, oldvalue) VALUES (?, ?, ?, ?, ?, ?)`,
    [by.userid, now, entry.plugin, entry.name, phpText(value), phpText(oldvalue)],
  );
  // objectid is the config_log row's id, the last one inserted on this connection.
  logEvent(
    access,
    sql,
    target,
    {
      name: 'config_log_created',
      objecttable: 'config_log',
      objectid: 'LAST_INSERT_ID',
      crud: 'c',
      edulevel: 0,
      context: SYSTEM_CONTEXT,
      other: { name: entry.name, oldvalue, value, plugin: entry.plugin },
    },
    stores,
    by,
    now,
  );
}

/** One add_to_config_log() call: the values as PHP passes them (a flag's old value may be false, a new one an int). */
export interface ConfigLogEntry {
  name: string;
  plugin: string | null;
  oldvalue: PhpValue;
  value: PhpValue;
}

/** A scalar as PHP's database layer stores it in a text column: booleans as 0 and 1, null as NULL. */
const phpText = (v: PhpValue): string | null =>
  v === null ? null : typeof v === 'boolean' ? (v ? '1' : '0') : typeof v === 'object' ? JSON.stringify(v) : String(v);

/** What cfg.php logs for a setting change: the old value as get_config() gave it (false when there was none). */
function logConfigChange(
  access: MoodleAccess,
  sql: Statements,
  target: MoodleTarget,
  ref: SettingRef,
  value: string | null,
  old: string | null,
  stores: LogStores,
  by: LogActor,
): void {
  addToConfigLog(
    access,
    sql,
    target,
    { name: ref.name, plugin: ref.plugin ?? null, oldvalue: old ?? false, value },
    stores,
    by,
  );
}

/**
 * What set_config() (a value) or unset_config() (null) does to the row, and no more: Moodle's set_config logs nothing,
 * its callers do. A write to the log store settings applies to the changes logged after it in the same transaction.
 * Queued in the caller's transaction.
 */
export function storeSetting(
  access: MoodleAccess,
  sql: Statements,
  target: MoodleTarget,
  ref: SettingRef,
  value: string | null,
  old: string | null,
  stores: LogStores,
): void {
  const w = where(access, target, ref);
  if (value === null) sql.write(`DELETE FROM ${w.table} WHERE ${w.sql}`, w.binds);
  else if (old === null && ref.plugin)
    sql.write(`INSERT INTO ${w.table} (plugin, name, value) VALUES (?, ?, ?)`, [ref.plugin, ref.name, value]);
  else if (old === null) sql.write(`INSERT INTO ${w.table} (name, value) VALUES (?, ?)`, [ref.name, value]);
  else sql.write(`UPDATE ${w.table} SET value = ? WHERE ${w.sql}`, [value, ...w.binds]);
  if (ref.plugin === STORES.plugin && ref.name === STORES.name) stores.enabledStores = value;
  if (ref.plugin === JSONFORMAT.plugin && ref.name === JSONFORMAT.name) stores.jsonformat = value;
}

/** Writes a setting as cfg.php --set does: set_config, then its log. Queued in the caller's transaction. */
export function writeSetting(
  access: MoodleAccess,
  sql: Statements,
  target: MoodleTarget,
  ref: SettingRef,
  value: string,
  old: string | null,
  stores: LogStores,
  by = CLI_ACTOR,
): void {
  storeSetting(access, sql, target, ref, value, old, stores);
  logConfigChange(access, sql, target, ref, value, old, stores, by);
}

/** Removes a setting as cfg.php --unset does: unset_config, then its log. Queued in the caller's transaction. */
export function deleteSetting(
  access: MoodleAccess,
  sql: Statements,
  target: MoodleTarget,
  ref: SettingRef,
  old: string | null,
  stores: LogStores,
): void {
  storeSetting(access, sql, target, ref, null, old, stores);
  logConfigChange(access, sql, target, ref, null, old, stores, CLI_ACTOR);
}
