import { errorKind } from '../errors.ts';
export interface MysqlServer {
  host: string;
  port: number;
  user: string;
  password: string | undefined;
  /** A unix socket path, given as ?socket=/path, used instead of host and port. */
  socketPath: string | undefined;
}

export interface MysqlTarget extends MysqlServer {
  database: string | undefined;
}

export class MysqlUrlError extends errorKind('config') {}

/** Parses mysql://user:password@host:port/database[?socket=/path]. */
export function parseMysqlUrl(raw: string, opts: { requireDatabase?: boolean } = {}): MysqlTarget {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new MysqlUrlError('not a URL');
  }
  if (url.protocol !== 'mysql:' && url.protocol !== 'mariadb:')
    throw new MysqlUrlError(`scheme ${url.protocol} is not mysql:`);
  if (!url.hostname) throw new MysqlUrlError('no host');
  const database = decodeURIComponent(url.pathname.replace(/^\//, '')) || undefined;
  if (opts.requireDatabase && !database) throw new MysqlUrlError('no database name');
  return {
    host: url.hostname,
    port: url.port ? Number(url.port) : 3306,
    user: decodeURIComponent(url.username) || 'root',
    password: url.password ? decodeURIComponent(url.password) : undefined,
    socketPath: url.searchParams.get('socket') ?? undefined,
    database,
  };
}

/** The URL with its password replaced, fit for messages and logs. */
export function redactUrl(raw: string): string {
  try {
    const url = new URL(raw);
    if (url.password) url.password = '***';
    return url.toString();
  } catch {
    // biome-ignore lint/plugin: what cannot be parsed is not shown, since it may hold a password
    return '(not a URL)';
  }
}

/** A URL naming the same server with another database. */
export function withDatabase(raw: string, database: string): string {
  const url = new URL(raw);
  url.pathname = `/${encodeURIComponent(database)}`;
  return url.toString();
}
