import { errorKind } from '../errors.ts';
import { readYamlFile } from '../config.ts';

/** Roles in increasing power: each has what the ones before it have. */
export const ROLES = ['viewer', 'operator', 'approver', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** What a verb is known by in a refusal, and the least role it needs. */
export interface Guarded {
  label: string;
  role: Role;
}

export interface RbacConfig {
  /** Role → Slack user ids or user group ids (S…), or console user names. */
  roles: Partial<Record<Role, string[]>>;
  /** Category → the least role that may run its commands (e.g. sql: admin). */
  categories?: Record<string, Role>;
  /** Channel id → the categories that may be run there; channels not listed allow all. */
  channels?: Record<string, string[]>;
}

export class RbacError extends errorKind('config') {}

const rank = (role: Role) => ROLES.indexOf(role);

/** Slack user group ids start with S; user ids with U or W. */
const GROUP_ID = /^S[A-Z0-9]{2,}$/;

/** Who may do what, from the RBAC file. A user it does not name has no access at all. */
export class Rbac {
  private readonly members = new Map<string, ReadonlySet<string>>();

  constructor(private readonly config: RbacConfig) {
    for (const role of Object.keys(config.roles)) {
      if (!ROLES.includes(role as Role)) throw new RbacError(`RBAC: unknown role '${role}' (roles: ${ROLES.join(', ')})`);
    }
  }

  static fromFile(path: string): Rbac {
    const doc = readYamlFile(path, 'VMOODLE_RBAC', RbacError);
    if (!doc || typeof doc !== 'object' || !('roles' in doc)) throw new RbacError(`VMOODLE_RBAC: ${path} needs a 'roles' mapping`);
    return new Rbac(doc as RbacConfig);
  }

  /** The user groups the file names, whose members the Slack front end looks up. */
  groupIds(): string[] {
    return [...new Set(Object.values(this.config.roles).flat().filter((id) => GROUP_ID.test(id)))];
  }

  setGroupMembers(group: string, users: readonly string[]): void {
    this.members.set(group, new Set(users));
  }

  /** The user's highest role, named directly or through a user group, or undefined for a stranger. */
  roleOf(user: string): Role | undefined {
    return [...ROLES].reverse().find((role) => this.config.roles[role]?.some((id) => id === user || this.members.get(id)?.has(user)));
  }

  /** Why the user may not use the verb (on that command's category, in that channel), or undefined when allowed. */
  refusal(user: string, verb: Guarded, category?: string, channel?: string): string | undefined {
    const role = this.roleOf(user);
    if (!role) return 'you have no access to vmoodle-ops; ask an admin to add you to its RBAC file';
    if (rank(role) < rank(verb.role)) return `${verb.label} needs the ${verb.role} role; you are ${role}`;
    if (category) {
      const least = this.config.categories?.[category];
      if (least && rank(role) < rank(least)) return `${category} commands need the ${least} role; you are ${role}`;
      const allowed = channel ? this.config.channels?.[channel] : undefined;
      if (allowed && !allowed.includes(category)) return `${category} commands cannot be run in this channel`;
    }
    return undefined;
  }

}
