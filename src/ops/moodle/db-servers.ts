import { driverStyleError } from '../../core/db/db-errors.ts';
import { readFileSync } from 'node:fs';
import mysql from 'mysql2';
import { OpsError } from '../../core/errors.ts';
import { serverName, type DbServerRule } from '../../core/security-settings.ts';
import type { MoodleDb } from './target.ts';

/**
 * The one gate every login to a fleet database passes: a server an admin did not list in the settings' db_servers
 * is never connected to, so a registry row pointed elsewhere (by an edit, a register, a forged row) hands no
 * password to anyone (docs/security.md, "Credentials go only where an admin said").
 */
export class ServerNotAllowedError extends OpsError {
  constructor(message: string) {
    super('access_denied', message, {
      hint: 'an admin adds the server with vmoodle settings import (vmoodle settings propose lists the servers the registry uses)',
    });
  }
}

/** The rule that lets a login reach this server; refused with the reason otherwise. */
export function allowedServer(
  rules: readonly DbServerRule[] | undefined,
  db: Pick<MoodleDb, 'host' | 'port'>,
): DbServerRule {
  const name = serverName(db);
  if (!rules)
    throw new ServerNotAllowedError(`${name} is not an allowed database server: no list of allowed servers is set yet`);
  const rule = rules.find((r) => r.server === name);
  if (!rule) throw new ServerNotAllowedError(`${name} is not an allowed database server`);
  return rule;
}

/** A refusal in place of a password sent where it could be read: in clear, or under a key the server chose. */
const refusal =
  (plugin: string): mysql.AuthPlugin =>
  () =>
  () => {
    throw driverStyleError(
      `the server asked for ${plugin} authentication, which would expose the password without TLS; nothing was sent (require TLS for this server)`,
      { code: 'VMOPS_INSECURE_AUTH', fatal: true },
    );
  };

/** caching_sha2_password's challenge and fast path as mysql2 answers them; its full authentication, which sends the password, is refused. */
const cachingSha2FastOnly: mysql.AuthPlugin = (metadata) => {
  const step = mysql.authPlugins.caching_sha2_password({ overrideIsSecure: false })(metadata);
  const refuse = refusal('caching_sha2_password full')(metadata);
  let challenged = false;
  return (data) => {
    if (challenged && data.length === 1 && data[0] === 4) return refuse(data);
    challenged = true;
    return step(data);
  };
};

/**
 * The driver options a rule asks for. With TLS the certificate is always checked (against the rule's CA, else the
 * system's). Without it, only challenge-response logins are answered: a server asking for the password in clear or
 * encrypted with a public key it supplies gets nothing.
 */
export function connectionSecurity(rule: DbServerRule): Pick<mysql.ConnectionOptions, 'ssl' | 'authPlugins'> {
  if (rule.tls) return { ssl: { rejectUnauthorized: true, ...(rule.ca ? { ca: readFileSync(rule.ca, 'utf8') } : {}) } };
  return {
    authPlugins: {
      mysql_clear_password: refusal('mysql_clear_password'),
      sha256_password: refusal('sha256_password'),
      caching_sha2_password: cachingSha2FastOnly,
    },
  };
}
