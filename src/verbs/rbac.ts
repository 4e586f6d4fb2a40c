import { ROLES, type RbacConfig, type Role } from '../core/security-settings.ts';

export { ROLES, type RbacConfig, type Role };

/** What a verb is known by in a refusal, and the least role it needs. */
export interface Guarded {
  label: string;
  role: Role;
}

/** The least role of a category the RBAC does not name: operator SQL reaches data, so it needs an approver. */
const DEFAULT_CATEGORIES: Readonly<Record<string, Role>> = { sql: 'approver' };

const rank = (role: Role) => ROLES.indexOf(role);

/** Slack user group ids start with S; user ids with U or W. */
const GROUP_ID = /^S[A-Z0-9]{2,}$/;

/** Who may do what, from the RBAC in the master's settings. A user it does not name has no access at all. */
export class Rbac {
  private readonly members = new Map<string, ReadonlySet<string>>();

  constructor(private config: RbacConfig) {}

  /** An admin's new RBAC, taken by a long-running front end without a restart. */
  replace(config: RbacConfig): void {
    this.config = config;
  }

  /**
   * The person behind an id: a chat user mapped to the operating-system user they log in as, and a command line's
   * `user@cli` as that user, so a person is one identity whichever front end they use.
   */
  person(id: string): string {
    const os = this.config.os_users?.[id];
    if (os) return `os:${os}`;
    const cli = /^(.+)@cli$/.exec(id);
    return cli ? `os:${cli[1]}` : id;
  }

  samePerson(a: string, b: string): boolean {
    return this.person(a) === this.person(b);
  }

  /** The user groups the file names, whose members the Slack front end looks up. */
  groupIds(): string[] {
    return [
      ...new Set(
        Object.values(this.config.roles)
          .flat()
          .filter((id) => GROUP_ID.test(id)),
      ),
    ];
  }

  setGroupMembers(group: string, users: readonly string[]): void {
    this.members.set(group, new Set(users));
  }

  /** The user's highest role, named directly or through a user group, or undefined for a stranger. */
  roleOf(user: string): Role | undefined {
    return [...ROLES]
      .reverse()
      .find((role) => this.config.roles[role]?.some((id) => id === user || this.members.get(id)?.has(user)));
  }

  /** Why the user may not use the verb (on that command's category, in that channel), or undefined when allowed. */
  refusal(user: string, verb: Guarded, category?: string, channel?: string): string | undefined {
    const role = this.roleOf(user);
    if (!role)
      return 'you have no access to vmoodle-ops; ask an admin to add you to its RBAC (vmoodle settings import)';
    if (rank(role) < rank(verb.role)) return `${verb.label} needs the ${verb.role} role; you are ${role}`;
    if (category) {
      const least = this.config.categories?.[category] ?? DEFAULT_CATEGORIES[category];
      if (least && rank(role) < rank(least)) return `${category} commands need the ${least} role; you are ${role}`;
      const allowed = channel ? this.config.channels?.[channel] : undefined;
      if (allowed && !allowed.includes(category)) return `${category} commands cannot be run in this channel`;
    }
    return undefined;
  }
}
