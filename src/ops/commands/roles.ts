import { defineCommand, type CommandContext, type CommandDef } from './command.ts';
import { invalidateCaches } from '../moodle/cache.ts';
import { readAdminLog } from '../moodle/config.ts';
import {
  ALL_ROLE_DEFINITIONS,
  ALLOW_TABLES,
  assignCapability,
  changePermission,
  createRole,
  permissionName,
  readAllows,
  readRole,
  readRoleForWrite,
  roleCache,
  setAllow,
  unassignCapability,
  type AllowTable,
  type RoleDefinition,
} from '../moodle/role-definitions.ts';
import type { MoodleTarget } from '../moodle/target.ts';
import { ParamError } from './params.ts';
import { onceForSource } from './source-reads.ts';
import { COPY_FROM_SOURCE, READ_ONLY } from './traits.ts';

const ROLE_NAME = /^[a-z0-9_-]{1,100}$/i;
const CAPABILITY = /^[a-z][a-z0-9_]*\/[a-z0-9_]+:[a-z0-9_]+$/;

const roleParam = {
  name: 'role',
  type: 'text',
  label: 'Role (short name, e.g. editingteacher)',
  validate: (v: string) => (ROLE_NAME.test(v) ? undefined : `'${v}' is not a role short name`),
} as const;
const tableParam = {
  name: 'table',
  type: 'enum',
  label: 'Which allow table',
  choices: Object.keys(ALLOW_TABLES) as AllowTable[],
} as const;

const roleOn = (ctx: CommandContext, target: MoodleTarget, shortname: string) =>
  ctx.moodle.withStatements(target, (sql) => readRole(ctx.moodle, sql, target, shortname), false);

/** The source's role, read once per run; a run whose source has no such role is refused when planned. */
function sourceRole(
  ctx: CommandContext,
  shortname: string,
): Promise<RoleDefinition & { role: NonNullable<RoleDefinition['role']> }> {
  return onceForSource(ctx, `role:${shortname}`, async () => {
    const definition = await roleOn(ctx, ctx.source, shortname);
    if (!definition.role)
      throw new ParamError(`role: the source host ${ctx.source.host.shortname} has no role '${shortname}'`);
    return definition as RoleDefinition & { role: NonNullable<RoleDefinition['role']> };
  });
}

/** What makes a target's role equal to the source's: permissions to set, rows to remove, capabilities its code lacks. */
function roleDiff(source: RoleDefinition, target: RoleDefinition, known?: Set<string>) {
  const assign = [...source.capabilities].filter(
    ([cap, perm]) => target.capabilities.get(cap) !== perm && (!known || known.has(cap)),
  );
  const unknown = known ? [...source.capabilities.keys()].filter((cap) => !known.has(cap)) : [];
  const remove = [...target.capabilities.keys()].filter((cap) => !source.capabilities.has(cap));
  return { assign, remove, unknown };
}

const count = (n: number, word: string) => `${n} ${n === 1 ? word : word.replace(/y$/, 'ie')}${n === 1 ? '' : 's'}`;
const listed = (items: string[], max = 5) =>
  `${items.slice(0, max).join(', ')}${items.length > max ? ` and ${items.length - max} more` : ''}`;

export const roleCompare = defineCommand({
  name: 'roles/compare',
  category: 'roles',
  summary: "Compare one role's system-context capabilities across the targets (capability × host)",
  params: [roleParam],
  ...READ_ONLY,
  compares: 'capability',
  async apply(ctx, target, p) {
    const { role, capabilities } = await roleOn(ctx, target, p.role);
    const value = JSON.stringify(
      Object.fromEntries([...capabilities].map(([cap, perm]) => [cap, permissionName(perm)])),
    );
    return {
      status: 'applied',
      value,
      message: role ? `${count(capabilities.size, 'capability')} set` : `no role '${p.role}' here`,
    };
  },
});

export const roleSync = defineCommand({
  name: 'roles/sync',
  category: 'roles',
  summary:
    "Make a role's system-context capabilities the source host's (--fromhost, default the master), creating the role where it is missing",
  params: [roleParam],
  destructive: true,
  ...COPY_FROM_SOURCE,
  async check(ctx, p) {
    await sourceRole(ctx, p.role);
  },
  async preview(ctx, target, p) {
    const source = await sourceRole(ctx, p.role);
    const here = await roleOn(ctx, target, p.role);
    const { assign, remove } = roleDiff(source, here);
    const create = here.role ? '' : `create the role (${source.contextLevels.length} context levels); `;
    return {
      note:
        assign.length + remove.length === 0
          ? 'already the same'
          : `${create}${count(assign.length, 'capability')} to set, ${remove.length} to remove`,
    };
  },
  async apply(ctx, target, p, planned) {
    const source = await sourceRole(ctx, p.role);
    const done = await ctx.moodle.withStatements(target, async (sql) => {
      const { definition, site } = await readRoleForWrite(ctx.moodle, sql, target, p.role);
      const { assign, remove, unknown } = roleDiff(source, definition, site.known);
      if (definition.role && assign.length + remove.length === 0)
        return { roleid: definition.role.id, created: false, assign, remove, unknown };
      await planned.beforeWrite(null);
      const roleid = definition.role?.id ?? (await createRole(site, source.role, source.contextLevels));
      for (const [cap, perm] of assign) assignCapability(site, roleid, cap, perm, definition.capabilities.get(cap));
      for (const cap of remove) unassignCapability(site, roleid, cap);
      return { roleid, created: !definition.role, assign, remove, unknown };
    });
    const skipped = done.unknown.length
      ? `; not defined by this site's code, so left out: ${listed(done.unknown)}`
      : '';
    if (!done.created && done.assign.length + done.remove.length === 0)
      return { status: 'already_applied', message: `the role is already the source's${skipped}` };
    const message = `${done.created ? 'role created; ' : ''}${count(done.assign.length, 'capability')} set, ${done.remove.length} removed${skipped}`;
    return { status: 'applied', message, ...(await invalidateCaches(ctx, target, [roleCache(done.roleid)])) };
  },
});

export const capabilitySync = defineCommand({
  name: 'roles/capabilitysync',
  category: 'roles',
  summary:
    "Give one capability of a role the source host's permission, as role_change_permission() does (a PROHIBIT stays)",
  params: [
    roleParam,
    {
      name: 'capability',
      type: 'text',
      label: 'Capability (e.g. moodle/course:update)',
      validate: (v) => (CAPABILITY.test(v) ? undefined : `'${v}' is not a capability name`),
    },
  ],
  destructive: false,
  ...COPY_FROM_SOURCE,
  async check(ctx, p) {
    await sourceRole(ctx, p.role);
  },
  async preview(ctx, target, p) {
    const source = await sourceRole(ctx, p.role);
    const here = await roleOn(ctx, target, p.role);
    if (!here.role) return { note: `no role '${p.role}' here` };
    const [old, wanted] = [
      permissionName(here.capabilities.get(p.capability) ?? 0),
      permissionName(source.capabilities.get(p.capability) ?? 0),
    ];
    return {
      old,
      new: wanted,
      note: old === wanted ? 'already set' : old === 'PROHIBIT' ? 'prohibited here: left as it is' : undefined,
    };
  },
  async apply(ctx, target, p, planned) {
    const wanted = (await sourceRole(ctx, p.role)).capabilities.get(p.capability) ?? 0;
    const done = await ctx.moodle.withStatements(target, async (sql) => {
      const { definition, site } = await readRoleForWrite(ctx.moodle, sql, target, p.role);
      if (!definition.role)
        throw new ParamError(`no role '${p.role}' on ${target.host.shortname}: roles/sync creates it`);
      if (!site.known.has(p.capability))
        throw new ParamError(`${target.host.shortname}'s code defines no capability ${p.capability}`);
      const current = definition.capabilities.get(p.capability);
      const shown = { old: permissionName(current ?? 0), new: permissionName(wanted) };
      if (shown.old !== shown.new && !planned.matchesPlan(shown.old))
        return { ...shown, roleid: definition.role.id, outcome: 'conflict' as const };
      const outcome = changePermission(site, definition.role.id, p.capability, wanted, current);
      if (outcome === undefined) await planned.beforeWrite(shown.old);
      return { ...shown, roleid: definition.role.id, outcome };
    });
    const shown = { old: done.old, new: done.new };
    if (done.outcome === 'conflict')
      return {
        status: 'conflict',
        ...shown,
        message: 'changed by someone else since the plan was made; nothing written',
      };
    if (done.outcome === 'same') return { status: 'already_applied', ...shown };
    if (done.outcome === 'prohibited')
      return {
        status: 'already_applied',
        ...shown,
        new: done.old,
        message: `left as it is: role_change_permission() never changes a PROHIBIT (the source has ${done.new})`,
      };
    return { status: 'applied', ...shown, ...(await invalidateCaches(ctx, target, [roleCache(done.roleid)])) };
  },
});

/** The short names of the roles a role may assign (override, switch to, view) on the source host, read once per run. */
const sourceAllows = (ctx: CommandContext, table: AllowTable) =>
  onceForSource(ctx, `allows:${table}`, () =>
    ctx.moodle.withStatements(ctx.source, (sql) => readAllows(ctx.moodle, sql, ctx.source, table, false), false),
  );

const allowedBy = (pairs: Array<{ from: string; to: string }>, role: string) =>
  new Set(pairs.filter((x) => x.from === role).map((x) => x.to));

export const allowSync = defineCommand({
  name: 'roles/allowsync',
  category: 'roles',
  summary:
    "Make which roles a role may assign, override, switch to or view the source host's (--fromhost, default the master)",
  params: [tableParam, roleParam],
  destructive: true,
  ...COPY_FROM_SOURCE,
  async check(ctx, p) {
    const { roles } = await sourceAllows(ctx, p.table as AllowTable);
    if (!roles.has(p.role))
      throw new ParamError(`role: the source host ${ctx.source.host.shortname} has no role '${p.role}'`);
  },
  async preview(ctx, target, p) {
    const wanted = allowedBy((await sourceAllows(ctx, p.table as AllowTable)).pairs, p.role);
    const here = await ctx.moodle.withStatements(
      target,
      (sql) => readAllows(ctx.moodle, sql, target, p.table as AllowTable, false),
      false,
    );
    const now = allowedBy(here.pairs, p.role);
    return {
      old: [...now].sort().join(',') || '(none)',
      new:
        [...wanted]
          .filter((r) => here.roles.has(r))
          .sort()
          .join(',') || '(none)',
    };
  },
  async apply(ctx, target, p, planned) {
    const table = p.table as AllowTable;
    const wanted = allowedBy((await sourceAllows(ctx, table)).pairs, p.role);
    const done = await ctx.moodle.withStatements(target, async (sql) => {
      const here = await readAllows(ctx.moodle, sql, target, table, true);
      const fromId = here.roles.get(p.role);
      if (!fromId) throw new ParamError(`no role '${p.role}' on ${target.host.shortname}: roles/sync creates it`);
      const now = allowedBy(here.pairs, p.role);
      const add = [...wanted].filter((r) => !now.has(r) && here.roles.has(r));
      const drop = [...now].filter((r) => !wanted.has(r));
      const missing = [...wanted].filter((r) => !here.roles.has(r));
      const old = [...now].sort().join(',') || '(none)';
      if (add.length + drop.length > 0) {
        await planned.beforeWrite(old);
        const site = {
          access: ctx.moodle,
          sql,
          target,
          now: Math.floor(Date.now() / 1000),
          ...(await readAdminLog(ctx.moodle, sql, target)),
        };
        for (const r of add) setAllow(site, table, fromId, here.roles.get(r) as string, true);
        for (const r of drop) setAllow(site, table, fromId, here.roles.get(r) as string, false);
      }
      return {
        add,
        drop,
        missing,
        old,
        new:
          [...now, ...add]
            .filter((r) => !drop.includes(r))
            .sort()
            .join(',') || '(none)',
      };
    });
    const note = done.missing.length ? `roles missing here: ${listed(done.missing)}` : undefined;
    if (done.add.length + done.drop.length === 0)
      return { status: 'already_applied', old: done.old, new: done.new, message: note };
    const message = [`${done.add.length} allowed, ${done.drop.length} no longer allowed`, note]
      .filter(Boolean)
      .join('; ');
    return {
      status: 'applied',
      old: done.old,
      new: done.new,
      message,
      ...(await invalidateCaches(ctx, target, [ALL_ROLE_DEFINITIONS])),
    };
  },
});

export const allowCompare = defineCommand({
  name: 'roles/allowcompare',
  category: 'roles',
  summary: 'Compare which roles each role may assign, override, switch to or view across the targets',
  params: [tableParam],
  ...READ_ONLY,
  compares: 'allow',
  async apply(ctx, target, p) {
    const { pairs } = await ctx.moodle.withStatements(
      target,
      (sql) => readAllows(ctx.moodle, sql, target, p.table as AllowTable, false),
      false,
    );
    return {
      status: 'applied',
      value: JSON.stringify(Object.fromEntries(pairs.map((x) => [`${x.from} → ${x.to}`, 'allowed']))),
      message: `${pairs.length} allowed`,
    };
  },
});

export const ROLE_COMMANDS: readonly CommandDef[] = [roleCompare, roleSync, capabilitySync, allowSync, allowCompare];
