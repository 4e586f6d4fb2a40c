import { createHmac, randomBytes } from 'node:crypto';
import { AsyncLocalStorage } from 'node:async_hooks';
import mysql, { type Pool, type PoolConnection } from 'mysql2/promise';
import { qualifiedTable } from '../../db/identifiers.ts';
import { errorFields, silentLogger, type Logger } from '../../log.ts';
import { serverKey, type MoodleTarget } from './target.ts';

export interface AccessOptions {
  /** Connections at most per DB server, whatever the logins; well under MariaDB's default max_connections of 151. */
  perServer: number;
  connectTimeoutMs: number;
  log?: Logger;
}

/**
 * The abort signal of the work under way (one target's apply): when it aborts, every connection that work holds has
 * its query killed and is closed. Commands need not pass it along.
 */
const WORK_SIGNAL = new AsyncLocalStorage<AbortSignal>();

/** Runs `work` so that aborting `signal` stops its database queries. */
export const stoppable = <T>(signal: AbortSignal, work: () => Promise<T>): Promise<T> => WORK_SIGNAL.run(signal, work);

/** The abort signal of the work under way, for what it starts besides queries (a PHP process). */
export const workSignal = (): AbortSignal | undefined => WORK_SIGNAL.getStore();

export const DEFAULT_ACCESS: AccessOptions = { perServer: 20, connectTimeoutMs: 5_000 };

interface ServerSlots {
  used: number;
  waiting: Array<() => void>;
}

/**
 * Pooled access to the fleet's databases: one small pool per DB server and credentials, not per instance, so an
 * instance is only ever reached with its own login and password. The connections of every pool of one server
 * count together against its cap. Generated SQL always names `db`.`prefix_table`, so a connection's current
 * database never matters; a connection that ran an operator's SQL is destroyed, not returned, since it may carry
 * session state.
 */
export class MoodleAccess {
  private readonly pools = new Map<string, Pool>();
  private readonly servers = new Map<string, ServerSlots>();
  /** Keys pools by credentials without holding them in a readable form; it lives as long as the process. */
  private readonly poolSecret = randomBytes(32);
  private peak = 0;
  private open = 0;

  private readonly log: Logger;

  constructor(private readonly options: AccessOptions = DEFAULT_ACCESS) {
    this.log = options.log ?? silentLogger();
  }

  /**
   * Rolls back after a failure, which stays the error reported. A rollback that fails too (the connection broke) is
   * logged, and the connection is destroyed rather than handed back to the pool mid-transaction.
   */
  async rollback(conn: PoolConnection): Promise<void> {
    try {
      await conn.rollback();
    } catch (err) {
      this.log.warn({ ...errorFields(err) }, 'rollback after a failure failed too; the connection is dropped');
      conn.destroy();
    }
  }

  private poolKey(target: MoodleTarget): string {
    const credentials = createHmac('sha256', this.poolSecret).update(`${target.db.user}\0${target.db.password ?? ''}`).digest('hex');
    return `${serverKey(target.db)}#${credentials}`;
  }

  private pool(target: MoodleTarget): Pool {
    const key = this.poolKey(target);
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

  /** A place among the server's connections, waiting for one when all are taken. */
  private async slot(server: string): Promise<() => void> {
    let slots = this.servers.get(server);
    if (!slots) this.servers.set(server, (slots = { used: 0, waiting: [] }));
    const taken = slots;
    if (taken.used >= this.options.perServer) await new Promise<void>((resolve) => taken.waiting.push(resolve));
    else taken.used++;
    return () => {
      const next = taken.waiting.shift();
      if (next) next();
      else taken.used--;
    };
  }

  /**
   * Ends what a connection is running, from a second connection with the same login (`KILL QUERY`), then closes
   * it: the work that used it fails at once instead of going on after its target was given up.
   */
  private async stop(target: MoodleTarget, conn: PoolConnection): Promise<void> {
    try {
      const killer = await mysql.createConnection({ host: target.db.host, port: target.db.port, user: target.db.user, password: target.db.password, connectTimeout: this.options.connectTimeoutMs });
      try {
        await killer.query('KILL QUERY ?', [conn.threadId]);
      } finally {
        await killer.end();
      }
    } catch (err) {
      this.log.warn({ ...errorFields(err), thread: conn.threadId }, 'the query of a stopped target could not be killed; its connection is closed');
    }
    conn.destroy();
  }

  private async lease<T>(target: MoodleTarget, work: (conn: PoolConnection) => Promise<T>, discard: boolean): Promise<T> {
    const signal = WORK_SIGNAL.getStore();
    signal?.throwIfAborted();
    const free = await this.slot(serverKey(target.db));
    let conn: PoolConnection;
    try {
      conn = await this.pool(target).getConnection();
    } catch (err) {
      free();
      throw err;
    }
    this.peak = Math.max(this.peak, ++this.open);
    let stopped: Promise<void> | undefined;
    const onAbort = () => {
      stopped = this.stop(target, conn);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      return await work(conn);
    } finally {
      signal?.removeEventListener('abort', onAbort);
      // A stopped connection is closed once its query is killed; the lease ends only then.
      if (stopped) await stopped;
      this.open--;
      if (!stopped && discard) conn.destroy();
      else if (!stopped) conn.release();
      free();
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
        await this.rollback(conn);
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
