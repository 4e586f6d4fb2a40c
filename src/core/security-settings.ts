import type { Knex } from 'knex';
import { isAbsolute } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { readYamlFile } from './config.ts';
import { errorKind } from './errors.ts';

/**
 * The security settings: who may do what, when a second person must approve, and which database servers may be
 * sent a login. They live in the master database, written by admins only (docs/security.md), and every process
 * reads them from there, so that no caller's environment can name a policy of its own.
 */

/** Roles in increasing power: each has what the ones before it have. */
export const ROLES = ['viewer', 'operator', 'approver', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export interface RbacConfig {
  /** Role → Slack user ids or user group ids (S…), or terminal user names. */
  roles: Partial<Record<Role, string[]>>;
  /** Category → the least role that may run its commands (sql: approver unless set). */
  categories?: Record<string, Role>;
  /** Channel id → the categories that may be run there; channels not listed allow all. */
  channels?: Record<string, string[]>;
  /** Chat user id → the operating-system user the same person logs in as: a command line approval by it is theirs. */
  os_users?: Record<string, string>;
}

export interface ApprovalSettings {
  /** A write to more targets than this needs a second person, destructive or not. */
  threshold: number;
  ttlMinutes: number;
  /** `require`: a CLI write above the approval policy waits for a chat approval, as a chat one does. */
  cli: 'require' | 'off';
}

/** A database server logins may be sent to: `host:port`, or `unix:/path` for a socket. */
export interface DbServerRule {
  server: string;
  /** TLS with the certificate checked against `ca` (a PEM file), or the system's CAs without one. */
  tls: boolean;
  ca?: string;
  /** The account that makes and drops instance logins on this server; its password sealed under the keyring. */
  provisioning?: { login: string; password: string };
}

export interface SecuritySettings {
  /** Unset: nobody has access from chat (the terminal chat is then a one-person demo). */
  rbac: RbacConfig | undefined;
  approval: ApprovalSettings;
  /** Unset: no instance database may be reached until an admin sets the list. */
  dbServers: DbServerRule[] | undefined;
}

export const DEFAULT_APPROVAL: ApprovalSettings = { threshold: 50, ttlMinutes: 30, cli: 'off' };
export const NO_SETTINGS: SecuritySettings = { rbac: undefined, approval: DEFAULT_APPROVAL, dbServers: undefined };

export class SettingsError extends errorKind('config') {}

const KEYS = ['rbac', 'approval', 'db_servers'] as const;
const isMap = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

function stringList(v: unknown, where: string): string[] {
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string' || x === ''))
    throw new SettingsError(`${where} must be a list of names`);
  return v as string[];
}

function role(v: unknown, where: string): Role {
  if (!ROLES.includes(v as Role))
    throw new SettingsError(`${where}: '${String(v)}' is not a role (roles: ${ROLES.join(', ')})`);
  return v as Role;
}

function parseRbac(v: unknown): RbacConfig {
  if (!isMap(v) || !isMap(v.roles)) throw new SettingsError("rbac needs a 'roles' mapping");
  const unknown = Object.keys(v).filter((k) => !['roles', 'categories', 'channels', 'os_users'].includes(k));
  if (unknown.length)
    throw new SettingsError(
      `rbac has unknown keys: ${unknown.join(', ')} (known: roles, categories, channels, os_users)`,
    );
  const roles: RbacConfig['roles'] = {};
  for (const [name, ids] of Object.entries(v.roles))
    roles[role(name, 'rbac.roles')] = stringList(ids, `rbac.roles.${name}`);
  const out: RbacConfig = { roles };
  if (v.categories !== undefined) {
    if (!isMap(v.categories)) throw new SettingsError('rbac.categories must map a category to a role');
    out.categories = Object.fromEntries(
      Object.entries(v.categories).map(([c, r]) => [c, role(r, `rbac.categories.${c}`)]),
    );
  }
  if (v.channels !== undefined) {
    if (!isMap(v.channels)) throw new SettingsError('rbac.channels must map a channel id to categories');
    out.channels = Object.fromEntries(
      Object.entries(v.channels).map(([c, list]) => [c, stringList(list, `rbac.channels.${c}`)]),
    );
  }
  if (v.os_users !== undefined) {
    if (
      !isMap(v.os_users) ||
      Object.values(v.os_users).some((u) => typeof u !== 'string' || !/^[a-z_][a-z0-9_.-]{0,31}$/i.test(u))
    ) {
      throw new SettingsError('rbac.os_users must map a chat user id to an operating-system user name');
    }
    out.os_users = v.os_users as Record<string, string>;
  }
  return out;
}

function wholeNumber(v: unknown, where: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    throw new SettingsError(`${where} must be a whole number from ${min} to ${max}`);
  return v;
}

function parseApproval(v: unknown): ApprovalSettings {
  if (!isMap(v)) throw new SettingsError('approval must be a mapping (threshold, ttl_minutes, cli)');
  const cli = v.cli ?? DEFAULT_APPROVAL.cli;
  if (cli !== 'require' && cli !== 'off') throw new SettingsError("approval.cli must be 'require' or 'off'");
  return {
    threshold:
      v.threshold === undefined
        ? DEFAULT_APPROVAL.threshold
        : wholeNumber(v.threshold, 'approval.threshold', 0, 1_000_000),
    ttlMinutes:
      v.ttl_minutes === undefined
        ? DEFAULT_APPROVAL.ttlMinutes
        : wholeNumber(v.ttl_minutes, 'approval.ttl_minutes', 1, 1440),
    cli,
  };
}

/**
 * How a database server is named in db_servers and in every check against it: `host:port` in lower case, localhost
 * as 127.0.0.1 (as a registry vdbhost is read), an IPv6 address in brackets; or `unix:/path` for a socket.
 */
export function serverName(db: { host: string; port: number; socketPath?: string }): string {
  if (db.socketPath) return `unix:${db.socketPath}`;
  const host = db.host.toLowerCase() === 'localhost' ? '127.0.0.1' : db.host.toLowerCase();
  return `${host.includes(':') ? `[${host}]` : host}:${db.port}`;
}

/** `host:port` with a host name or an IP address (IPv6 in brackets), or `unix:/absolute/path`. */
const SERVER =
  /^(?:(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\[[0-9a-fA-F:.]+\]):\d{1,5}|unix:\/[^\0]*)$/;

function parseDbServers(v: unknown): DbServerRule[] {
  if (!Array.isArray(v)) throw new SettingsError('db_servers must be a list of { server, tls, ca }');
  return v.map((entry, i) => {
    const where = `db_servers[${i}]`;
    if (!isMap(entry) || typeof entry.server !== 'string' || !SERVER.test(entry.server))
      throw new SettingsError(`${where}.server must be host:port or unix:/path`);
    const tls = entry.tls ?? false;
    if (typeof tls !== 'boolean') throw new SettingsError(`${where}.tls must be true or false`);
    if (entry.ca !== undefined && (typeof entry.ca !== 'string' || !isAbsolute(entry.ca) || !tls))
      throw new SettingsError(`${where}.ca must be the absolute path of a PEM file, with tls: true`);
    const p = entry.provisioning;
    if (
      p !== undefined &&
      (!isMap(p) ||
        typeof p.login !== 'string' ||
        !/^\S{1,80}$/.test(p.login) ||
        typeof p.password !== 'string' ||
        p.password.split(':').length !== 4)
    ) {
      throw new SettingsError(
        `${where}.provisioning must be { login, password } with the password sealed by vmoodle settings provisioning`,
      );
    }
    const address = /^\[?(.+?)\]?:(\d+)$/.exec(entry.server);
    const server =
      entry.server.startsWith('unix:') || !address
        ? entry.server
        : serverName({ host: address[1] as string, port: Number(address[2]) });
    return {
      server,
      tls,
      ...(entry.ca ? { ca: entry.ca as string } : {}),
      ...(p ? { provisioning: { login: p.login as string, password: p.password as string } } : {}),
    };
  });
}

/** The settings document as an admin writes it (YAML or JSON), checked whole: a bad key changes nothing. */
export function parseSettings(doc: unknown): SecuritySettings {
  if (doc === null || doc === undefined) return NO_SETTINGS;
  if (!isMap(doc)) throw new SettingsError('the settings must be a mapping of rbac, approval and db_servers');
  const unknown = Object.keys(doc).filter((k) => !(KEYS as readonly string[]).includes(k));
  if (unknown.length) throw new SettingsError(`unknown settings: ${unknown.join(', ')} (known: ${KEYS.join(', ')})`);
  return {
    rbac: doc.rbac === undefined ? undefined : parseRbac(doc.rbac),
    approval: doc.approval === undefined ? DEFAULT_APPROVAL : parseApproval(doc.approval),
    dbServers: doc.db_servers === undefined ? undefined : parseDbServers(doc.db_servers),
  };
}

export const readSettingsFile = (path: string): SecuritySettings =>
  parseSettings(readYamlFile(path, 'settings import', SettingsError));

/** The settings as the document an admin reads and edits. */
export function settingsDocument(s: SecuritySettings): Record<string, unknown> {
  return {
    ...(s.rbac ? { rbac: s.rbac } : {}),
    approval: { threshold: s.approval.threshold, ttl_minutes: s.approval.ttlMinutes, cli: s.approval.cli },
    ...(s.dbServers ? { db_servers: s.dbServers } : {}),
  };
}

export const settingsYaml = (s: SecuritySettings) => toYaml(settingsDocument(s));

/** How long a process trusts what it read: an admin's change reaches every process within this. */
const FRESH_MS = 5_000;

/**
 * The settings table in the master database: one row, the whole document, with who wrote it and when. A read is
 * cached briefly, so that every connection and every chat line does not ask the master again.
 */
export class SettingsStore {
  private cached: { at: number; settings: Promise<SecuritySettings> } | undefined;

  constructor(
    private readonly db: Knex,
    readonly table: string,
  ) {}

  read(): Promise<SecuritySettings> {
    if (!this.cached || Date.now() - this.cached.at > FRESH_MS) {
      const settings = this.load();
      settings.catch(() => (this.cached = undefined));
      this.cached = { at: Date.now(), settings };
    }
    return this.cached.settings;
  }

  private async load(): Promise<SecuritySettings> {
    const row = (await this.db(this.table).where({ name: 'security' }).first()) as { value: string } | undefined;
    return row ? parseSettings(JSON.parse(row.value)) : NO_SETTINGS;
  }

  /** Who wrote the settings last, and when (unix ms). */
  async written(): Promise<{ by: string; at: number } | undefined> {
    const row = (await this.db(this.table).where({ name: 'security' }).first()) as
      | { updated_by: string; updated_at: number }
      | undefined;
    return row ? { by: row.updated_by, at: Number(row.updated_at) } : undefined;
  }

  async write(settings: SecuritySettings, by: string): Promise<void> {
    const value = JSON.stringify(settingsDocument(settings));
    await this.db(this.table)
      .insert({ name: 'security', value, updated_by: by, updated_at: Date.now() })
      .onConflict('name')
      .merge();
    this.cached = undefined;
  }
}
