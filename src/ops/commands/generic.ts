import type { PoolConnection } from 'mysql2/promise';
import {
  defineCommand,
  FORCED_MESSAGE,
  type ApplyOutcome,
  type CommandContext,
  type CommandDef,
  type Params,
  type ParamSpec,
  type ParamValues,
  type PlannedTarget,
  type TargetPreview,
} from './command.ts';
import { invalidateSettingCache, purgeAll, purgeDataCache, PURGE_THROUGH_MOODLE } from '../moodle/cache.ts';
import {
  deleteSetting,
  logStoresOf,
  PLUGIN_NAME,
  SETTING_NAME,
  logStoresRead,
  mainAdmin,
  pluginSettingsOf,
  pluginSettingsRead,
  readForWrite,
  readPluginSettings,
  readSetting,
  writeSetting,
  type SettingRef,
} from '../moodle/config.ts';
import { isSensitiveSetting, maskIf } from '../moodle/sensitive.ts';
import { type MoodleTarget, TargetError } from '../moodle/target.ts';
import { compileCondition, SqlRefusal, type CompiledCondition } from '../moodle/sql-parse.ts';
import { isProtectedTable } from '../moodle/tables.ts';
import {
  clearScheduledMaintenance,
  CLI_MAINTENANCE_FILE,
  maintenanceOf,
  maintenanceRead,
  maintenanceText,
  parseMaintenanceText,
  readMaintenance,
  removeMaintenanceFile,
  wantedMaintenance,
  writeMaintenanceFile,
} from '../moodle/maintenance.ts';
import { PhpError } from '../moodle/php.ts';
import { isForced, sitePaths } from '../moodle/code-config.ts';
import { ParamError } from './params.ts';
import { onceForSource } from './source-reads.ts';
import { COPY_FROM_SOURCE } from './traits.ts';

/**
 * Writes one setting with compare-and-set against the value the plan read: a target already at the new value is
 * "already applied" (so a redelivered job changes nothing), one changed by someone else since the plan is a conflict.
 */
async function applySetting(
  ctx: CommandContext,
  target: MoodleTarget,
  ref: SettingRef,
  value: string | null,
  planned: PlannedTarget,
): Promise<ApplyOutcome> {
  const sensitive = isSensitiveSetting(ref.name, ref.plugin);
  // Two round trips: the locked read (with the log store settings), then the write, its log rows and the commit.
  const outcome = await ctx.moodle.withStatements(target, async (sql): Promise<ApplyOutcome> => {
    const { current, stores } = await readForWrite(ctx.moodle, sql, target, ref);
    const shown = { old: maskIf(sensitive, current), new: maskIf(sensitive, value) };
    if (current === value) return { status: 'already_applied', ...shown };
    if (!planned.matchesPlan(current)) {
      return {
        status: 'conflict',
        ...shown,
        message: 'changed by someone else since the plan was made; nothing written',
      };
    }
    await planned.beforeWrite(current);
    if (value === null) deleteSetting(ctx.moodle, sql, target, ref, current, stores);
    else writeSetting(ctx.moodle, sql, target, ref, value, current, stores);
    return { status: 'applied', ...shown };
  });
  if (outcome.status === 'applied') {
    Object.assign(outcome, await invalidateSettingCache(ctx, target, ref.plugin ?? 'core'));
    outcome.forced = await forced(ctx, target, ref);
  }
  return outcome;
}

/** Whether the target's code tree forces the setting (read on its node; never known without nodes). */
async function forced(ctx: CommandContext, target: MoodleTarget, ref: SettingRef): Promise<boolean> {
  const codeRoot = ctx.codeRoot(target);
  return codeRoot !== undefined && isForced(codeRoot, { kind: target.host.kind, wwwroot: target.host.wwwroot }, ref);
}

async function previewSetting(
  ctx: CommandContext,
  target: MoodleTarget,
  ref: SettingRef,
  value: string | null,
): Promise<TargetPreview> {
  const sensitive = isSensitiveSetting(ref.name, ref.plugin);
  const current = await ctx.moodle.withStatements(target, (sql) => readSetting(ctx.moodle, sql, target, ref), false);
  const notes = [current === value ? 'already set' : '', (await forced(ctx, target, ref)) ? FORCED_MESSAGE : ''].filter(
    Boolean,
  );
  return { old: current, new: value, sensitive, note: notes.length > 0 ? notes.join('; ') : undefined };
}

/** `plugin/name`, split at the last slash as VMoodle's SetPluginConfig does. */
function pluginRef(pkey: string): SettingRef {
  const at = pkey.lastIndexOf('/');
  return { plugin: pkey.slice(0, at), name: pkey.slice(at + 1) };
}

/**
 * What setting one value is: a reversible, repeatable write with nothing to read from a source, run where the
 * instance's cache folder is, so that Moodle sees it.
 */
const SETTING_WRITE = {
  destructive: false,
  reversible: true,
  idempotent: true,
  needsSource: false,
  writes: true,
  runsOn: 'node',
  phpScripts: PURGE_THROUGH_MOODLE,
} as const;

const unsetParam = {
  name: 'unset',
  type: 'boolean',
  label: 'Remove the setting',
  help: 'delete the setting instead of writing a value (how a revert removes a setting that did not exist)',
  default: '0',
} as const;

export const setConfig = defineCommand({
  name: 'generic/setconfig',
  category: 'generic',
  summary: "Set a core setting (set_config), with Moodle's config_log row",
  params: [
    {
      name: 'key',
      type: 'text',
      label: 'Setting',
      validate: (v) => (SETTING_NAME.test(v) ? undefined : `'${v}' is not a setting name`),
    },
    { name: 'value', type: 'ltext', label: 'Value', default: '' },
    unsetParam,
  ],
  ...SETTING_WRITE,
  sensitiveParams: (p) => (isSensitiveSetting(p.key) ? ['value'] : []),
  preview: (ctx, target, p) => previewSetting(ctx, target, { name: p.key }, p.unset === '1' ? null : p.value),
  apply: (ctx, target, p, planned) =>
    applySetting(ctx, target, { name: p.key }, p.unset === '1' ? null : p.value, planned),
  revertParams: (p, old) => (old === null ? { ...p, value: '', unset: '1' } : { ...p, value: old, unset: '0' }),
});

export const setPluginConfig = defineCommand({
  name: 'generic/setpluginconfig',
  category: 'generic',
  summary: 'Set a plugin setting (set_config with a plugin), as plugin/name',
  params: [
    {
      name: 'pkey',
      type: 'text',
      label: 'Plugin setting (plugin/name)',
      validate: (v) => {
        const ref = pluginRef(v);
        return PLUGIN_NAME.test(ref.plugin as string) && SETTING_NAME.test(ref.name)
          ? undefined
          : `'${v}' is not plugin/name`;
      },
    },
    { name: 'pvalue', type: 'ltext', label: 'Value', default: '' },
    unsetParam,
  ],
  ...SETTING_WRITE,
  sensitiveParams: (p) => {
    const ref = pluginRef(p.pkey);
    return isSensitiveSetting(ref.name, ref.plugin) ? ['pvalue'] : [];
  },
  preview: (ctx, target, p) => previewSetting(ctx, target, pluginRef(p.pkey), p.unset === '1' ? null : p.pvalue),
  apply: (ctx, target, p, planned) =>
    applySetting(ctx, target, pluginRef(p.pkey), p.unset === '1' ? null : p.pvalue, planned),
  revertParams: (p, old) => (old === null ? { ...p, pvalue: '', unset: '1' } : { ...p, pvalue: old, unset: '0' }),
});

export const maintenance = defineCommand({
  name: 'generic/maintenance',
  category: 'generic',
  summary: 'Turn maintenance mode on or off, with its message; off also ends CLI maintenance and a scheduled one',
  params: [
    { name: 'mmode', type: 'boolean', label: 'Maintenance on' },
    { name: 'mmessage', type: 'ltext', label: 'Message shown to users (replaces the current one)', default: '' },
    {
      name: 'climaintenance',
      type: 'boolean',
      label: `Also CLI maintenance (dataroot/${CLI_MAINTENANCE_FILE}): no web access at all`,
      default: '0',
    },
  ],
  ...SETTING_WRITE,
  async preview(ctx, target, p) {
    const { state: current } = await ctx.moodle.withStatements(
      target,
      (sql) => readMaintenance(ctx.moodle, sql, target),
      false,
    );
    const old = maintenanceText(current);
    const wanted = maintenanceText(wantedMaintenance(current, p.mmode === '1', p.mmessage, p.climaintenance === '1'));
    return {
      old,
      new: wanted,
      note: old === wanted ? 'already set' : target.dataroot ? undefined : 'the CLI file is not known: no dataroot',
    };
  },
  async apply(ctx, target, p, planned) {
    const outcome = await ctx.moodle.withStatements(target, async (sql): Promise<ApplyOutcome> => {
      const [rows, storeRows] = await sql.readAll<[{ name: string; value: string }, { plugin: string; value: string }]>(
        [maintenanceRead(ctx.moodle, target, true), logStoresRead(ctx.moodle, target)],
      );
      const { state: current, settings } = await maintenanceOf(target, rows);
      const stores = logStoresOf(storeRows);
      const wanted = wantedMaintenance(current, p.mmode === '1', p.mmessage, p.climaintenance === '1');
      const shown = { old: maintenanceText(current), new: maintenanceText(wanted) };
      if (shown.old === shown.new) return { status: 'already_applied', ...shown };
      if (!planned.matchesPlan(shown.old))
        return {
          status: 'conflict',
          ...shown,
          message: 'changed by someone else since the plan was made; nothing written',
        };
      if (wanted.file !== current.file && !target.dataroot)
        throw new TargetError(
          'the CLI maintenance file needs the dataroot, which this worker cannot reach; nothing written',
        );
      await planned.beforeWrite(shown.old);
      // Web maintenance is saved as the admin's maintenance page saves it: each changed setting, logged as the admin's.
      const admin =
        wanted.enabled !== current.enabled || wanted.message !== current.message
          ? await mainAdmin(ctx.moodle, sql, target)
          : undefined;
      if (wanted.enabled !== current.enabled)
        writeSetting(
          ctx.moodle,
          sql,
          target,
          { name: 'maintenance_enabled' },
          wanted.enabled ? '1' : '0',
          settings.maintenance_enabled,
          stores,
          admin,
        );
      if (wanted.message !== current.message)
        writeSetting(
          ctx.moodle,
          sql,
          target,
          { name: 'maintenance_message' },
          wanted.message,
          settings.maintenance_message,
          stores,
          admin,
        );
      if (current.later) clearScheduledMaintenance(ctx.moodle, sql, target);
      if (wanted.file && !current.file) {
        const { filePermissions } = await sitePaths(ctx.codeRoot(target), target.dataroot as string);
        await writeMaintenanceFile(ctx.moodle, sql, target, wanted.message, filePermissions);
      }
      if (!wanted.file && current.file) await removeMaintenanceFile(target);
      return { status: 'applied', ...shown };
    });
    if (outcome.status === 'applied') Object.assign(outcome, await invalidateSettingCache(ctx, target, 'core'));
    return outcome;
  },
  revertParams: (p, old) => {
    const before = parseMaintenanceText(old);
    return {
      ...p,
      mmode: before.enabled ? '1' : '0',
      mmessage: before.message,
      climaintenance: before.file ? '1' : '0',
    };
  },
});

export const purgeCaches = defineCommand({
  name: 'generic/purgecaches',
  category: 'generic',
  summary:
    "Purge all caches, as purge_caches(): revisions moved forward, cache and localcache emptied; via=php runs Moodle's own",
  params: [
    {
      name: 'via',
      type: 'enum',
      choices: ['sql', 'php'],
      default: 'sql',
      label: 'How',
      help: "sql: the revisions, every course's cacherev and the cache folders, as purge_caches() does (moodle-facts §2.5); php: Moodle's own purge_caches through VMoodle's CLI wrapper on the instance's node",
    },
  ],
  destructive: false,
  reversible: false,
  idempotent: true,
  needsSource: false,
  writes: true,
  runsOn: (p) => (p.via === 'php' ? 'php' : 'node'),
  // VMoodle's wrapper takes --host only and purges everything (purge_all_caches()).
  phpScripts: PURGE_THROUGH_MOODLE,
  preview: async (_ctx, _target, p) => ({
    note:
      p.via === 'php'
        ? "Moodle's purge_caches (VMoodle's CLI wrapper)"
        : 'revisions, course cacherev and cache folders',
  }),
  async apply(ctx, target, p) {
    if (p.via === 'php') {
      const run = await ctx.php(target, 'purge_caches');
      if (!run.ok) throw new PhpError(run.message);
      return {
        status: 'applied',
        message: `${run.message} (${(run.durationMs / 1000).toFixed(1)} s)`,
        cachePurged: true,
      };
    }
    return { status: 'applied', ...(await purgeAll(ctx, target)) };
  },
});

/** A source's plugin settings, read once per run however many targets receive them. */
const readSourcePlugin = (ctx: CommandContext, plugin: string) =>
  onceForSource(ctx, `plugin-settings:${plugin}`, () =>
    ctx.moodle.withStatements(ctx.source, (sql) => readPluginSettings(ctx.moodle, sql, ctx.source, plugin), false),
  );

export const copyFullPluginConfig = defineCommand({
  name: 'generic/copyfullpluginconfig',
  category: 'generic',
  summary: "Copy all of a plugin's settings from the source host (the master unless --fromhost), except its version",
  params: [
    {
      name: 'plugin',
      type: 'text',
      label: 'Plugin (frankenstyle, e.g. auth_cas)',
      validate: (v) => (PLUGIN_NAME.test(v) ? undefined : `'${v}' is not a plugin name`),
    },
  ],
  destructive: false,
  ...COPY_FROM_SOURCE,
  async preview(ctx, target, p) {
    const source = await readSourcePlugin(ctx, p.plugin);
    const current = await ctx.moodle.withStatements(
      target,
      (sql) => readPluginSettings(ctx.moodle, sql, target, p.plugin),
      false,
    );
    const changes = [...source].filter(([name, value]) => name !== 'version' && current.get(name) !== value).length;
    return { note: `${changes} of ${source.size - (source.has('version') ? 1 : 0)} settings differ` };
  },
  async apply(ctx, target, p, planned) {
    const plugin = p.plugin;
    const source = await readSourcePlugin(ctx, plugin);
    if (source.size === 0) throw new TargetError(`the source host has no settings for plugin ${plugin}`);
    const written = await ctx.moodle.withStatements(target, async (sql) => {
      const [rows, storeRows] = await sql.readAll<[{ name: string; value: string }, { plugin: string; value: string }]>(
        [pluginSettingsRead(ctx.moodle, target, plugin, true), logStoresRead(ctx.moodle, target)],
      );
      const current = pluginSettingsOf(rows);
      const stores = logStoresOf(storeRows);
      let count = 0;
      for (const [name, value] of source) {
        if (name === 'version' || current.get(name) === value) continue;
        writeSetting(ctx.moodle, sql, target, { plugin, name }, value, current.get(name) ?? null, stores);
        count++;
      }
      if (count > 0) await planned.beforeWrite(null);
      return count;
    });
    if (written === 0) return { status: 'already_applied', message: 'every setting already matches the source' };
    return {
      status: 'applied',
      message: `${written} setting${written === 1 ? '' : 's'} copied`,
      ...(await invalidateSettingCache(ctx, target, plugin)),
    };
  },
});

const TABLE_NAME = /^[a-z][a-z0-9_]{0,52}$/;
const COLUMN = /^[a-z0-9_]{1,64}$/i;

function tableProblem(table: string): string | undefined {
  if (!TABLE_NAME.test(table)) return `'${table}' is not a Moodle table name`;
  if (isProtectedTable(table)) return `${table} holds secrets or identity and is never copied`;
  return undefined;
}

/** The rows a copy reads from its source: the condition checked against the source table's own columns. */
interface SourceQuery {
  table: string;
  where: CompiledCondition | undefined;
  /** How many rows it selects now, for the plan's preview. */
  matching: number;
}

const whereSql = (where: CompiledCondition | undefined) => (where ? ` WHERE ${where.sql}` : '');

const COPY_PARAMS = [
  { name: 'table', type: 'text', label: 'Table (without prefix)', validate: tableProblem },
  {
    name: 'select',
    type: 'text',
    label: "Condition on the source rows, over the table's own columns (empty: every row)",
    default: '',
    binds: true,
    validate: (v: string, all: Params) => {
      if (!v.trim()) return undefined;
      try {
        compileCondition(v, { table: all.table ?? '', params: all });
        return undefined;
      } catch (err) {
        if (err instanceof SqlRefusal) return err.message;
        throw err;
      }
    },
  },
] as const satisfies readonly ParamSpec[];

type CopyParams = ParamValues<typeof COPY_PARAMS>;

/** A source table's query (and how many rows it selects) is worked out once per run, however many targets receive its rows. */
function sourceQuery(ctx: CommandContext, p: CopyParams): Promise<SourceQuery> {
  return onceForSource(ctx, `copy:${JSON.stringify(p)}`, async () => {
    const table = ctx.moodle.table(ctx.source, p.table);
    const columns = await ctx.moodle.withConnection(ctx.source, async (conn) => {
      const [rows] = await conn.query(
        'SELECT COLUMN_NAME AS c FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?',
        [ctx.source.db.database, ctx.source.db.prefix + p.table],
      );
      return new Set((rows as Array<{ c: string }>).map((r) => r.c.toLowerCase()));
    });
    if (columns.size === 0) throw new ParamError(`generic/copytable: table: the source host has no table ${p.table}`);
    let where: CompiledCondition | undefined;
    try {
      where = p.select.trim() ? compileCondition(p.select, { table: p.table, columns, params: p }) : undefined;
    } catch (err) {
      if (err instanceof SqlRefusal) throw new ParamError(`generic/copytable: select: ${err.message}`);
      throw err;
    }
    const matching = await ctx.moodle.withConnection(ctx.source, (conn) =>
      countRows(conn, `${table}${whereSql(where)}`, where?.binds ?? []),
    );
    return { table, where, matching };
  });
}

export const copyTable = defineCommand({
  name: 'generic/copytable',
  category: 'generic',
  rbacCategory: 'sql',
  summary: "Replace a table's rows on the targets with the source host's rows matching a condition",
  params: COPY_PARAMS,

  destructive: true,
  reversible: false,
  idempotent: false,
  needsSource: true,
  writes: true,
  runsOn: 'node',
  phpScripts: PURGE_THROUGH_MOODLE,
  async check(ctx, p) {
    await sourceQuery(ctx, p);
  },
  async preview(ctx, target, p) {
    const { matching } = await sourceQuery(ctx, p);
    const deleted = await ctx.moodle.withConnection(target, (conn) =>
      countRows(conn, ctx.moodle.table(target, p.table), []),
    );
    return { note: `delete ${deleted} rows, insert ${matching} rows` };
  },
  async apply(ctx, target, p) {
    const query = await sourceQuery(ctx, p);
    const rows = await ctx.moodle.withConnection(ctx.source, async (conn) => {
      await conn.query('START TRANSACTION READ ONLY');
      try {
        const [result] = await conn.query(
          `SELECT * FROM ${query.table}${whereSql(query.where)}`,
          query.where?.binds ?? [],
        );
        return result as Array<Record<string, unknown>>;
      } finally {
        await conn.query('COMMIT');
      }
    });
    const table = ctx.moodle.table(target, p.table);
    await ctx.moodle.withTransaction(target, async (conn) => {
      await conn.query(`DELETE FROM ${table}`);
      if (rows.length === 0) return;
      const columns = Object.keys(rows[0] as object);
      const bad = columns.find((c) => !COLUMN.test(c));
      if (bad) throw new TargetError(`unexpected column name ${bad}`);
      const list = columns.map((c) => `\`${c}\``).join(', ');
      for (let i = 0; i < rows.length; i += 500) {
        const chunk = rows.slice(i, i + 500);
        await conn.query(`INSERT INTO ${table} (${list}) VALUES ?`, [chunk.map((r) => columns.map((c) => r[c]))]);
      }
    });
    return { status: 'applied', message: `${rows.length} records imported.`, ...(await purgeDataCache(ctx, target)) };
  },
});

async function countRows(conn: PoolConnection, from: string, binds: unknown[]): Promise<number> {
  const [rows] = await conn.query(`SELECT COUNT(*) AS n FROM ${from}`, binds);
  return Number((rows as Array<{ n: number }>)[0]?.n);
}

export const GENERIC_COMMANDS: readonly CommandDef[] = [
  maintenance,
  purgeCaches,
  setConfig,
  setPluginConfig,
  copyFullPluginConfig,
  copyTable,
];
