import type { MoodleAccess } from './access.ts';
import { adminOf, adminRead, logStoresOf, logStoresRead } from './config.ts';
import { logEvent, SYSTEM_CONTEXT, type LogActor, type LogStores } from './events.ts';
import type { CacheChange } from './muc.ts';
import type { Statements } from './statements.ts';
import { MOODLE_TABLES } from './tables.ts';
import type { MoodleTarget } from './target.ts';

/** CAP_INHERIT, CAP_ALLOW, CAP_PREVENT and CAP_PROHIBIT (moodle-facts §2.2). */
const PERMISSIONS = { INHERIT: 0, ALLOW: 1, PREVENT: -1, PROHIBIT: -1000 } as const;
type PermissionName = keyof typeof PERMISSIONS;

export const permissionName = (value: number): PermissionName =>
  (Object.keys(PERMISSIONS) as PermissionName[]).find((k) => PERMISSIONS[k] === value) ?? 'INHERIT';

export const ALLOW_TABLES = {
  assign: MOODLE_TABLES.roleAllowAssign,
  override: MOODLE_TABLES.roleAllowOverride,
  switch: MOODLE_TABLES.roleAllowSwitch,
  view: MOODLE_TABLES.roleAllowView,
} as const;
export type AllowTable = keyof typeof ALLOW_TABLES;

interface RoleRow {
  id: string;
  name: string;
  shortname: string;
  description: string;
  archetype: string;
}

/** A role as the product compares and copies it: its row, its system-context capabilities, where it can be assigned. */
export interface RoleDefinition {
  role: RoleRow | undefined;
  /** capability → permission, at the system context (contextid 1, where role definitions live). */
  capabilities: Map<string, number>;
  contextLevels: number[];
}

/** A site's side of a role change: its log store settings, the admin the change is made as, the capabilities it knows. */
interface RoleSite {
  access: MoodleAccess;
  sql: Statements;
  target: MoodleTarget;
  stores: LogStores;
  actor: LogActor;
  /** Every capability the site's code defines (its capabilities table): others cannot be assigned there. */
  known: Set<string>;
  now: number;
}

const lockIf = (lock: boolean) => (lock ? ' FOR UPDATE' : '');

function roleReads(
  access: MoodleAccess,
  target: MoodleTarget,
  shortname: string,
  lock: boolean,
): Array<[string, unknown[]]> {
  const role = access.table(target, MOODLE_TABLES.role);
  return [
    [`SELECT id, name, shortname, description, archetype FROM ${role} WHERE shortname = ?${lockIf(lock)}`, [shortname]],
    [
      `SELECT rc.capability, rc.permission FROM ${access.table(target, MOODLE_TABLES.roleCapabilities)} rc JOIN ${role} r ON r.id = rc.roleid
      WHERE r.shortname = ? AND rc.contextid = 1 ORDER BY rc.capability${lockIf(lock)}`,
      [shortname],
    ],
    [
      `SELECT cl.contextlevel FROM ${access.table(target, MOODLE_TABLES.roleContextLevels)} cl JOIN ${role} r ON r.id = cl.roleid WHERE r.shortname = ? ORDER BY cl.contextlevel`,
      [shortname],
    ],
  ];
}

function definitionOf([roles, caps, levels]: unknown[][]): RoleDefinition {
  return {
    role: (roles as RoleRow[])[0],
    capabilities: new Map(
      (caps as Array<{ capability: string; permission: number }>).map((c) => [c.capability, Number(c.permission)]),
    ),
    contextLevels: (levels as Array<{ contextlevel: number }>).map((l) => Number(l.contextlevel)),
  };
}

/** A role's definition, unlocked (previews, compare, the source of a sync). */
export async function readRole(
  access: MoodleAccess,
  sql: Statements,
  target: MoodleTarget,
  shortname: string,
): Promise<RoleDefinition> {
  return definitionOf((await sql.readAll(roleReads(access, target, shortname, false))) as unknown[][]);
}

/**
 * A role about to be changed, locked, with what its changes are logged with: one round trip, which begins the
 * transaction's reads.
 */
export async function readRoleForWrite(
  access: MoodleAccess,
  sql: Statements,
  target: MoodleTarget,
  shortname: string,
): Promise<{ definition: RoleDefinition; site: RoleSite }> {
  const reads = roleReads(access, target, shortname, true);
  const rows = (await sql.readAll([
    ...reads,
    [`SELECT name FROM ${access.table(target, MOODLE_TABLES.capabilities)}`, []],
    logStoresRead(access, target),
    adminRead(access, target),
  ])) as unknown[][];
  const n = reads.length;
  return {
    definition: definitionOf(rows.slice(0, n)),
    site: {
      access,
      sql,
      target,
      now: Math.floor(Date.now() / 1000),
      known: new Set((rows[n] as Array<{ name: string }>).map((r) => r.name)),
      stores: logStoresOf(rows[n + 1] as Array<{ plugin: string; value: string }>),
      actor: adminOf(rows[n + 2] as Array<{ id: string }>),
    },
  };
}

/** accesslib_clear_role_cache(): the role's core/roledefs entry. */
export const roleCache = (roleid: string | number): CacheChange => ({
  definition: 'core/roledefs',
  keys: [String(roleid)],
});

/**
 * create_role(): the row with the next free sortorder, and where it can be assigned (as the role definition page
 * saves it). Its id is read back in the same transaction.
 */
export async function createRole(site: RoleSite, from: RoleRow, contextLevels: readonly number[]): Promise<string> {
  const role = site.access.table(site.target, MOODLE_TABLES.role);
  site.sql.write(
    `INSERT INTO ${role} (name, shortname, description, sortorder, archetype) SELECT ?, ?, ?, COALESCE(MAX(sortorder), 0) + 1, ? FROM ${role}`,
    [from.name, from.shortname, from.description, from.archetype],
  );
  const [[inserted]] = await site.sql.readAll<[{ id: string }]>([['SELECT LAST_INSERT_ID() AS id', []]]);
  const id = String((inserted as { id: string }).id);
  for (const level of contextLevels)
    site.sql.write(
      `INSERT INTO ${site.access.table(site.target, MOODLE_TABLES.roleContextLevels)} (roleid, contextlevel) VALUES (?, ?)`,
      [id, level],
    );
  return id;
}

/**
 * assign_capability(…, overwrite) at the system context: the row inserted or its permission updated, by the admin,
 * and the `capability_assigned` event (oldpermission the old row's text, or 0 when there was none). A permission of
 * INHERIT is unassign_capability().
 */
export function assignCapability(
  site: RoleSite,
  roleid: string,
  capability: string,
  permission: number,
  old: number | undefined,
): void {
  if (permission === PERMISSIONS.INHERIT) {
    unassignCapability(site, roleid, capability);
    return;
  }
  const table = site.access.table(site.target, MOODLE_TABLES.roleCapabilities);
  if (old === undefined) {
    site.sql.write(
      `INSERT INTO ${table} (contextid, roleid, capability, permission, timemodified, modifierid) VALUES (1, ?, ?, ?, ?, ?)`,
      [roleid, capability, permission, site.now, site.actor.userid],
    );
  } else {
    site.sql.write(
      `UPDATE ${table} SET permission = ?, timemodified = ?, modifierid = ? WHERE contextid = 1 AND roleid = ? AND capability = ?`,
      [permission, site.now, site.actor.userid, roleid, capability],
    );
  }
  logEvent(
    site.access,
    site.sql,
    site.target,
    {
      name: 'capability_assigned',
      objecttable: 'role_capabilities',
      objectid: Number(roleid),
      crud: 'u',
      edulevel: 0,
      context: SYSTEM_CONTEXT,
      other: { capability, oldpermission: old === undefined ? PERMISSIONS.INHERIT : String(old), permission },
    },
    site.stores,
    site.actor,
    site.now,
  );
}

/** unassign_capability() at the system context: the row deleted, and the `capability_unassigned` event. */
export function unassignCapability(site: RoleSite, roleid: string, capability: string): void {
  site.sql.write(
    `DELETE FROM ${site.access.table(site.target, MOODLE_TABLES.roleCapabilities)} WHERE contextid = 1 AND roleid = ? AND capability = ?`,
    [roleid, capability],
  );
  logEvent(
    site.access,
    site.sql,
    site.target,
    {
      name: 'capability_unassigned',
      objecttable: 'role_capabilities',
      objectid: Number(roleid),
      crud: 'u',
      edulevel: 0,
      context: SYSTEM_CONTEXT,
      other: { capability },
    },
    site.stores,
    site.actor,
    site.now,
  );
}

/**
 * What role_change_permission() does at the system context, which has no parent: nothing under a PROHIBIT or where
 * the value is already set, nothing for a PREVENT where there is no row (no row already means no permission), the
 * row removed for INHERIT, else the permission assigned. Returns why nothing was done, or undefined once it was.
 */
export function changePermission(
  site: RoleSite,
  roleid: string,
  capability: string,
  permission: number,
  old: number | undefined,
): 'prohibited' | 'same' | undefined {
  if (old === PERMISSIONS.PROHIBIT && permission !== PERMISSIONS.PROHIBIT) return 'prohibited';
  if ((old ?? PERMISSIONS.INHERIT) === permission) return 'same';
  if (old === undefined && permission === PERMISSIONS.PREVENT) return 'same';
  assignCapability(site, roleid, capability, permission, old);
  return undefined;
}

/** A role's allow rows of one kind (assign, override, switch, view): the short names of the roles it is allowed. */
export async function readAllows(
  access: MoodleAccess,
  sql: Statements,
  target: MoodleTarget,
  table: AllowTable,
  lock: boolean,
): Promise<{ pairs: Array<{ from: string; to: string }>; roles: Map<string, string> }> {
  const role = access.table(target, MOODLE_TABLES.role);
  const [pairs, roles] = await sql.readAll<[{ from: string; to: string }, { id: string; shortname: string }]>([
    [
      `SELECT f.shortname AS \`from\`, t.shortname AS \`to\` FROM ${access.table(target, ALLOW_TABLES[table])} a JOIN ${role} f ON f.id = a.roleid JOIN ${role} t ON t.id = a.allow${table}
      ORDER BY f.sortorder, t.sortorder${lockIf(lock)}`,
      [],
    ],
    [`SELECT id, shortname FROM ${role}`, []],
  ]);
  return { pairs, roles: new Map(roles.map((r) => [r.shortname, String(r.id)])) };
}

/**
 * One allow row added or removed as the admin's allow page saves it, with its `role_allow_<kind>_updated` event
 * (objectid the role allowed, other: the role it may act on, and whether it now may); accesslib_reset_role_cache()
 * then purges every role definition.
 */
export function setAllow(
  site: Omit<RoleSite, 'known'>,
  table: AllowTable,
  fromId: string,
  toId: string,
  allow: boolean,
): void {
  const allowTable = site.access.table(site.target, ALLOW_TABLES[table]);
  if (allow) site.sql.write(`INSERT INTO ${allowTable} (roleid, allow${table}) VALUES (?, ?)`, [fromId, toId]);
  else site.sql.write(`DELETE FROM ${allowTable} WHERE roleid = ? AND allow${table} = ?`, [fromId, toId]);
  logEvent(
    site.access,
    site.sql,
    site.target,
    {
      name: `role_allow_${table}_updated`,
      objecttable: ALLOW_TABLES[table],
      objectid: Number(fromId),
      crud: 'u',
      edulevel: 0,
      context: SYSTEM_CONTEXT,
      other: { targetroleid: Number(toId), allow },
    },
    site.stores,
    site.actor,
    site.now,
  );
}

export const ALL_ROLE_DEFINITIONS: CacheChange = { definition: 'core/roledefs', purge: true };
