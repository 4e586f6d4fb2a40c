import mysql, { type Pool, type PoolConnection } from 'mysql2/promise';
import { qualifiedTable } from '../../db/identifiers.ts';
import { serverKey, type MoodleTarget } from './target.ts';

export interface AccessOptions {
  /** Connections at most per DB server (and login); well under MariaDB's default max_connections of 151. */
  perServer: number;
  connectTimeoutMs: number;
}

export const DEFAULT_ACCESS: AccessOptions = { perServer: 20, connectTimeoutMs: 5_000 };

/**
 * Pooled access to the fleet's databases: one small pool per DB server, not per instance. Generated SQL always
 * names `db`.`prefix_table`, so a connection's current database never matters; a connection that ran an
 * operator's SQL is destroyed, not returned, since it may carry session state.
 */
export class MoodleAccess {
  private readonly pools = new Map<string, Pool>();
  private peak = 0;
  private open = 0;

  constructor(private readonly options: AccessOptions = DEFAULT_ACCESS) {}

  private pool(target: MoodleTarget): Pool {
    const key = serverKey(target.db);
    let pool = this.pools.get(key);
    if (!pool) {
      pool = mysql.createPool({
        host: target.db.host,
        port: target.db.port,
        user: target.db.user,
        password: target.db.password,
        connectionLimit: this.options.perServer,
        connectTimeout: this.options.connectTimeoutMs,
        charset: 'utf8mb4',
        supportBigNumbers: true,
        bigNumberStrings: true,
        dateStrings: true,
      });
      this.pools.set(key, pool);
    }
    return pool;
  }

  /** `db`.`prefix_table` of this target. */
  table(target: MoodleTarget, name: string): string {
    return qualifiedTable(target.db.database, target.db.prefix, name);
  }

  private async lease<T>(target: MoodleTarget, work: (conn: PoolConnection) => Promise<T>, discard: boolean): Promise<T> {
    const conn = await this.pool(target).getConnection();
    this.peak = Math.max(this.peak, ++this.open);
    try {
      return await work(conn);
    } finally {
      this.open--;
      if (discard) conn.destroy();
      else conn.release();
    }
  }

  withConnection<T>(target: MoodleTarget, work: (conn: PoolConnection) => Promise<T>): Promise<T> {
    return this.lease(target, work, false);
  }

  /** A connection for SQL an operator wrote; destroyed afterwards whatever it did to its session. */
  withUserSqlConnection<T>(target: MoodleTarget, work: (conn: PoolConnection) => Promise<T>): Promise<T> {
    return this.lease(target, work, true);
  }

  async withTransaction<T>(target: MoodleTarget, work: (conn: PoolConnection) => Promise<T>): Promise<T> {
    return this.withConnection(target, async (conn) => {
      await conn.beginTransaction();
      try {
        const result = await work(conn);
        await conn.commit();
        return result;
      } catch (err) {
        await conn.rollback().catch(() => {});
        throw err;
      }
    });
  }

  /** The most connections this process held at once. */
  get peakConnections(): number {
    return this.peak;
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.end()));
    this.pools.clear();
  }
}
