import { createHmac, randomBytes } from 'node:crypto';
import { workSignal } from './work-signal.ts';
import mysql, { type Connection, type Pool, type PoolConnection } from 'mysql2/promise';
import { Statements } from './statements.ts';
import { qualifiedTable } from '../../core/db/identifiers.ts';
import { errorFields, silentLogger, type Logger } from '../../core/log.ts';
import { serverKey, type MoodleTarget } from './target.ts';
import type { DbServerRule } from '../../core/security-settings.ts';
import { allowedServer, connectionSecurity } from './db-servers.ts';

export interface AccessOptions {
  /** Connections at most per DB server, whatever the logins; well under MariaDB's default max_connections of 151. */
  perServer: number;
  connectTimeoutMs: number;
  log?: Logger;
  /** The servers an admin allowed (the settings' db_servers), read before every new connection. */
  allowedServers: () => Promise<readonly DbServerRule[] | undefined>;
}

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

  constructor(private readonly options: AccessOptions) {
    this.log = options.log ?? silentLogger();
  }

  /**
   * Rolls back after a failure, which stays the error reported. A rollback that fails too (the connection broke) is
   * logged, and the connection is destroyed rather than handed back to the pool mid-transaction.
   */
  async rollback(conn: Connection): Promise<void> {
    try {
      await conn.rollback();
    } catch (err) {
      this.log.warn({ ...errorFields(err) }, 'rollback after a failure failed too; the connection is dropped');
      conn.destroy();
    }
  }

  private poolKey(target: MoodleTarget): string {
    const credentials = createHmac('sha256', this.poolSecret)
      .update(`${target.db.user}\0${target.db.password ?? ''}`)
      .digest('hex');
    return `${serverKey(target.db)}#${credentials}`;
  }

  /**
   * How to reach a target's server: only one an admin allowed, with the TLS and login rules its entry sets; the
   * master as its own configuration (MYSQL_URL), which only its admin sets, says. Asked before every connection is
   * leased or opened, so nothing reaches a server that is not listed, even from a pool opened before it was taken off.
   */
  async connectionOptions(target: MoodleTarget) {
    const rule =
      target.host.kind === 'master' ? undefined : allowedServer(await this.options.allowedServers(), target.db);
    return {
      ...(rule ? connectionSecurity(rule) : {}),
      host: target.db.host,
      port: target.db.port,
      user: target.db.user,
      password: target.db.password,
      connectTimeout: this.options.connectTimeoutMs,
      charset: 'utf8mb4',
      supportBigNumbers: true,
      bigNumberStrings: true,
      dateStrings: true,
    };
  }

  /**
   * The pool of the product's own SQL, whose connections take several statements per round trip (see Statements).
   * An operator's SQL never runs on them.
   */
  private pool(target: MoodleTarget, options: Awaited<ReturnType<MoodleAccess['connectionOptions']>>): Pool {
    const key = this.poolKey(target);
    let pool = this.pools.get(key);
    if (!pool) {
      pool = mysql.createPool({ ...options, connectionLimit: this.options.perServer, multipleStatements: true });
      this.pools.set(key, pool);
    }
    return pool;
  }

  /**
   * A connection of its own for an operator's SQL: one statement per query, never pooled. It takes the place of one
   * of the pool's connections (an idle one, or one opened to be closed), so that the pool and it together stay
   * within the cap.
   */
  private async operatorConnection(target: MoodleTarget): Promise<Connection> {
    const options = await this.connectionOptions(target);
    (await this.pool(target, options).getConnection()).destroy();
    return mysql.createConnection({ ...options, multipleStatements: false });
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
  private async stop(target: MoodleTarget, conn: Connection): Promise<void> {
    try {
      const killer = await mysql.createConnection(await this.connectionOptions(target));
      try {
        await killer.query('KILL QUERY ?', [conn.threadId]);
      } finally {
        await killer.end();
      }
    } catch (err) {
      this.log.warn(
        { ...errorFields(err), thread: conn.threadId },
        'the query of a stopped target could not be killed; its connection is closed',
      );
    }
    conn.destroy();
  }

  private async lease<T, C extends Connection>(
    target: MoodleTarget,
    work: (conn: C) => Promise<T>,
    operator: boolean,
  ): Promise<T> {
    const signal = workSignal();
    signal?.throwIfAborted();
    const free = await this.slot(serverKey(target.db));
    let conn: C;
    try {
      conn = (
        operator
          ? await this.operatorConnection(target)
          : await this.pool(target, await this.connectionOptions(target)).getConnection()
      ) as C;
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
      if (!stopped && operator) conn.destroy();
      else if (!stopped) (conn as unknown as PoolConnection).release();
      free();
    }
  }

  withConnection<T>(target: MoodleTarget, work: (conn: PoolConnection) => Promise<T>): Promise<T> {
    return this.lease(target, work, false);
  }

  /** A connection for SQL an operator wrote: one statement per query, destroyed afterwards whatever it did to its session. */
  withUserSqlConnection<T>(target: MoodleTarget, work: (conn: Connection) => Promise<T>): Promise<T> {
    return this.lease(target, work, true);
  }

  /**
   * The product's SQL for one target in as few round trips as its reads allow, in a transaction of its own when
   * `transaction` (begun with the first round trip, committed with the last, rolled back after a failure).
   */
  withStatements<T>(target: MoodleTarget, work: (sql: Statements) => Promise<T>, transaction = true): Promise<T> {
    return this.withConnection(target, async (conn) => {
      const sql = new Statements(conn);
      if (!transaction) {
        const result = await work(sql);
        await sql.flush();
        return result;
      }
      sql.write('START TRANSACTION');
      try {
        const result = await work(sql);
        sql.write('COMMIT');
        await sql.flush();
        return result;
      } catch (err) {
        await this.rollback(conn);
        throw err;
      }
    });
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
