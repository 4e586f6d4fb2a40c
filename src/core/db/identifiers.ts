import { errorKind } from '../errors.ts';
/**
 * Database names and table prefixes end up inside SQL text, where binds cannot go, so each is checked against a
 * strict pattern before use and then always quoted.
 */
export class IdentifierError extends errorKind('config') {}

const DATABASE_NAME = /^[A-Za-z0-9_$]{1,64}$/;
const TABLE_PREFIX = /^[a-z_][a-z0-9_]{0,19}$/;
const TABLE_NAME = /^[a-z][a-z0-9_]{0,62}$/;

export function assertDatabaseName(name: string): string {
  if (!DATABASE_NAME.test(name)) {
    throw new IdentifierError(`database name '${name}' may hold only letters, digits, _ and $ (1 to 64 characters)`);
  }
  return name;
}

export function assertTablePrefix(prefix: string): string {
  if (!TABLE_PREFIX.test(prefix)) {
    throw new IdentifierError(
      `table prefix '${prefix}' may hold only lower-case letters, digits and _, and not start with a digit`,
    );
  }
  return prefix;
}

export function assertTableName(name: string): string {
  if (!TABLE_NAME.test(name)) throw new IdentifierError(`table name '${name}' is not a Moodle table name`);
  return name;
}

/** Text matched literally inside a LIKE pattern: its `\`, `%` and `_` escaped. */
export const escapeLike = (text: string) => text.replace(/[\\%_]/g, '\\$&');

export function quoteId(name: string): string {
  return `\`${name}\``;
}

/** `db`.`prefixtable`, the only form generated SQL uses, so a pooled connection's current database never matters. */
export function qualifiedTable(database: string, prefix: string, table: string): string {
  return `${quoteId(assertDatabaseName(database))}.${quoteId(assertTablePrefix(prefix) + assertTableName(table))}`;
}
