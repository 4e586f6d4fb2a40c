import knex, { type Knex } from 'knex';
import { parseMysqlUrl } from './mysql-url.ts';

/** A knex instance on one MySQL/MariaDB database, configured from a mysql:// URL. */
export function openDatabase(url: string, opts: { poolMax?: number } = {}): Knex {
  const target = parseMysqlUrl(url, { requireDatabase: true });
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
    log: { warn: () => {}, error: () => {}, deprecate: () => {}, debug: () => {} },
  });
}
