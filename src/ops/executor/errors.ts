/**
 * Errors worth another try: the server was unreachable, full or busy, and nothing was committed. Everything else
 * (SQL syntax, a missing table, a refused value) fails the same way every time.
 */
const TRANSIENT_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'PROTOCOL_CONNECTION_LOST',
  'ER_CON_COUNT_ERROR', 'ER_TOO_MANY_USER_CONNECTIONS', 'ER_LOCK_WAIT_TIMEOUT', 'ER_LOCK_DEADLOCK', 'ER_SERVER_SHUTDOWN',
  'ER_QUERY_INTERRUPTED',
]);

export function isTransient(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code !== undefined && TRANSIENT_CODES.has(code);
}

const FRIENDLY: Record<string, string> = {
  ECONNREFUSED: 'database server refused the connection',
  ETIMEDOUT: 'database server did not answer in time',
  ENOTFOUND: 'database host name not found',
  ER_ACCESS_DENIED_ERROR: 'database login refused',
  ER_BAD_DB_ERROR: 'database does not exist',
  ER_NO_SUCH_TABLE: 'table does not exist',
  ER_CON_COUNT_ERROR: 'database server has too many connections',
  ER_LOCK_WAIT_TIMEOUT: 'lock wait timeout',
  ER_LOCK_DEADLOCK: 'deadlock',
};

/** One line for an operator. Drivers quote the login in access errors, never the password; the text is kept short. */
export function describeError(err: unknown): string {
  const e = err as { code?: string; message?: string; sqlMessage?: string; syscall?: string };
  // Only a driver's own error gets the plain-words prefix; a command's message already says what happened.
  const fromDriver = e.sqlMessage !== undefined || e.syscall !== undefined;
  const friendly = e.code && fromDriver ? FRIENDLY[e.code] : undefined;
  const message = (e.message ?? String(err)).split('\n')[0] as string;
  if (friendly && !message.toLowerCase().includes(friendly)) return `${friendly} (${e.code}): ${message}`.slice(0, 500);
  return message.slice(0, 500);
}

export class TargetTimeoutError extends Error {}
