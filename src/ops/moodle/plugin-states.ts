import { errorKind } from '../../core/errors.ts';
import type { MoodleAccess } from './access.ts';
import {
  adminOf,
  adminRead,
  addToConfigLog,
  logStoresOf,
  logStoresRead,
  storeSetting,
  type SettingRef,
} from './config.ts';
import { CLI_ACTOR, type LogActor, type LogStores, type PhpValue } from './events.ts';
import type { CacheChange } from './muc.ts';
import type { Statements } from './statements.ts';
import { MOODLE_TABLES } from './tables.ts';
import type { MoodleTarget } from './target.ts';

/**
 * How Moodle 4.5 enables and disables each type of plugin, as each `\core\plugininfo\<type>::enable_plugin()` does it
 * (moodle-facts §2.7): the rows it writes, what it logs with add_to_config_log() (PHP's types kept: an old flag may be
 * false, a new one an int), and the caches it invalidates. Types whose enabling needs the plugin's own code (media
 * players placed by their rank, repositories and portfolios with instances, message processors) are not among them.
 */
export const PLUGIN_TYPES = [
  'mod',
  'block',
  'auth',
  'enrol',
  'filter',
  'editor',
  'qtype',
  'qbehaviour',
  'format',
  'customfield',
  'dataformat',
  'contenttype',
  'availability',
  'qbank',
  'communication',
  'aiprovider',
  'aiplacement',
  'antivirus',
  'webservice',
  'fileconverter',
  'paygw',
] as const;
export type PluginType = (typeof PLUGIN_TYPES)[number];

/** A plugin's state as the admin pages show it; `available` is a filter that is off but may be turned on in a context. */
export type PluginState = 'enabled' | 'available' | 'disabled';

/** What an operator asks for, as VMoodle's plugin control names it. */
export const WANTED_STATES = {
  enable: 'enabled',
  available: 'available',
  disable: 'disabled',
} as const satisfies Record<string, PluginState>;

class PluginRefusal extends errorKind('bad_parameter') {}

/** A plugin named `type_name` (frankenstyle) or `type/name`, as VMoodle's commands take it. */
export function parsePlugin(text: string): { type: PluginType; name: string } | undefined {
  const m = /^([a-z]+)[_/]([a-z][a-z0-9_]{0,99})$/.exec(text);
  if (!m || !(PLUGIN_TYPES as readonly string[]).includes(m[1] as string)) return undefined;
  return { type: m[1] as PluginType, name: m[2] as string };
}

/** What a kind's writes need: where, in whose name, and the log store's settings. */
interface PluginSite {
  access: MoodleAccess;
  sql: Statements;
  target: MoodleTarget;
  stores: LogStores;
  actor: LogActor;
  now: number;
}

/** A type's plugins on one site, read once; `set` queues one plugin's change and keeps the snapshot current. */
interface TypeSnapshot {
  /** Every installed plugin of the type with its state. */
  states: Map<string, PluginState>;
  /** Queues what Moodle writes to take a plugin to a state (nothing when it is there already); the cache changes to make. */
  set(name: string, wanted: PluginState): CacheChange[];
}

type Read = [string, unknown[]];

/** One kind of storage: the reads a snapshot needs, and the snapshot they make. */
interface PluginKind {
  /** States its plugins can be set to. */
  states: readonly PluginState[];
  reads(site: Pick<PluginSite, 'access' | 'target'>, type: PluginType, lock: boolean): Read[];
  snapshot(site: PluginSite, type: PluginType, rows: unknown[][]): TypeSnapshot;
}

const ON_OFF: readonly PluginState[] = ['enabled', 'disabled'];
const lockIf = (lock: boolean) => (lock ? ' FOR UPDATE' : '');
const t = (site: Pick<PluginSite, 'access' | 'target'>, table: string) => site.access.table(site.target, table);
const settingOf = (rows: unknown[], name: string): string | null =>
  (rows as Array<{ name: string; value: string }>).find((r) => r.name === name)?.value ?? null;

/** The read of the installed plugins of a type: those with a `version` in config_plugins. */
const installedRead = (site: Pick<PluginSite, 'access' | 'target'>, type: PluginType): Read => [
  `SELECT SUBSTRING(plugin, ?) AS name FROM ${t(site, MOODLE_TABLES.configPlugins)} WHERE name = 'version' AND plugin LIKE ? ORDER BY plugin`,
  [type.length + 2, `${type}\\_%`],
];
const namesOf = (rows: unknown[]) => (rows as Array<{ name: string }>).map((r) => r.name);

const configRead = (site: Pick<PluginSite, 'access' | 'target'>, names: readonly string[], lock: boolean): Read => [
  `SELECT name, value FROM ${t(site, MOODLE_TABLES.config)} WHERE name IN (?)${lockIf(lock)}`,
  [names],
];
const pluginConfigRead = (
  site: Pick<PluginSite, 'access' | 'target'>,
  where: string,
  binds: unknown[],
  lock: boolean,
): Read => [
  `SELECT plugin, name, value FROM ${t(site, MOODLE_TABLES.configPlugins)} WHERE ${where}${lockIf(lock)}`,
  binds,
];

/** add_to_config_log() with the site's actor and stores. */
function log(site: PluginSite, name: string, plugin: string | null, oldvalue: PhpValue, value: PhpValue): void {
  addToConfigLog(site.access, site.sql, site.target, { name, plugin, oldvalue, value }, site.stores, site.actor);
}

/** core_plugin_manager::reset_caches(): the plugin manager's cache purged. */
const PLUGIN_MANAGER: CacheChange = { definition: 'core/plugin_manager', purge: true };
const configEntry = (plugin: string): CacheChange => ({ definition: 'core/config', keys: [plugin] });

/** PHP's truthiness of a stored setting: false, '' and '0' are false. */
const truthy = (v: string | null) => v !== null && v !== '' && v !== '0';

/** increment_revision_number('course', 'cacherev', …): now, or one more where a revision is already at or past now. */
const bumpCacherev = (site: PluginSite, where: string, binds: unknown[]) =>
  site.sql.write(
    `UPDATE ${t(site, MOODLE_TABLES.course)} SET cacherev = (CASE WHEN cacherev IS NULL THEN ? WHEN cacherev < ? THEN ? ELSE cacherev + 1 END) WHERE ${where}`,
    [site.now, site.now, site.now, ...binds],
  );

/** mod and block: a `visible` flag in their own table (mod also hides and restores its course modules). */
function tableKind(table: typeof MOODLE_TABLES.modules | typeof MOODLE_TABLES.block): PluginKind {
  const isMod = table === MOODLE_TABLES.modules;
  return {
    states: ON_OFF,
    reads: (site, _type, lock) => [
      [`SELECT id, name, visible FROM ${t(site, table)} ORDER BY name${lockIf(lock)}`, []],
      configRead(site, ['bigbluebuttonbn_default_dpa_accepted', 'bigbluebuttonbn_server_url'], false),
    ],
    snapshot(site, type, [rows, bbb]) {
      const plugins = new Map((rows as Array<{ id: string; name: string; visible: number }>).map((r) => [r.name, r]));
      const states = new Map(
        [...plugins].map(
          ([name, r]) => [name, Number(r.visible) === 1 ? 'enabled' : 'disabled'] as [string, PluginState],
        ),
      );
      return {
        states,
        set(name, wanted) {
          const row = plugins.get(name);
          if (!row) throw new PluginRefusal(`${type}_${name} is not installed on ${site.target.host.shortname}`);
          const enabled = wanted === 'enabled' ? 1 : 0;
          if (Number(row.visible) === enabled) return [];
          if (
            isMod &&
            enabled &&
            name === 'bigbluebuttonbn' &&
            !truthy(settingOf(bbb as unknown[], 'bigbluebuttonbn_default_dpa_accepted')) &&
            !settingOf(bbb as unknown[], 'bigbluebuttonbn_server_url')
          ) {
            // mod_bigbluebuttonbn_pre_enable_plugin_actions() refuses until its data processing agreement is accepted.
            throw new PluginRefusal(
              `mod_bigbluebuttonbn needs its data processing agreement accepted on ${site.target.host.shortname} (bigbluebuttonbn_default_dpa_accepted) or a server of its own before it can be enabled`,
            );
          }
          site.sql.write(`UPDATE ${t(site, table)} SET visible = ? WHERE id = ?`, [enabled, row.id]);
          if (isMod) {
            const cm = t(site, MOODLE_TABLES.courseModules);
            if (enabled) {
              site.sql.write(`UPDATE ${cm} SET visible = 1 WHERE visibleold = 1 AND module = ?`, [row.id]);
              bumpCacherev(site, `id IN (SELECT DISTINCT course FROM ${cm} WHERE visible = 1 AND module = ?)`, [
                row.id,
              ]);
            } else {
              site.sql.write(`UPDATE ${cm} SET visibleold = visible, visible = 0 WHERE module = ?`, [row.id]);
              bumpCacherev(site, `id IN (SELECT DISTINCT course FROM ${cm} WHERE visibleold = 1 AND module = ?)`, [
                row.id,
              ]);
            }
          }
          log(site, isMod ? 'mod_visibility' : 'block_visibility', name, String(row.visible), enabled);
          row.visible = enabled;
          states.set(name, wanted);
          return [PLUGIN_MANAGER];
        },
      };
    },
  };
}

/** An ordered list as enable_plugin() keeps it: array_flip(explode(',')) drops repeats, keeps first places. */
const listOf = (value: string | null) => (value ? [...new Set(value.split(','))] : []);

interface ListRules {
  setting: string;
  /** What enable_plugin() logs: the setting's old and new text under 'core', or the flag before and after under the plugin's name. */
  logs: 'list' | 'flag';
  /** The log entry's name when it is not the setting's. */
  logName?: string;
  /** Always enabled, never listed (auth's manual and nologin). */
  always?: readonly string[];
  /** Only installed plugins are kept (set_enabled_plugins intersects with them). */
  installedOnly?: boolean;
  /** What is put back when the list would be empty (at least one editor stays). */
  fallback?: string;
  /** enrol marks the system context dirty. */
  dirtiesSystem?: boolean;
}

/** Types enabled by being listed in a core setting, in order: a plugin enabled again is appended. */
function listKind(rules: ListRules): PluginKind {
  return {
    states: ON_OFF,
    reads: (site, type, lock) => [
      configRead(site, [rules.setting, 'registerauth', 'sessiontimeout'], lock),
      installedRead(site, type),
      // Only a write of a type that marks the system context dirty needs to know whether the flag is there.
      ...(rules.dirtiesSystem && lock
        ? [
            [
              `SELECT id FROM ${t(site, MOODLE_TABLES.cacheFlags)} WHERE flagtype = ? AND name = '/1' LIMIT 1`,
              [DIRTY_CONTEXTS],
            ] as Read,
          ]
        : []),
    ],
    snapshot(site, type, [config, installedRows, flag]) {
      let current = settingOf(config as unknown[], rules.setting);
      let registerauth = settingOf(config as unknown[], 'registerauth');
      const installed = namesOf(installedRows as unknown[]);
      const states = new Map<string, PluginState>();
      const refresh = () => {
        const listed = new Set([...listOf(current), ...(rules.always ?? [])]);
        for (const name of installed) states.set(name, listed.has(name) ? 'enabled' : 'disabled');
      };
      refresh();
      let flagged = (flag ?? []).length > 0;
      return {
        states,
        set(name, wanted) {
          if (!installed.includes(name))
            throw new PluginRefusal(`${type}_${name} is not installed on ${site.target.host.shortname}`);
          if (rules.always?.includes(name)) {
            if (wanted === 'enabled') return [];
            throw new PluginRefusal(`${type}_${name} is always enabled and cannot be disabled`);
          }
          const enabled = wanted === 'enabled';
          let plugins = listOf(current);
          if (enabled === plugins.includes(name)) return [];
          const changes: CacheChange[] = [configEntry('core'), PLUGIN_MANAGER];
          plugins = enabled ? [...plugins, name] : plugins.filter((p) => p !== name);
          if (!enabled && type === 'auth' && name === registerauth) {
            storeSetting(site.access, site.sql, site.target, { name: 'registerauth' }, '', registerauth, site.stores);
            registerauth = '';
          }
          if (rules.fallback && plugins.length === 0) plugins = [rules.fallback];
          if (rules.installedOnly) plugins = plugins.filter((p) => installed.includes(p));
          const next = plugins.join(',');
          if (rules.logs === 'list') log(site, rules.logName ?? rules.setting, 'core', current ?? '', next);
          else log(site, rules.logName ?? rules.setting, name, !enabled, enabled ? 1 : 0);
          storeSetting(site.access, site.sql, site.target, { name: rules.setting }, next, current, site.stores);
          current = next;
          if (rules.dirtiesSystem)
            flagged = markSystemDirty(site, settingOf(config as unknown[], 'sessiontimeout'), flagged);
          refresh();
          return changes;
        },
      };
    },
  };
}

const DIRTY_CONTEXTS = 'accesslib/dirtycontexts';

/**
 * context_system::mark_dirty(): set_cache_flag('accesslib/dirtycontexts', '/1', 1, now + sessiontimeout), updating
 * the site's first such flag or adding one. True once the flag is there.
 */
function markSystemDirty(site: PluginSite, sessiontimeout: string | null, flagged: boolean): true {
  const expiry = site.now + Number(sessiontimeout ?? 28_800);
  const flags = t(site, MOODLE_TABLES.cacheFlags);
  if (flagged)
    site.sql.write(
      `UPDATE ${flags} SET value = '1', expiry = ?, timemodified = ? WHERE flagtype = ? AND name = '/1' ORDER BY id LIMIT 1`,
      [expiry, site.now, DIRTY_CONTEXTS],
    );
  else
    site.sql.write(`INSERT INTO ${flags} (flagtype, name, timemodified, value, expiry) VALUES (?, '/1', ?, '1', ?)`, [
      DIRTY_CONTEXTS,
      site.now,
      expiry,
    ]);
  return true;
}

/** TEXTFILTER_ON, TEXTFILTER_OFF and TEXTFILTER_DISABLED, the `active` of filter_active at the system context. */
const FILTER_ACTIVE: Record<PluginState, number> = { enabled: 1, available: -1, disabled: -9999 };
const filterState = (active: number): PluginState =>
  active === 1 ? 'enabled' : active === -1 ? 'available' : 'disabled';

/** Filters: filter_set_global_state() at the system context, with its sortorder renumbering. */
const filterKind: PluginKind = {
  states: ['enabled', 'available', 'disabled'],
  reads: (site, type, lock) => [
    [
      `SELECT id, filter, active, sortorder FROM ${t(site, MOODLE_TABLES.filterActive)} WHERE contextid = 1 ORDER BY sortorder, id${lockIf(lock)}`,
      [],
    ],
    installedRead(site, type),
    configRead(site, ['stringfilters', 'filterall'], lock),
  ],
  snapshot(site, type, [rows, installedRows, config]) {
    const filters = (rows as Array<{ id: string | null; filter: string; active: number; sortorder: number }>).map(
      (r) => ({ ...r, active: Number(r.active), sortorder: Number(r.sortorder) }),
    );
    const installed = namesOf(installedRows as unknown[]);
    let stringfilters = settingOf(config as unknown[], 'stringfilters');
    let filterall = settingOf(config as unknown[], 'filterall');
    const states = new Map<string, PluginState>(installed.map((name) => [name, 'disabled']));
    for (const f of filters) states.set(f.filter, filterState(f.active));
    const table = t(site, MOODLE_TABLES.filterActive);
    return {
      states,
      set(name, wanted) {
        if (!installed.includes(name))
          throw new PluginRefusal(`${type}_${name} is not installed on ${site.target.host.shortname}`);
        const state = FILTER_ACTIVE[wanted];
        const existing = filters.find((f) => f.filter === name);
        if (existing?.active === state || (!existing && wanted === 'disabled')) return [];
        // As filter_set_global_state() groups them: enabled ones in their order, then the disabled ones.
        const on = filters.filter((f) => f.active !== FILTER_ACTIVE.disabled);
        const off = filters.filter((f) => f.active === FILTER_ACTIVE.disabled);
        if (existing) {
          log(site, 'filter_active', name, String(existing.active), state);
          site.sql.write(`UPDATE ${table} SET active = ? WHERE id = ?`, [state, existing.id]);
          const wasOff = existing.active === FILTER_ACTIVE.disabled;
          existing.active = state;
          if (!wasOff && state === FILTER_ACTIVE.disabled) off.unshift(...on.splice(on.indexOf(existing), 1));
          if (wasOff && state !== FILTER_ACTIVE.disabled) on.push(...off.splice(off.indexOf(existing), 1));
        } else {
          log(site, 'filter_active', name, '', state);
          site.sql.write(`INSERT INTO ${table} (filter, contextid, active, sortorder) VALUES (?, 1, ?, 99999)`, [
            name,
            state,
          ]);
          const added = { id: null, filter: name, active: state, sortorder: 99999 };
          (state === FILTER_ACTIVE.disabled ? off : on).push(added);
        }
        // The disabled ones follow the enabled ones, by name in natural order; each sortorder that moved is written.
        off.sort((a, b) => a.filter.localeCompare(b.filter, 'en', { numeric: true }));
        filters.splice(0, filters.length, ...on, ...off);
        filters.forEach((f, i) => {
          if (f.sortorder === i + 1) return;
          f.sortorder = i + 1;
          if (f.id === null)
            site.sql.write(`UPDATE ${table} SET sortorder = ? WHERE contextid = 1 AND filter = ?`, [i + 1, f.filter]);
          else site.sql.write(`UPDATE ${table} SET sortorder = ? WHERE id = ?`, [i + 1, f.id]);
        });
        if (wanted === 'disabled') {
          // filter_set_applies_to_strings(name, false), which also drops filters that are not installed.
          const before = listOf(stringfilters);
          const after = before.filter((f) => f !== name && installed.includes(f));
          if (after.join(',') !== before.join(',')) {
            storeSetting(
              site.access,
              site.sql,
              site.target,
              { name: 'stringfilters' },
              after.join(','),
              stringfilters,
              site.stores,
            );
            stringfilters = after.join(',');
          }
        }
        // reset_text_filters_cache(): filterall is whether a string filter is installed.
        const all = listOf(stringfilters).some((f) => installed.includes(f)) ? '1' : '0';
        if (all !== filterall) {
          storeSetting(site.access, site.sql, site.target, { name: 'filterall' }, all, filterall, site.stores);
          filterall = all;
        }
        states.set(name, wanted);
        return [configEntry('core'), PLUGIN_MANAGER];
      },
    };
  },
};

/**
 * A flag in config_plugins: `<flag>` = 1 under the plugin when disabled, the row deleted on enable (qtypes use
 * question/<name>_disabled); or, for AI plugins, `enabled` = 1 when enabled, deleted on disable.
 */
function flagKind(layout: 'disabled' | 'qtype' | 'enabled'): PluginKind {
  const ref = (type: PluginType, name: string): SettingRef =>
    layout === 'qtype'
      ? { plugin: 'question', name: `${name}_disabled` }
      : { plugin: `${type}_${name}`, name: layout === 'enabled' ? 'enabled' : 'disabled' };
  return {
    states: ON_OFF,
    reads: (site, type, lock) => [
      layout === 'qtype'
        ? pluginConfigRead(site, "plugin = 'question' AND name LIKE ?", ['%\\_disabled'], lock)
        : pluginConfigRead(site, 'plugin LIKE ? AND name = ?', [`${type}\\_%`, layout], lock),
      installedRead(site, type),
      pluginConfigRead(site, "plugin = 'moodlecourse' AND name = 'format'", [], false),
    ],
    snapshot(site, type, [flags, installedRows, defaults]) {
      const values = new Map(
        (flags as Array<{ plugin: string; name: string; value: string }>).map((r) => [
          `${r.plugin}/${r.name}`,
          r.value,
        ]),
      );
      const installed = namesOf(installedRows as unknown[]);
      const settingValue = (name: string) => {
        const r = ref(type, name);
        return values.get(`${r.plugin}/${r.name}`) ?? null;
      };
      const stateOf = (name: string): PluginState =>
        (layout === 'enabled' ? truthy(settingValue(name)) : !truthy(settingValue(name))) ? 'enabled' : 'disabled';
      const states = new Map(installed.map((name) => [name, stateOf(name)] as [string, PluginState]));
      return {
        states,
        set(name, wanted) {
          if (!installed.includes(name))
            throw new PluginRefusal(`${type}_${name} is not installed on ${site.target.host.shortname}`);
          const r = ref(type, name);
          const old = settingValue(name);
          const enabled = wanted === 'enabled';
          if (layout === 'enabled') {
            // aiprovider/aiplacement: is_plugin_enabled() before, the wanted flag after, both as booleans.
            if (truthy(old) === enabled) return [];
            storeSetting(site.access, site.sql, site.target, r, enabled ? '1' : null, old, site.stores);
            log(site, 'enabled', r.plugin as string, truthy(old), enabled);
          } else {
            const disabled = !enabled;
            // `$oldvalue == false && $disabled` sets the flag; `$oldvalue != false && !$disabled` removes it.
            if (truthy(old) === disabled) return [];
            if (disabled && type === 'format' && settingOf(defaults as unknown[], 'format') === name) {
              throw new PluginRefusal(
                `format_${name} is the default course format on ${site.target.host.shortname} and cannot be disabled`,
              );
            }
            storeSetting(site.access, site.sql, site.target, r, disabled ? '1' : null, old, site.stores);
            log(site, r.name, r.plugin as string, old ?? false, disabled);
          }
          if (layout === 'enabled' ? enabled : !enabled) values.set(`${r.plugin}/${r.name}`, '1');
          else values.delete(`${r.plugin}/${r.name}`);
          states.set(name, wanted);
          return [configEntry(r.plugin as string), PLUGIN_MANAGER];
        },
      };
    },
  };
}

/** Question behaviours: question/disabledbehaviours lists the disabled ones; enabling removes a name, disabling appends it. */
const qbehaviourKind: PluginKind = {
  states: ON_OFF,
  reads: (site, type, lock) => [
    pluginConfigRead(site, "plugin = 'question' AND name = 'disabledbehaviours'", [], lock),
    installedRead(site, type),
  ],
  snapshot(site, type, [rows, installedRows]) {
    let current = (rows as Array<{ value: string }>)[0]?.value ?? null;
    const installed = namesOf(installedRows as unknown[]);
    const states = new Map<string, PluginState>();
    const refresh = () => {
      const disabled = new Set(listOf(current));
      for (const name of installed) states.set(name, disabled.has(name) ? 'disabled' : 'enabled');
    };
    refresh();
    return {
      states,
      set(name, wanted) {
        if (!installed.includes(name))
          throw new PluginRefusal(`${type}_${name} is not installed on ${site.target.host.shortname}`);
        const list = listOf(current);
        const enabled = wanted === 'enabled';
        if (enabled !== list.includes(name)) return [];
        const next = (enabled ? list.filter((p) => p !== name) : [...list, name]).join(',');
        log(site, 'disabledbehaviours', 'question', current ?? false, next);
        storeSetting(
          site.access,
          site.sql,
          site.target,
          { plugin: 'question', name: 'disabledbehaviours' },
          next,
          current,
          site.stores,
        );
        current = next;
        refresh();
        return [configEntry('question'), PLUGIN_MANAGER];
      },
    };
  },
};

const KINDS: Record<PluginType, PluginKind> = {
  mod: tableKind(MOODLE_TABLES.modules),
  block: tableKind(MOODLE_TABLES.block),
  auth: listKind({ setting: 'auth', logs: 'list', always: ['manual', 'nologin'] }),
  enrol: listKind({ setting: 'enrol_plugins_enabled', logs: 'flag', dirtiesSystem: true }),
  editor: listKind({ setting: 'texteditors', logs: 'flag', logName: 'editor_visibility', fallback: 'textarea' }),
  antivirus: listKind({ setting: 'antiviruses', logs: 'list' }),
  webservice: listKind({ setting: 'webserviceprotocols', logs: 'list' }),
  fileconverter: listKind({ setting: 'converter_plugins_sortorder', logs: 'flag', installedOnly: true }),
  paygw: listKind({ setting: 'paygw_plugins_sortorder', logs: 'flag', installedOnly: true }),
  filter: filterKind,
  qtype: flagKind('qtype'),
  qbehaviour: qbehaviourKind,
  format: flagKind('disabled'),
  customfield: flagKind('disabled'),
  dataformat: flagKind('disabled'),
  contenttype: flagKind('disabled'),
  availability: flagKind('disabled'),
  qbank: flagKind('disabled'),
  communication: flagKind('disabled'),
  aiprovider: flagKind('enabled'),
  aiplacement: flagKind('enabled'),
};

/** The states a plugin of this type can be set to. */
export const statesOf = (type: PluginType) => KINDS[type].states;

/**
 * Reads one type's plugins on a site in one round trip. To write (`lock`), the rows are locked and the log store's
 * settings and the main admin (whose name the admin pages log changes in) are read with them; an unlocked snapshot
 * is for reading only.
 */
export async function readType(
  access: MoodleAccess,
  sql: Statements,
  target: MoodleTarget,
  type: PluginType,
  lock: boolean,
): Promise<TypeSnapshot> {
  const kind = KINDS[type];
  const reads = kind.reads({ access, target }, type, lock);
  const rows = (await sql.readAll([
    ...reads,
    ...(lock ? [logStoresRead(access, target), adminRead(access, target)] : []),
  ])) as unknown[][];
  const site: PluginSite = {
    access,
    sql,
    target,
    now: Math.floor(Date.now() / 1000),
    stores: lock
      ? logStoresOf(rows[reads.length] as Array<{ plugin: string; value: string }>)
      : { enabledStores: null, jsonformat: null },
    actor: lock ? adminOf(rows[reads.length + 1] as Array<{ id: string }>) : CLI_ACTOR,
  };
  return kind.snapshot(site, type, rows.slice(0, reads.length) as unknown[][]);
}
