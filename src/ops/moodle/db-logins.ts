import { createHash, randomBytes } from 'node:crypto';
import type { Connection } from 'mysql2/promise';
import { escapeLike, quoteId } from '../../core/db/identifiers.ts';
import { serverKey, type MoodleDb } from './target.ts';

/**
 * Each instance reaches its database with a login of its own, granted on its own database only: SQL on one site
 * can then read no other site's tables, nor the master's registry (docs/security.md, "No instance gets the master's
 * login"). The logins are made and dropped by a provisioning account of the server.
 */

/** What Moodle needs on its database (its install and upgrade create, alter and drop its own tables). */
const GRANTS = 'SELECT, INSERT, UPDATE, DELETE, CREATE, CREATE TEMPORARY TABLES, ALTER, DROP, INDEX, LOCK TABLES';

/** Where logins are made: TCP from any node, and the server's own socket. */
const LOGIN_HOSTS = ['%', 'localhost'] as const;

/** A new instance's login: 16 characters at most, as VMoodle's vdblogin holds, the same for the same database and prefix. */
export const instanceLoginName = (db: Pick<MoodleDb, 'host' | 'port' | 'database' | 'prefix'>) =>
  `vmi_${createHash('sha256')
    .update(`${serverKey(db)}/${db.database}/${db.prefix}`)
    .digest('hex')
    .slice(0, 12)}`;

/** A login the product made, which only it drops. */
export const isInstanceLogin = (login: string) => /^vmi_[0-9a-f]{12}$/.test(login);

/** 32 characters, as VMoodle's vdbpass holds. */
export const newLoginPassword = () => randomBytes(24).toString('base64url');

/**
 * Makes (or resets) a login with Moodle's rights on the databases a name or a LIKE pattern covers, and nothing else;
 * run by the server's provisioning account.
 */
export async function grantLogin(
  conn: Connection,
  login: string,
  password: string,
  databases: { name: string } | { like: string },
): Promise<void> {
  // A database-level grant reads its name as a LIKE pattern: `_` and `%` are escaped to mean themselves.
  const scope = quoteId('name' in databases ? escapeLike(databases.name) : `${escapeLike(databases.like)}%`);
  for (const host of LOGIN_HOSTS) {
    await conn.query('CREATE USER IF NOT EXISTS ?@? IDENTIFIED BY ?', [login, host, password]);
    await conn.query('ALTER USER ?@? IDENTIFIED BY ?', [login, host, password]);
    await conn.query(`GRANT ${GRANTS} ON ${scope}.* TO ?@?`, [login, host]);
  }
}

export async function dropLogin(conn: Connection, login: string): Promise<void> {
  for (const host of LOGIN_HOSTS) await conn.query('DROP USER IF EXISTS ?@?', [login, host]);
}
