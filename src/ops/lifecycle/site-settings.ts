import type { MoodleAccess } from '../moodle/access.ts';
import { logStoresOf, logStoresRead, PLUGIN_NAME, SETTING_NAME, writeSetting } from '../moodle/config.ts';
import { isSensitiveSetting } from '../moodle/sensitive.ts';
import { MOODLE_TABLES } from '../moodle/tables.ts';
import type { MoodleTarget } from '../moodle/target.ts';
import { errorKind } from '../../core/errors.ts';

/** A create's settings that are not a list of settings Moodle could hold. */
class SiteSettingsError extends errorKind('bad_parameter') {}

/** A setting a new site starts with: core (`plugin` null) or a plugin's. */
export interface SiteSetting {
  plugin: string | null;
  name: string;
  value: string;
}

/** How a setting is named in a nodelist's header and in messages: `config_<name>` or `<component>|<name>`. */
export const settingLabel = (s: Pick<SiteSetting, 'plugin' | 'name'>) =>
  s.plugin ? `${s.plugin}|${s.name}` : `config_${s.name}`;

/**
 * Why a setting cannot be given to a new site this way, or undefined. A sensitive one (a password, a key) is
 * refused: its value would rest in the run's parameters; it is set afterwards with generic/setconfig, whose value is
 * sealed.
 */
export function siteSettingProblem(s: SiteSetting): string | undefined {
  if (s.plugin !== null && !PLUGIN_NAME.test(s.plugin)) return `'${s.plugin}' is not a plugin name`;
  if (!SETTING_NAME.test(s.name)) return `'${s.name}' is not a setting name`;
  if (s.value.length > 65_535) return `${settingLabel(s)} is longer than 65,535 characters`;
  if (isSensitiveSetting(s.name, s.plugin))
    return `${settingLabel(s)} is a sensitive setting: set it after the creation with generic/setconfig, which keeps its value sealed`;
  return undefined;
}

/** The settings of a create's `settings` parameter (JSON), each checked; throws what is wrong. */
export function parseSiteSettings(text: string): SiteSetting[] {
  if (!text) return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new SiteSettingsError('settings: not JSON (a list of {"plugin", "name", "value"})');
  }
  if (!Array.isArray(parsed))
    throw new SiteSettingsError('settings: a list of {"plugin", "name", "value"} is expected');
  return parsed.map((item: unknown, i) => {
    const s = item as Partial<SiteSetting>;
    if (
      !s ||
      typeof s.name !== 'string' ||
      typeof s.value !== 'string' ||
      !(s.plugin === null || typeof s.plugin === 'string')
    )
      throw new SiteSettingsError(`settings: item ${i + 1} is not {"plugin", "name", "value"} with text values`);
    const setting = { plugin: s.plugin || null, name: s.name, value: s.value };
    const problem = siteSettingProblem(setting);
    if (problem) throw new SiteSettingsError(`settings: ${problem}`);
    return setting;
  });
}

/**
 * Writes a new site's settings as cfg.php --set writes each (the row, its config_log row and log store event), in
 * one transaction. Returns how many changed.
 */
export async function writeSiteSettings(
  access: MoodleAccess,
  target: MoodleTarget,
  settings: readonly SiteSetting[],
): Promise<number> {
  if (settings.length === 0) return 0;
  return access.withStatements(target, async (sql) => {
    const [core, plugins, storeRows] = await sql.readAll<
      [
        { name: string; value: string },
        { plugin: string; name: string; value: string },
        { plugin: string; value: string },
      ]
    >([
      [`SELECT name, value FROM ${access.table(target, MOODLE_TABLES.config)} FOR UPDATE`, []],
      [`SELECT plugin, name, value FROM ${access.table(target, MOODLE_TABLES.configPlugins)} FOR UPDATE`, []],
      logStoresRead(access, target),
    ]);
    const current = new Map<string, string>([
      ...core.map((r) => [`|${r.name}`, r.value] as const),
      ...plugins.map((r) => [`${r.plugin}|${r.name}`, r.value] as const),
    ]);
    const stores = logStoresOf(storeRows);
    let changed = 0;
    for (const s of settings) {
      const key = `${s.plugin ?? ''}|${s.name}`;
      const old = current.get(key) ?? null;
      if (old === s.value) continue;
      writeSetting(
        access,
        sql,
        target,
        s.plugin ? { plugin: s.plugin, name: s.name } : { name: s.name },
        s.value,
        old,
        stores,
      );
      current.set(key, s.value);
      changed++;
    }
    return changed;
  });
}
