import type { PoolConnection } from 'mysql2/promise';
import type { CommandDef, Params } from '../command.ts';
import { describeError } from '../moodle/db-errors.ts';
import { purgeDataCache } from '../moodle/cache.ts';
import { commitsImplicitly, expandTables, namedParameters, splitStatements } from '../moodle/sql.ts';
import { isReadOnlyStatement } from '../moodle/sql-parse.ts';
import type { MoodleTarget } from '../moodle/target.ts';

const sqlParams = [
  { name: 'sql', type: 'ltext', label: 'SQL (tables as {name}, values as :name)', binds: true },
  { name: 'purge', type: 'boolean', label: 'Purge caches after a write', default: '1' },
] as const;

/** The binds of one statement: the `:name` values it uses, taken from the run's parameters. */
function binds(statement: string, params: Params): Record<string, string> {
  return Object.fromEntries(namedParameters(statement).map((n) => [n, params[n] as string]));
}

async function execute(conn: PoolConnection, target: MoodleTarget, statement: string, params: Params) {
  const [result] = await conn.query({ sql: expandTables(statement, target.db), namedPlaceholders: true }, binds(statement, params));
  return result;
}

const affected = (result: unknown) => Number((result as { affectedRows?: number }).affectedRows ?? 0);

const singleSelect = (p: Params) => {
  const statements = splitStatements(p.sql as string);
  return statements.length === 1 && isReadOnlyStatement(statements[0] as string);
};

/** What operator SQL is: destructive unless a single SELECT, never reversible, reading from no source. */
const SQL_TRAITS = { destructive: (p: Params) => !singleSelect(p), reversible: false, needsSource: false, writes: true } as const;

export const sql: CommandDef = {
  name: 'sql/sql',
  category: 'sql',
  summary: 'Run one SQL statement; with returned=1 the first row comes back as the result',
  params: [
    ...sqlParams,
    { name: 'returned', type: 'boolean', label: 'Return the first row', default: '0' },
  ],
  ...SQL_TRAITS,
  idempotent: singleSelect,
  async apply(ctx, target, p) {
    const statements = splitStatements(p.sql as string);
    if (statements.length !== 1) throw new Error(`sql/sql runs one statement; this has ${statements.length} (use sql/multisql)`);
    const statement = statements[0] as string;
    const result = await ctx.moodle.withUserSqlConnection(target, (conn) => execute(conn, target, statement, p));
    const readOnly = isReadOnlyStatement(statement);
    const cachePurged = !readOnly && p.purge === '1' ? await purgeDataCache(target) : undefined;
    if (p.returned === '1' || readOnly) {
      const row = Array.isArray(result) ? (result[0] as object | undefined) : undefined;
      return { status: 'applied', value: row === undefined ? '' : JSON.stringify(row), message: `${Array.isArray(result) ? result.length : 0} rows`, cachePurged };
    }
    return { status: 'applied', message: `${affected(result)} rows affected`, cachePurged };
  },
};

export const multiSql: CommandDef = {
  name: 'sql/multisql',
  category: 'sql',
  summary: 'Run several SQL statements in order, in one transaction when they allow it, stopping at the first error',
  params: sqlParams,
  ...SQL_TRAITS,
  idempotent: false,
  async apply(ctx, target, p) {
    const statements = splitStatements(p.sql as string);
    if (statements.length === 0) throw new Error('no statement to run');
    const ddl = statements.findIndex(commitsImplicitly);
    const transactional = ddl < 0;
    let total = 0;
    await ctx.moodle.withUserSqlConnection(target, async (conn) => {
      if (transactional) await conn.beginTransaction();
      for (const [i, statement] of statements.entries()) {
        try {
          total += affected(await execute(conn, target, statement, p));
        } catch (err) {
          if (transactional) await ctx.moodle.rollback(conn);
          const kept = transactional ? 'nothing was changed (rolled back)' : i > 0 ? `statements 1 to ${i} stay applied (statement ${ddl + 1} commits implicitly, so no transaction)` : 'nothing was changed';
          throw Object.assign(new Error(`statement ${i + 1} of ${statements.length} failed: ${describeError(err)}; ${kept}`), { code: (err as { code?: string }).code, errno: (err as { errno?: number }).errno });
        }
      }
      if (transactional) await conn.commit();
    });
    const cachePurged = p.purge === '1' ? await purgeDataCache(target) : undefined;
    return { status: 'applied', message: `${statements.length} statements, ${total} rows affected${transactional ? '' : ' (no transaction: DDL)'}`, cachePurged };
  },
};

export const SQL_COMMANDS: readonly CommandDef[] = [sql, multiSql];
