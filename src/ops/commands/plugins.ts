import { defineCommand, type CommandContext, type CommandDef } from './command.ts';
import { invalidateCaches, PURGE_THROUGH_MOODLE } from '../moodle/cache.ts';
import type { CacheChange } from '../moodle/muc.ts';
import {
  parsePlugin,
  PLUGIN_TYPES,
  readType,
  statesOf,
  WANTED_STATES,
  type PluginState,
  type PluginType,
} from '../moodle/plugin-states.ts';
import type { MoodleTarget } from '../moodle/target.ts';
import { onceForSource } from './source-reads.ts';
import { COPY_FROM_SOURCE, READ_ONLY } from './traits.ts';

const STATE_WORDS = Object.keys(WANTED_STATES) as Array<keyof typeof WANTED_STATES>;
const wordOf = (state: PluginState) => STATE_WORDS.find((w) => WANTED_STATES[w] === state) as string;

/** A type's plugin states on a site, unlocked (previews, compare, the source of a sync). */
const statesOn = (ctx: CommandContext, target: MoodleTarget, type: PluginType) =>
  ctx.moodle.withStatements(
    target,
    async (sql) => (await readType(ctx.moodle, sql, target, type, false)).states,
    false,
  );

const pluginParam = {
  name: 'plugin',
  type: 'text',
  label: 'Plugin (frankenstyle, e.g. mod_chat or filter/tex)',
  validate: (v: string) =>
    parsePlugin(v) ? undefined : `'${v}' is not a plugin of a type whose state can be set (${PLUGIN_TYPES.join(', ')})`,
} as const;

const typeParam = { name: 'plugintype', type: 'enum', label: 'Plugin type', choices: PLUGIN_TYPES } as const;

/** How the caches hear of changes: one purge per definition however many plugins changed. */
const merged = (changes: CacheChange[]) => [...new Map(changes.map((c) => [JSON.stringify(c), c])).values()];

export const setState = defineCommand({
  name: 'plugins/setstate',
  category: 'plugins',
  summary:
    "Enable or disable a plugin as Moodle's admin pages do (filters: enable, available or disable), with its logs and caches",
  params: [
    pluginParam,
    {
      name: 'state',
      type: 'enum',
      label: 'State',
      choices: STATE_WORDS,
      validate: (v, all) => {
        const plugin = parsePlugin(all.plugin ?? '');
        return plugin && !statesOf(plugin.type).includes(WANTED_STATES[v as keyof typeof WANTED_STATES])
          ? `${plugin.type} plugins are enabled or disabled; 'available' is for filters`
          : undefined;
      },
    },
  ],
  destructive: false,
  reversible: true,
  idempotent: true,
  needsSource: false,
  writes: true,
  runsOn: 'node',
  phpScripts: PURGE_THROUGH_MOODLE,
  async preview(ctx, target, p) {
    const { type, name } = parsePlugin(p.plugin) as { type: PluginType; name: string };
    const current = (await statesOn(ctx, target, type)).get(name);
    const wanted = WANTED_STATES[p.state as keyof typeof WANTED_STATES];
    if (!current) return { note: `${p.plugin} is not installed here` };
    return { old: current, new: wanted, note: current === wanted ? 'already set' : undefined };
  },
  async apply(ctx, target, p, planned) {
    const { type, name } = parsePlugin(p.plugin) as { type: PluginType; name: string };
    const wanted = WANTED_STATES[p.state as keyof typeof WANTED_STATES];
    const done = await ctx.moodle.withStatements(target, async (sql) => {
      const snapshot = await readType(ctx.moodle, sql, target, type, true);
      const old = snapshot.states.get(name) ?? null;
      if (old === wanted) return { status: 'already_applied' as const, old, new: wanted, changes: [] };
      if (!planned.matchesPlan(old))
        return {
          status: 'conflict' as const,
          old,
          new: wanted,
          changes: [],
          message: 'changed by someone else since the plan was made; nothing written',
        };
      await planned.beforeWrite(old);
      return { status: 'applied' as const, old, new: wanted, changes: snapshot.set(name, wanted) };
    });
    const { changes, ...outcome } = done;
    return outcome.status === 'applied' ? { ...outcome, ...(await invalidateCaches(ctx, target, changes)) } : outcome;
  },
  revertParams: (p, old) => ({ ...p, state: old ? wordOf(old as PluginState) : p.state }),
});

/** The source's states of a type, read once per run. */
const sourceStates = (ctx: CommandContext, type: PluginType) =>
  onceForSource(ctx, `plugin-states:${type}`, () => statesOn(ctx, ctx.source, type));

/** What a target would change to match the source: each installed plugin whose state differs, and those it lacks. */
function syncPlan(source: Map<string, PluginState>, target: Map<string, PluginState>) {
  const changes = [...source].filter(([name, state]) => target.has(name) && target.get(name) !== state);
  const missing = [...source.keys()].filter((name) => !target.has(name));
  return { changes, missing };
}

const missingNote = (type: string, missing: string[]) =>
  missing.length
    ? `not installed here: ${missing
        .slice(0, 5)
        .map((m) => `${type}_${m}`)
        .join(', ')}${missing.length > 5 ? ` and ${missing.length - 5} more` : ''}`
    : '';

export const syncStates = defineCommand({
  name: 'plugins/sync',
  category: 'plugins',
  summary: "Give the targets the source host's states (--fromhost, default the master) for every plugin of one type",
  params: [typeParam],
  destructive: false,
  ...COPY_FROM_SOURCE,
  async check(ctx, p) {
    await sourceStates(ctx, p.plugintype as PluginType);
  },
  async preview(ctx, target, p) {
    const type = p.plugintype as PluginType;
    const { changes, missing } = syncPlan(await sourceStates(ctx, type), await statesOn(ctx, target, type));
    const shown = changes
      .slice(0, 6)
      .map(([name, state]) => `${name} → ${state}`)
      .join(', ');
    return {
      note: [
        changes.length ? `${changes.length} to change: ${shown}${changes.length > 6 ? ', …' : ''}` : 'already the same',
        missingNote(type, missing),
      ]
        .filter(Boolean)
        .join('; '),
    };
  },
  async apply(ctx, target, p, planned) {
    const type = p.plugintype as PluginType;
    const source = await sourceStates(ctx, type);
    const done = await ctx.moodle.withStatements(target, async (sql) => {
      const snapshot = await readType(ctx.moodle, sql, target, type, true);
      const { changes, missing } = syncPlan(source, snapshot.states);
      if (changes.length > 0) await planned.beforeWrite(null);
      return {
        changed: changes.map(([name, state]) => `${name} → ${state}`),
        caches: changes.flatMap(([name, state]) => snapshot.set(name, state)),
        missing,
      };
    });
    const note = missingNote(type, done.missing);
    if (done.changed.length === 0)
      return {
        status: 'already_applied',
        message: ["every plugin already has the source's state", note].filter(Boolean).join('; '),
      };
    const message = [`${done.changed.length} changed: ${done.changed.join(', ')}`, note].filter(Boolean).join('; ');
    return { status: 'applied', message, ...(await invalidateCaches(ctx, target, merged(done.caches))) };
  },
});

export const compareStates = defineCommand({
  name: 'plugins/compare',
  category: 'plugins',
  summary: 'Compare the states of every plugin of one type across the targets (plugin × host)',
  params: [typeParam],
  ...READ_ONLY,
  compares: 'plugin',
  async apply(ctx, target, p) {
    const states = await statesOn(ctx, target, p.plugintype as PluginType);
    return {
      status: 'applied',
      value: JSON.stringify(Object.fromEntries(states)),
      message: `${states.size} ${p.plugintype} plugins`,
    };
  },
});

export const PLUGIN_COMMANDS: readonly CommandDef[] = [setState, syncStates, compareStates];
