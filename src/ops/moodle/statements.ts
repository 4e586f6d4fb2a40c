import type { PoolConnection } from 'mysql2/promise';

/**
 * The product's own SQL on one connection, in as few round trips as its reads allow: a write whose result is not
 * needed is queued and sent with the next read, or at the end, in one multi-statement round trip. Values are escaped
 * by the driver as in any parameterised query. Only the product's SQL goes through here (its connections allow
 * several statements per round trip); an operator's SQL never does.
 */
export class Statements {
  private pending: string[] = [];

  constructor(private readonly conn: PoolConnection) {}

  /** Queues a write, sent with the next read or at the end. */
  write(sql: string, values: unknown[] = []): void {
    this.pending.push(this.conn.format(sql, values));
  }

  /** Runs one read, after the writes queued before it, and returns its rows. */
  async read<T>(sql: string, values: unknown[] = []): Promise<T[]> {
    const [rows] = await this.readAll<[T]>([[sql, values]]);
    return rows;
  }

  /** Runs several reads in one round trip, after the writes queued before them; each one's rows, in order. */
  async readAll<T extends unknown[]>(reads: Array<[string, unknown[]?]>): Promise<{ [K in keyof T]: T[K][] }> {
    const statements = [...this.pending, ...reads.map(([sql, values]) => this.conn.format(sql, values ?? []))];
    const skipped = this.pending.length;
    this.pending = [];
    const results = await this.run(statements);
    return results.slice(skipped) as { [K in keyof T]: T[K][] };
  }

  /** Sends what is queued. */
  async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    const statements = this.pending;
    this.pending = [];
    await this.run(statements);
  }

  /** Every statement's result, in order (rows for a read). */
  private async run(statements: string[]): Promise<unknown[]> {
    const [results] = await this.conn.query(statements.join(';\n'));
    return statements.length === 1 ? [results] : (results as unknown[]);
  }
}
