import { createRequire } from 'node:module';
import type { Knex } from 'knex';
import { parseMysqlUrl } from './mysql-url.ts';

/** A knex instance on one MySQL/MariaDB database, configured from a mysql:// URL. */
export function openDatabase(url: string, opts: { poolMax?: number } = {}): Knex {
  const target = parseMysqlUrl(url, { requireDatabase: true });
  // Loaded on the first database opened: a command line that opens none (help, a malformed line) starts faster.
  const knex = createRequire(import.meta.url)('knex') as typeof import('knex').knex;
  return knex({
    client: 'mysql2',
    connection: {
      host: target.host,
      port: target.port,
      user: target.user,
      password: target.password,
      database: target.database,
      socketPath: target.socketPath,
      charset: 'utf8mb4',
      supportBigNumbers: true,
    },
    pool: { min: 0, max: opts.poolMax ?? 4 },
    // Failures reach the caller as errors, which say it once and without secrets; knex would also print them.
    log: { warn: () => undefined, error: () => undefined, deprecate: () => undefined, debug: () => undefined },
  });
}
