/**
 * Errors worth another try: the server was unreachable, full or busy, and nothing was committed. Everything else
 * (SQL syntax, a missing table, a refused value) fails the same way every time.
 */
const TRANSIENT_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'PROTOCOL_CONNECTION_LOST',
  'ER_CON_COUNT_ERROR',
  'ER_TOO_MANY_USER_CONNECTIONS',
  'ER_LOCK_WAIT_TIMEOUT',
  'ER_LOCK_DEADLOCK',
  'ER_SERVER_SHUTDOWN',
  'ER_QUERY_INTERRUPTED',
]);

export function isTransient(err: unknown): boolean {
  const { code, name } = err as { code?: string; name?: string };
  // A pool that found no connection in time: its server was away or full, and nothing was sent.
  return (code !== undefined && TRANSIENT_CODES.has(code)) || name === 'KnexTimeoutError';
}

/** What a connection's failure means, said of the kind of server it was made to. */
const CONNECTION_FAILURES: Record<string, (server: string) => string> = {
  ECONNREFUSED: (server) => `${server} server refused the connection`,
  ETIMEDOUT: (server) => `${server} server did not answer in time`,
  ENOTFOUND: (server) => `${server} host name not found`,
};

const FRIENDLY: Record<string, string> = {
  ER_ACCESS_DENIED_ERROR: 'database login refused',
  ER_ACCESS_DENIED_NO_PASSWORD_ERROR: 'database login refused',
  ER_DBACCESS_DENIED_ERROR: 'database login refused for this database',
  ER_TABLEACCESS_DENIED_ERROR: 'the database account lacks a right on a table',
  ER_BAD_DB_ERROR: 'database does not exist',
  ER_NO_SUCH_TABLE: 'table does not exist',
  ER_BAD_FIELD_ERROR: 'unknown column',
  ER_CON_COUNT_ERROR: 'database server has too many connections',
  ER_LOCK_WAIT_TIMEOUT: 'lock wait timeout',
  ER_LOCK_DEADLOCK: 'deadlock',
  ER_PARSE_ERROR: 'SQL syntax error',
  ER_DUP_ENTRY: 'a row with the same unique key already exists',
  ER_DATA_TOO_LONG: 'a value is too long for its column',
  ER_WARN_DATA_OUT_OF_RANGE: 'a number is out of range for its column',
  ER_TRUNCATED_WRONG_VALUE: 'a value has the wrong type for its column',
  ER_TRUNCATED_WRONG_VALUE_FOR_FIELD: 'a value has the wrong type for its column',
};

/**
 * Server messages that name only accounts, tables and columns, never a value, so they may be shown. Others (a
 * duplicate entry, a wrong value) quote the value, and a query builder's message holds the whole statement.
 */
const VALUE_FREE = new Set([
  'ER_ACCESS_DENIED_ERROR',
  'ER_ACCESS_DENIED_NO_PASSWORD_ERROR',
  'ER_DBACCESS_DENIED_ERROR',
  'ER_TABLEACCESS_DENIED_ERROR',
  'ER_COLUMNACCESS_DENIED_ERROR',
  'ER_SPECIFIC_ACCESS_DENIED_ERROR',
  'ER_BAD_DB_ERROR',
  'ER_NO_SUCH_TABLE',
  'ER_BAD_FIELD_ERROR',
  'ER_BAD_TABLE_ERROR',
  'ER_NON_UNIQ_ERROR',
  'ER_DATA_TOO_LONG',
  'ER_WARN_DATA_OUT_OF_RANGE',
  'ER_BAD_NULL_ERROR',
  'ER_NO_DEFAULT_FOR_FIELD',
  'ER_LOCK_WAIT_TIMEOUT',
  'ER_LOCK_DEADLOCK',
  'ER_CON_COUNT_ERROR',
  'ER_TOO_MANY_USER_CONNECTIONS',
  'ER_SP_DOES_NOT_EXIST',
]);

/**
 * One line for an operator. A database error is its code and a plain sentence (with the server's own words only
 * where they hold no value), never the statement or its values; a connection error says what failed where.
 */
export function describeError(err: unknown, server = 'database'): string {
  const e = err as { code?: string; message?: string; sqlMessage?: string; sqlState?: string; syscall?: string };
  const message = (e.message ?? String(err)).split('\n')[0] as string;
  if (e.sqlMessage !== undefined || e.sqlState !== undefined) {
    const code = e.code ?? 'ER_UNKNOWN';
    const plain = FRIENDLY[code] ?? 'the database refused the statement';
    const line = /at line (\d+)$/.exec(e.sqlMessage ?? '')?.[1];
    const detail = VALUE_FREE.has(code)
      ? `: ${e.sqlMessage}`
      : code === 'ER_PARSE_ERROR' && line
        ? ` at line ${line}`
        : '';
    return `${plain} (${code})${detail}`.slice(0, 500);
  }
  const friendly = e.code && e.syscall !== undefined ? CONNECTION_FAILURES[e.code]?.(server) : undefined;
  if (friendly && !message.toLowerCase().includes(friendly)) return `${friendly} (${e.code}): ${message}`.slice(0, 500);
  return message.slice(0, 500);
}

/**
 * An error shaped as a driver's, with its `code` (and `errno` where known), for a failure that isTransient and
 * describeError must read as the driver's own: a statement's error passed on with its context, a timeout, a refusal.
 */
export function driverStyleError(message: string, fields: { code?: string; errno?: number; fatal?: boolean }): Error {
  return Object.assign(new Error(message), fields);
}
