import type { Connection } from 'mysql2/promise';
import { defineCommand, type CommandContext, type CommandDef, type ParamValues } from './command.ts';
import { ParamError } from './params.ts';
import { describeError, driverStyleError } from '../../core/db/db-errors.ts';
import { purgeAll, PURGE_THROUGH_MOODLE } from '../moodle/cache.ts';
import { commitsImplicitly, namedParameters, splitStatements } from '../moodle/sql-split.ts';
import { isReadOnlyStatement, SqlRefusal } from '../moodle/sql-parse.ts';
import { checkOperatorStatement, expandOperatorStatement } from '../moodle/operator-sql.ts';
import type { MoodleTarget } from '../moodle/target.ts';

/** Every statement only reads: there is nothing to purge after it. */
const readsOnly = (sql: string) => splitStatements(sql).every((s) => isReadOnlyStatement(s));

/** Every statement checked as operator SQL (see operator-sql.ts); the first refusal, with its statement's number. */
function sqlProblem(sql: string, ddl: boolean): string | undefined {
  const statements = splitStatements(sql);
  for (const [i, statement] of statements.entries()) {
    try {
      checkOperatorStatement(statement, { ddl });
    } catch (err) {
      if (!(err instanceof SqlRefusal)) throw err;
      return statements.length > 1 ? `statement ${i + 1}: ${err.message}` : err.message;
    }
  }
  return undefined;
}

const sqlParams = (ddl: boolean) =>
  [
    {
      name: 'sql',
      type: 'ltext',
      label: 'SQL (tables as {name}, values as :name)',
      binds: true,
      help: ddl
        ? "SELECT, INSERT, UPDATE, DELETE, and DDL on the instance's own {tables}"
        : "one SELECT, INSERT, UPDATE or DELETE on the instance's own {tables}",
      validate: (v: string) => sqlProblem(v, ddl),
    },
    {
      name: 'purge',
      type: 'enum',
      choices: ['auto', '1', '0'],
      default: 'auto',
      label: 'Purge caches afterwards, as purgecaches does',
      help: 'auto: after a write, none after a read-only SELECT; 1 is refused with a read-only SELECT, which changes nothing to purge',
      validate: (v: string, all: Readonly<Record<string, string>>) =>
        v === '1' && all.sql !== undefined && readsOnly(all.sql)
          ? 'purge=1 with a read-only statement: it changes nothing, so there is nothing to purge'
          : undefined,
    },
  ] as const;

/** The binds of one statement: the `:name` values it uses, taken from the run's parameters. */
function binds(statement: string, params: SqlParams): Record<string, string | undefined> {
  return Object.fromEntries(namedParameters(statement).map((n) => [n, params[n]]));
}

type SqlParams = ParamValues<ReturnType<typeof sqlParams>>;

/** Whether a run of this SQL ends with a full purge. */
const purges = (p: SqlParams) => p.purge === '1' || (p.purge === 'auto' && !readsOnly(p.sql));

async function execute(conn: Connection, target: MoodleTarget, statement: string, params: SqlParams, ddl = false) {
  const sql = expandOperatorStatement(statement, target.db, checkOperatorStatement(statement, { ddl }));
  const [result] = await conn.query({ sql, namedPlaceholders: true }, binds(statement, params));
  return result;
}

const affected = (result: unknown) => Number((result as { affectedRows?: number }).affectedRows ?? 0);

const singleSelect = (p: SqlParams) => {
  const statements = splitStatements(p.sql);
  return statements.length === 1 && isReadOnlyStatement(statements[0] as string);
};

/**
 * What operator SQL is: destructive unless a single SELECT, never reversible, reading from no source; a write that
 * purges caches runs where the instance's cache folder is.
 */
const SQL_TRAITS = {
  destructive: (p: SqlParams) => !singleSelect(p),
  reversible: false,
  needsSource: false,
  writes: true,
  runsOn: (p: SqlParams) => (purges(p) ? 'node' : 'any'),
  phpScripts: PURGE_THROUGH_MOODLE,
} as const;

export const sql = defineCommand({
  name: 'sql/sql',
  category: 'sql',
  summary: 'Run one SQL statement; with returned=1 the first row comes back as the result',
  params: [...sqlParams(false), { name: 'returned', type: 'boolean', label: 'Return the first row', default: '0' }],
  ...SQL_TRAITS,
  idempotent: singleSelect,
  async apply(ctx, target, p) {
    const statements = splitStatements(p.sql);
    if (statements.length !== 1)
      throw new ParamError(`sql/sql runs one statement; this has ${statements.length} (use sql/multisql)`);
    const statement = statements[0] as string;
    const result = await ctx.moodle.withUserSqlConnection(target, (conn) => execute(conn, target, statement, p));
    const readOnly = isReadOnlyStatement(statement);
    const cache = purges(p) ? await purgeAll(ctx, target) : {};
    if (p.returned === '1' || readOnly) {
      const row = Array.isArray(result) ? (result[0] as object | undefined) : undefined;
      return {
        status: 'applied',
        value: row === undefined ? '' : JSON.stringify(row),
        message: `${Array.isArray(result) ? result.length : 0} rows`,
        ...cache,
      };
    }
    return { status: 'applied', message: `${affected(result)} rows affected`, ...cache };
  },
});

export const multiSql = defineCommand({
  name: 'sql/multisql',
  category: 'sql',
  summary: 'Run several SQL statements in order, in one transaction when they allow it, stopping at the first error',
  params: sqlParams(true),
  ...SQL_TRAITS,
  idempotent: false,
  async apply(ctx, target, p) {
    const statements = splitStatements(p.sql);
    if (statements.length === 0) throw new ParamError('no statement to run');
    const ddl = statements.findIndex(commitsImplicitly);
    const transactional = ddl < 0;
    let total = 0;
    await ctx.moodle.withUserSqlConnection(target, async (conn) => {
      if (transactional) await conn.beginTransaction();
      for (const [i, statement] of statements.entries()) {
        try {
          total += affected(await execute(conn, target, statement, p, true));
        } catch (err) {
          if (transactional) await ctx.moodle.rollback(conn);
          const kept = transactional
            ? 'nothing was changed (rolled back)'
            : i > 0
              ? `statements 1 to ${i} stay applied (statement ${ddl + 1} commits implicitly, so no transaction)`
              : 'nothing was changed';
          // The driver's code and errno go with the message, so the retry decision sees the statement's own failure.
          throw driverStyleError(`statement ${i + 1} of ${statements.length} failed: ${describeError(err)}; ${kept}`, {
            code: (err as { code?: string }).code,
            errno: (err as { errno?: number }).errno,
          });
        }
      }
      if (transactional) await conn.commit();
    });
    const cache = purges(p) ? await purgeAll(ctx, target) : {};
    return {
      status: 'applied',
      message: `${statements.length} statements, ${total} rows affected${transactional ? '' : ' (no transaction: DDL)'}`,
      ...cache,
    };
  },
});

/**
 * VMoodle's "retrieve by value": one read-only statement, run on each target as sql/sql runs it; a target stays when
 * its first row holds a value that is not empty, null or zero. Refused here, before anything runs, when it could write.
 */
export function byValueProbe(statement: string): (ctx: CommandContext, target: MoodleTarget) => Promise<boolean> {
  const statements = splitStatements(statement);
  if (statements.length !== 1 || !isReadOnlyStatement(statements[0] as string))
    throw new ParamError('--by-value takes one read-only statement (a SELECT)');
  const problem = sqlProblem(statement, false);
  if (problem) throw new ParamError(`--by-value: ${problem}`);
  const params = { sql: statement, purge: '0' } as SqlParams;
  return async (ctx, target) => {
    const result = await ctx.moodle.withUserSqlConnection(target, (conn) =>
      execute(conn, target, statements[0] as string, params),
    );
    const row = Array.isArray(result) ? (result[0] as Record<string, unknown> | undefined) : undefined;
    return row !== undefined && Object.values(row).some((v) => v !== null && v !== '' && v !== 0 && v !== '0');
  };
}

export const SQL_COMMANDS: readonly CommandDef[] = [sql, multiSql];
