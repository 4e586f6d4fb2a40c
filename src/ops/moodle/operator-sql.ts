import { qualifiedTable } from '../../core/db/identifiers.ts';
import { hasExecutableComment, parseStatement, SqlRefusal, type Node } from './sql-parse.ts';
import { MASK, SENSITIVE_CORE, SENSITIVE_PATTERN, SENSITIVE_PLUGIN } from './sensitive.ts';
import type { MoodleDb } from './target.ts';

/**
 * What operator SQL may reach: the instance's own tables, named `{name}`, through SELECT, INSERT, UPDATE and DELETE
 * (and DDL on its own tables in multisql), never the registry, password hashes, tokens, sessions, MFA or OAuth
 * secrets, nor a password-type setting's value (docs/security.md, "Operator SQL reads what the instance owns").
 * Checked on the statement as the operator wrote it, before `{name}` is expanded, at plan time and again when it runs.
 */

/** Tables no operator SQL names at all, with what they hold. */
const PROTECTED_TABLES: Readonly<Record<string, string>> = {
  local_vmoodle: "the fleet's database logins",
  external_tokens: 'web service tokens',
  sessions: 'login sessions',
  user_private_key: 'private keys',
  user_password_history: 'password hashes',
  user_password_resets: 'password reset tokens',
  mnet_session: 'MNET session tokens',
  oauth2_access_token: 'OAuth 2 tokens',
  oauth2_refresh_token: 'OAuth 2 tokens',
  oauth2_system_account: 'OAuth 2 tokens',
  tool_mfa: 'MFA factors',
  tool_mfa_secrets: 'MFA secrets',
  tool_mfa_auth: 'MFA state',
  lti_access_tokens: 'LTI tokens',
  lti_types_config: 'LTI tool secrets',
  repository_instance_config: 'repository credentials',
  portfolio_instance_config: 'portfolio credentials',
};

/** Columns no operator SQL names, nor reads through `*`. */
const PROTECTED_COLUMNS: Readonly<Record<string, readonly string[]>> = {
  user: ['password', 'secret'],
  oauth2_issuer: ['clientsecret'],
  lti: ['password', 'resourcekey'],
  badge_backpack_oauth2: ['token', 'refreshtoken'],
};

/**
 * Settings tables, and the setting log that holds their old and new values: their password-type rows are read
 * masked, and written only by literal name (generic/setconfig writes any setting). `plugin` says whose rows they
 * are: core's, a plugin's, or either (the log's plugin is NULL for core).
 */
const SETTING_TABLES: Readonly<
  Record<string, { columns: readonly string[]; masked: readonly string[]; plugin: 'core' | 'plugin' | 'either' }>
> = {
  config: { columns: ['id', 'name', 'value'], masked: ['value'], plugin: 'core' },
  config_plugins: { columns: ['id', 'plugin', 'name', 'value'], masked: ['value'], plugin: 'plugin' },
  config_log: {
    columns: ['id', 'userid', 'timemodified', 'plugin', 'name', 'value', 'oldvalue'],
    masked: ['value', 'oldvalue'],
    plugin: 'either',
  },
};

const KINDS = ['select', 'insert', 'update', 'delete'];
const DDL_KINDS = ['create', 'alter', 'drop', 'truncate', 'rename'];

/** `{name}` as the parser sees it: a plain identifier no Moodle table has. */
const MARK = 'vmops_t__';
const TABLE_WORD = /\{([a-z][a-z0-9_]*)\}/g;

const kindOf = (ast: Node) => String(ast.type ?? '').toLowerCase();

/** The first word of a statement, for refusals of kinds the parser cannot read. */
const firstWord = (sql: string) => (/^\s*\(*\s*([A-Za-z]+)/.exec(sql)?.[1] ?? 'this').toUpperCase();

export interface CheckedStatement {
  kind: string;
  /** The `{name}` tables it names, read or written. */
  tables: string[];
}

/** Refuses an operator's statement that reaches beyond the instance's own tables, saying what and why. */
export function checkOperatorStatement(statement: string, opts: { ddl: boolean }): CheckedStatement {
  if (hasExecutableComment(statement))
    throw new SqlRefusal('comments MariaDB runs (/*! … */, /*M! … */) are not allowed');
  if (statement.toLowerCase().includes(MARK)) throw new SqlRefusal(`'${MARK}' may not appear in operator SQL`);
  const allowed = opts.ddl ? [...KINDS, ...DDL_KINDS] : KINDS;
  const word = firstWord(statement);
  let parsed: ReturnType<typeof parseStatement>;
  try {
    parsed = parseStatement(statement.replace(TABLE_WORD, (_, name: string) => MARK + name));
  } catch (err) {
    if (!allowed.includes(word.toLowerCase())) throw refusedKind(word, allowed);
    throw new SqlRefusal(`${(err as Error).message}: only statements the parser can read are run`);
  }
  const kind = kindOf(parsed.ast);
  if (!allowed.includes(kind)) throw refusedKind(kind.toUpperCase() || word, allowed);
  if (parsed.ast.with) throw new SqlRefusal('WITH is not allowed: name the tables as {name} in the statement itself');
  const into = parsed.ast.into as Node | null | undefined;
  if (into?.type) throw new SqlRefusal('SELECT … INTO is not allowed: the result comes back with returned=1');
  const tables = parsed.tables.map((entry) => {
    const [, db, table] = entry.split('::') as [string, string, string];
    if (db !== 'null' || !table.startsWith(MARK)) {
      const named = db !== 'null' ? `${db}.${table}` : table;
      throw new SqlRefusal(`name tables as {name}, the instance's own without prefix (e.g. {config}): ${named} is not`);
    }
    return table.slice(MARK.length);
  });
  for (const table of tables) {
    const what = PROTECTED_TABLES[table] ?? (table.startsWith('vmops_') ? "the product's own records" : undefined);
    if (what) throw new SqlRefusal(`${table} is protected: it holds ${what}`);
  }
  for (const entry of parsed.columns) {
    const [, owner, column] = entry.split('::') as [string, string, string];
    const owners = owner === 'null' ? tables : [owner.startsWith(MARK) ? owner.slice(MARK.length) : owner];
    for (const table of owners) {
      const secret = PROTECTED_COLUMNS[table];
      if (!secret) continue;
      const hit = column === '(.*)' ? secret[0] : secret.find((c) => c === column.toLowerCase());
      if (hit)
        throw new SqlRefusal(
          `${table}.${hit} is protected${column === '(.*)' ? ' (and * would read it): name the columns you need' : ''}`,
        );
    }
  }
  if (kind !== 'select') checkSettingWrite(kind, tables, parsed.columns);
  return { kind, tables };
}

function refusedKind(kind: string, allowed: readonly string[]): SqlRefusal {
  return new SqlRefusal(
    `${kind} statements are not allowed (allowed: ${allowed.map((k) => k.toUpperCase()).join(', ')})`,
  );
}

/**
 * A write to a settings table may read neither its values (a WHERE on them, or the rows it changed, would tell a
 * password bit by bit) nor another table (a password could be copied where it is readable).
 */
function checkSettingWrite(kind: string, tables: readonly string[], columns: readonly string[]): void {
  const setting = tables.find((t) => t in SETTING_TABLES);
  if (!setting) return;
  const refuse = (why: string) =>
    new SqlRefusal(
      `${kind.toUpperCase()} on {${setting}} ${why}; generic/setconfig and generic/setpluginconfig write any setting`,
    );
  if (new Set(tables).size > 1) throw refuse('may not read another table');
  const masked = (SETTING_TABLES[setting] as (typeof SETTING_TABLES)[string]).masked;
  const read = columns
    .filter((c) => c.startsWith('select::'))
    .map((c) => (c.split('::')[2] ?? '').toLowerCase())
    .find((c) => masked.includes(c) || c === '(.*)');
  if (read) throw refuse(`may not read ${read === '(.*)' ? 'every column' : read}, which may hold a password`);
}

const sqlList = (values: Iterable<string>) => [...values].map((v) => `'${v.replace(/'/g, "''")}'`).join(', ');

/** A settings table as a read sees it: password-type values masked, so no query on it returns or tests one. */
function maskedSettings(db: MoodleDb, table: string): string {
  const { columns, masked, plugin } = SETTING_TABLES[table] as (typeof SETTING_TABLES)[string];
  const pattern = `name REGEXP '${SENSITIVE_PATTERN.source.replace(/'/g, "''")}'`;
  const core = `(name IN (${sqlList(SENSITIVE_CORE)}) OR ${pattern})`;
  const ofPlugin = `(CONCAT(plugin, '/', name) IN (${sqlList(SENSITIVE_PLUGIN)}) OR ${pattern})`;
  const secret =
    plugin === 'core'
      ? core
      : plugin === 'plugin'
        ? ofPlugin
        : `IF(plugin IS NULL OR plugin IN ('core', 'moodle'), ${core}, ${ofPlugin})`;
  const select = columns
    .map((c) => (masked.includes(c) ? `IF(${secret}, '${MASK}', \`${c}\`) AS \`${c}\`` : `\`${c}\``))
    .join(', ');
  return `(SELECT ${select} FROM ${qualifiedTable(db.database, db.prefix, table)})`;
}

/** Words after a table that are SQL, not an alias the operator gave it. */
const NOT_ALIAS = new Set([
  'WHERE',
  'JOIN',
  'INNER',
  'LEFT',
  'RIGHT',
  'CROSS',
  'NATURAL',
  'STRAIGHT_JOIN',
  'ON',
  'USING',
  'GROUP',
  'ORDER',
  'LIMIT',
  'HAVING',
  'UNION',
  'EXCEPT',
  'INTERSECT',
  'WINDOW',
  'FOR',
  'LOCK',
  'INTO',
  'SET',
  'PARTITION',
  'FULL',
  'OUTER',
  'USE',
  'IGNORE',
  'FORCE',
  'VALUES',
]);

/**
 * A checked statement with `{name}` expanded to the instance's `db`.`prefix_name`; in a SELECT, a settings table
 * becomes a masked view of itself, named as the operator named it (its alias, or its own name).
 */
export function expandOperatorStatement(statement: string, db: MoodleDb, checked: CheckedStatement): string {
  return statement.replace(TABLE_WORD, (whole, name: string, offset: number) => {
    if (checked.kind !== 'select' || !(name in SETTING_TABLES)) return qualifiedTable(db.database, db.prefix, name);
    const after = statement.slice(offset + whole.length);
    if (after.startsWith('.')) return `\`${name}\``;
    const next = /^\s*([A-Za-z_][A-Za-z0-9_]*)/.exec(after)?.[1];
    const aliased = next !== undefined && (next.toUpperCase() === 'AS' || !NOT_ALIAS.has(next.toUpperCase()));
    return `${maskedSettings(db, name)}${aliased ? '' : ` AS \`${name}\``}`;
  });
}
