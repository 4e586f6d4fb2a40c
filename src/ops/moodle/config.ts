import type { MoodleAccess } from './access.ts';
import { isSensitiveSetting } from './sensitive.ts';
import type { Statements } from './statements.ts';
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

/** The read of one setting, locked when it is about to be written. */
function settingRead(access: MoodleAccess, target: MoodleTarget, ref: SettingRef, lock: boolean): [string, unknown[]] {
  const w = where(access, target, ref);
  return [`SELECT value FROM ${w.table} WHERE ${w.sql}${lock ? ' FOR UPDATE' : ''}`, w.binds];
}

const valueOf = (rows: Array<{ value: string }>) => (rows[0] ? rows[0].value : null);

export async function readSetting(access: MoodleAccess, sql: Statements, target: MoodleTarget, ref: SettingRef): Promise<string | null> {
  return valueOf(await sql.read<{ value: string }>(...settingRead(access, target, ref, false)));
}

/** The read of all of a plugin's settings, locked when they are about to be written. */
export function pluginSettingsRead(access: MoodleAccess, target: MoodleTarget, plugin: string, lock = false): [string, unknown[]] {
  return [`SELECT name, value FROM ${access.table(target, MOODLE_TABLES.configPlugins)} WHERE plugin = ? ORDER BY name${lock ? ' FOR UPDATE' : ''}`, [plugin]];
}

export const pluginSettingsOf = (rows: Array<{ name: string; value: string }>) => new Map(rows.map((r) => [r.name, r.value]));

/** All of a plugin's settings, as get_config(plugin) returns them. */
export async function readPluginSettings(access: MoodleAccess, sql: Statements, target: MoodleTarget, plugin: string): Promise<Map<string, string>> {
  return pluginSettingsOf(await sql.read(...pluginSettingsRead(access, target, plugin)));
}

/** The two settings that decide whether and how a change is logged by the standard log store (moodle-facts §3.1). */
export interface LogStores {
  enabledStores: string | null;
  jsonformat: string | null;
}

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
export async function readForWrite(access: MoodleAccess, sql: Statements, target: MoodleTarget, ref: SettingRef): Promise<{ current: string | null; stores: LogStores }> {
  const [setting, stores] = await sql.readAll<[{ value: string }, { plugin: string; value: string }]>([settingRead(access, target, ref, true), logStoresRead(access, target)]);
  return { current: valueOf(setting), stores: logStoresOf(stores) };
}

/**
 * How the standard log store writes `other` once this change is made, or undefined when it is not enabled (no row
 * then). Moodle loads its stores at the first event, after the write: a change to these settings applies to its own
 * row.
 */
function logFormat(stores: LogStores, ref: SettingRef, value: string | null): 'json' | 'serialize' | undefined {
  const is = (s: SettingRef) => ref.plugin === s.plugin && ref.name === s.name;
  const enabled = is(STORES) ? value : stores.enabledStores;
  const jsonformat = is(JSONFORMAT) ? value : stores.jsonformat;
  if (!(enabled ?? '').split(',').map((s) => s.trim()).includes('logstore_standard')) return undefined;
  return jsonformat === '1' ? 'json' : 'serialize';
}

/** What Moodle's password settings write to config_log for a value that is not empty (admin_setting_configpasswordunmask). */
const LOGGED_PASSWORD = '********';

const CONFIG_LOG_CREATED = '\\core\\event\\config_log_created';

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
export async function mainAdmin(access: MoodleAccess, sql: Statements, target: MoodleTarget): Promise<LogActor> {
  const siteadmins = `(SELECT value FROM ${access.table(target, MOODLE_TABLES.config)} WHERE name = 'siteadmins')`;
  const [admin] = await sql.read<{ id: string }>(
    `SELECT id FROM ${access.table(target, MOODLE_TABLES.user)} WHERE deleted = 0 AND FIND_IN_SET(id, REPLACE(${siteadmins}, ' ', '')) > 0
     ORDER BY FIND_IN_SET(id, REPLACE(${siteadmins}, ' ', '')) LIMIT 1`,
  );
  return admin ? { userid: Number(admin.id), origin: 'web' } : CLI_ACTOR;
}

/**
 * What set_config and unset_config leave behind (moodle-facts §3.1): the config_log row (by user 0 from the CLI or an
 * admin, plugin NULL for core, oldvalue '0' for a setting that did not exist, value NULL for a removal) and, when the
 * standard log store is enabled, the `\core\event\config_log_created` row pointing at it, with `other` as the
 * store's format says. A sensitive setting is logged as Moodle's admin password settings log theirs: a value that
 * is not empty becomes ********. Queued with the write, so that change, log and commit go in one round trip.
 */
function logConfigChange(access: MoodleAccess, sql: Statements, target: MoodleTarget, ref: SettingRef, value: string | null, old: string | null, stores: LogStores, by: LogActor): void {
  const sensitive = isSensitiveSetting(ref.name, ref.plugin);
  const logged = (v: string | null) => (v !== null && v !== '' && sensitive ? LOGGED_PASSWORD : v);
  const now = Math.floor(Date.now() / 1000);
  sql.write(
    `INSERT INTO ${access.table(target, MOODLE_TABLES.configLog)} (userid, timemodified, plugin, name, value, oldvalue) VALUES (?, ?, ?, ?, ?, ?)`,
    [by.userid, now, ref.plugin ?? null, ref.name, logged(value), old === null ? '0' : logged(old)],
  );
  const format = logFormat(stores, ref, value);
  if (!format) return;
  const other = { name: ref.name, oldvalue: old === null ? false : logged(old), value: logged(value), plugin: ref.plugin ?? null };
  // objectid is the config_log row's id, the last one inserted on this connection.
  sql.write(
    `INSERT INTO ${access.table(target, MOODLE_TABLES.logstoreStandardLog)}
      (eventname, component, action, target, objecttable, objectid, crud, edulevel, contextid, contextlevel, contextinstanceid,
       userid, courseid, relateduserid, anonymous, other, timecreated, origin, ip, realuserid)
     VALUES (?, 'core', 'created', 'config_log', 'config_log', LAST_INSERT_ID(), 'c', 0, 1, 10, 0, ?, 0, NULL, 0, ?, ?, ?, NULL, NULL)`,
    [CONFIG_LOG_CREATED, by.userid, format === 'json' ? phpJsonEncode(other) : phpSerialize(other), now, by.origin],
  );
}

/** Writes a setting as Moodle's set_config does: insert or update, and what it logs. Queued in the caller's transaction. */
export function writeSetting(access: MoodleAccess, sql: Statements, target: MoodleTarget, ref: SettingRef, value: string, old: string | null, stores: LogStores, by = CLI_ACTOR): void {
  const w = where(access, target, ref);
  if (old === null) {
    if (ref.plugin) sql.write(`INSERT INTO ${w.table} (plugin, name, value) VALUES (?, ?, ?)`, [ref.plugin, ref.name, value]);
    else sql.write(`INSERT INTO ${w.table} (name, value) VALUES (?, ?)`, [ref.name, value]);
  } else {
    sql.write(`UPDATE ${w.table} SET value = ? WHERE ${w.sql}`, [value, ...w.binds]);
  }
  logConfigChange(access, sql, target, ref, value, old, stores, by);
  followStores(stores, ref, value);
}

/** A write to the log store settings applies to the changes logged after it in the same transaction. */
function followStores(stores: LogStores, ref: SettingRef, value: string | null): void {
  if (ref.plugin === STORES.plugin && ref.name === STORES.name) stores.enabledStores = value;
  if (ref.plugin === JSONFORMAT.plugin && ref.name === JSONFORMAT.name) stores.jsonformat = value;
}

/** Removes a setting as unset_config does (`cfg.php --unset`), with what it logs. Queued in the caller's transaction. */
export function deleteSetting(access: MoodleAccess, sql: Statements, target: MoodleTarget, ref: SettingRef, old: string | null, stores: LogStores): void {
  const w = where(access, target, ref);
  sql.write(`DELETE FROM ${w.table} WHERE ${w.sql}`, w.binds);
  logConfigChange(access, sql, target, ref, null, old, stores, CLI_ACTOR);
  followStores(stores, ref, null);
}
