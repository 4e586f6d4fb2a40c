import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { createGzip } from 'node:zlib';
import type { PoolConnection } from 'mysql2/promise';
import type { MoodleAccess } from './access.ts';
import { quoteId } from '../../core/db/identifiers.ts';
import { siteTables } from './site-tables.ts';
import type { MoodleTarget } from './target.ts';

/** Rows read, and written as one INSERT, at a time. */
const BATCH = 500;

/**
 * What mysqldump sets first, which parseDump keeps as the preamble: a row whose id is 0 keeps it (NO_AUTO_VALUE_ON_ZERO),
 * and no check runs row by row while a table is loaded.
 */
const PREAMBLE = [
  '/*!40101 SET NAMES utf8mb4 */;',
  "/*!40103 SET TIME_ZONE='+00:00' */;",
  '/*!40014 SET UNIQUE_CHECKS=0, FOREIGN_KEY_CHECKS=0 */;',
  "/*!40101 SET SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;",
  '',
].join('\n');

export interface DumpOptions {
  /** Tables (without prefix) dumped without their rows: their rows hold what no copy should carry. */
  rowsLeftOut?: readonly string[];
  onTable?(done: number, total: number): void;
}

export interface DumpStats {
  tables: number;
  rows: number;
}

/**
 * Dumps one Moodle's tables (those of its prefix, nothing else in a database shared by several instances) as
 * mysqldump lays them out: each table's DROP and CREATE, then its rows as INSERTs, gzipped. Read in one consistent
 * snapshot, a batch of rows at a time (by id, which every Moodle table has), so a large site is never held in memory.
 * Values are escaped by the driver, newlines as `\n`: a `;` that ends a line always ends a statement.
 */
export async function dumpSite(
  access: MoodleAccess,
  target: MoodleTarget,
  file: string,
  opts: DumpOptions = {},
): Promise<DumpStats> {
  const gzip = createGzip();
  const out = createWriteStream(file, { mode: 0o600 });
  gzip.pipe(out);
  const write = async (text: string) => {
    if (!gzip.write(text)) await once(gzip, 'drain');
  };
  const stats: DumpStats = { tables: 0, rows: 0 };
  try {
    await access.withConnection(target, async (conn) => {
      await conn.query('SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ');
      await conn.query('START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY');
      try {
        const names = await siteTables(conn, target.db.database, target.db.prefix);
        await write(PREAMBLE);
        for (const [i, name] of names.entries()) {
          const rows = !opts.rowsLeftOut?.includes(name.slice(target.db.prefix.length));
          stats.rows += await dumpTable(conn, target.db.database, name, write, rows);
          stats.tables++;
          opts.onTable?.(i + 1, names.length);
        }
      } finally {
        await conn.query('COMMIT');
      }
    });
    gzip.end();
    await once(out, 'close');
  } catch (err) {
    gzip.destroy();
    out.destroy();
    throw err;
  }
  return stats;
}

async function dumpTable(
  conn: PoolConnection,
  database: string,
  name: string,
  write: (text: string) => Promise<void>,
  withRows: boolean,
): Promise<number> {
  const qualified = `${quoteId(database)}.${quoteId(name)}`;
  const [[created]] = (await conn.query(`SHOW CREATE TABLE ${qualified}`)) as unknown as [[Record<string, string>]];
  await write(`DROP TABLE IF EXISTS ${quoteId(name)};\n${created['Create Table']};\n`);
  if (!withRows) return 0;
  const [columns] = await conn.query(`SHOW COLUMNS FROM ${qualified} WHERE Field = 'id'`);
  const byId = (columns as unknown[]).length > 0;
  let rows = 0;
  let after: string | number = -1;
  for (;;) {
    const [batch] = byId
      ? await conn.query(`SELECT * FROM ${qualified} WHERE id > ? ORDER BY id LIMIT ${BATCH}`, [after])
      : await conn.query(`SELECT * FROM ${qualified} LIMIT ${BATCH} OFFSET ${rows}`);
    const list = batch as Array<Record<string, unknown>>;
    if (list.length === 0) break;
    await write(
      `INSERT INTO ${quoteId(name)} VALUES ${list
        .map(
          (r) =>
            `(${Object.values(r)
              .map((v) => conn.escape(v))
              .join(',')})`,
        )
        .join(',')};\n`,
    );
    rows += list.length;
    if (byId) after = list.at(-1)?.id as string;
    if (list.length < BATCH) break;
  }
  return rows;
}
