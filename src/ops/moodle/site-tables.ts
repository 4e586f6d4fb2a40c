import type { Connection } from 'mysql2/promise';
import { escapeLike } from '../../core/db/identifiers.ts';

/**
 * The tables of one Moodle: those of its prefix in its database, nothing else of a database that several instances
 * (or the product) share. Views are not Moodle's.
 */
export async function siteTables(conn: Connection, database: string, prefix: string): Promise<string[]> {
  const [rows] = await conn.query(
    "SELECT TABLE_NAME AS name FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME LIKE ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
    [database, `${escapeLike(prefix)}%`],
  );
  return (rows as Array<{ name: string }>).map((r) => r.name);
}
