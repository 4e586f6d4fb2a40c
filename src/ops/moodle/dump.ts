import { errorKind } from '../../core/errors.ts';
import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import mysql from 'mysql2/promise';
import { assertDatabaseName, assertTablePrefix, quoteId } from '../../core/db/identifiers.ts';
import type { MysqlServer } from '../../core/db/mysql-url.ts';

/** A mysqldump of one Moodle database, split so that all of it or only some tables can be restored. */
export interface MoodleDump {
  prefix: string;
  /** Session settings mysqldump puts first (character set, SQL mode, checks off). */
  preamble: string[];
  /** Per table, without prefix: its DROP, CREATE and INSERT statements. */
  tables: Map<string, string[]>;
  /** The settings restored at the end. */
  postamble: string[];
}

export class DumpError extends errorKind('config') {}

/**
 * mysqldump writes every newline inside a value as `\n`, so a `;` that ends a line always ends a statement.
 */
function splitStatements(sql: string): string[] {
  return sql
    .split(/;\n/)
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((s) => (s.endsWith(';') ? s : `${s};`));
}

export function parseDump(sql: string, prefix = 'mdl_'): MoodleDump {
  assertTablePrefix(prefix);
  const dump: MoodleDump = { prefix, preamble: [], tables: new Map(), postamble: [] };
  let current: string[] | undefined;
  for (const statement of splitStatements(sql)) {
    const drop = /^DROP TABLE IF EXISTS `([^`]+)`/.exec(statement);
    if (drop) {
      const name = drop[1] as string;
      if (!name.startsWith(prefix)) throw new DumpError(`table ${name} does not have the prefix ${prefix}`);
      current = [];
      dump.tables.set(name.slice(prefix.length), current);
    }
    if (current === undefined) dump.preamble.push(statement);
    else if (/^\/\*!\d+ SET [^*]*@OLD_/.test(statement)) dump.postamble.push(statement);
    else current.push(statement);
  }
  if (dump.tables.size === 0) throw new DumpError('no table found: this is not a mysqldump of a Moodle database');
  return dump;
}

const cache = new Map<string, Promise<MoodleDump>>();

/** Reads (and gunzips) a dump whose tables have this prefix, afresh (a template's, read once per use). */
export async function readDump(path: string, prefix = 'mdl_'): Promise<MoodleDump> {
  const bytes = await readFile(path);
  return parseDump((path.endsWith('.gz') ? gunzipSync(bytes) : bytes).toString('utf8'), prefix);
}

/** Reads (and gunzips) a dump once per process. */
export function loadDump(path: string): Promise<MoodleDump> {
  let dump = cache.get(path);
  if (!dump) {
    dump = readDump(path);
    cache.set(path, dump);
  }
  return dump;
}

export interface RestoreOptions {
  /** Only these tables (names without prefix); all by default. */
  tables?: readonly string[];
  /** Only these tables get their rows; all by default. The others are created empty. */
  rowsOf?: readonly string[];
  prefix?: string;
  /** Rewrites the rows of a table (its INSERT statements) on the way, e.g. an old wwwroot for a new one. */
  rewriteRows?(table: string, insert: string): string;
}

/**
 * The SQL that restores the dump, or only some of its tables, under a table prefix of choice. Only the table
 * name at the head of each statement is renamed; the data is left as it is.
 */
export function restoreSql(dump: MoodleDump, opts: RestoreOptions = {}): string {
  const prefix = assertTablePrefix(opts.prefix ?? dump.prefix);
  const names = opts.tables ?? [...dump.tables.keys()];
  const body = names.flatMap((name) => {
    const all = dump.tables.get(name);
    if (!all) throw new DumpError(`the dump has no table ${dump.prefix}${name}`);
    const keepRows = opts.rowsOf === undefined || opts.rowsOf.includes(name);
    const kept = keepRows ? all : all.filter((s) => !s.startsWith('INSERT INTO'));
    const rewrite = opts.rewriteRows;
    const statements = rewrite ? kept.map((s) => (s.startsWith('INSERT INTO') ? rewrite(name, s) : s)) : kept;
    if (prefix === dump.prefix) return statements;
    return statements.map((s) => s.replace(`\`${dump.prefix}${name}\``, quoteId(prefix + name)));
  });
  return [...dump.preamble, ...body, ...dump.postamble].join('\n');
}

/**
 * Creates the database when missing and runs the SQL on a connection of its own (the statements name their
 * tables without a database, so the connection selects it).
 */
export async function runSqlIn(
  server: MysqlServer | mysql.ConnectionOptions,
  database: string,
  sql: string,
): Promise<void> {
  assertDatabaseName(database);
  const conn = await mysql.createConnection({
    ...server,
    database: undefined,
    multipleStatements: true,
    charset: 'utf8mb4',
  });
  try {
    await conn.query(
      `CREATE DATABASE IF NOT EXISTS ${quoteId(database)} DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`,
    );
    await conn.changeUser({ database });
    await conn.query(sql);
  } finally {
    await conn.end();
  }
}
