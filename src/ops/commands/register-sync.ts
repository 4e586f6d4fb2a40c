import type { PoolConnection } from 'mysql2/promise';
import type { RegistryRow } from '../../registry/instance.ts';
import { REGISTRY_COLUMNS, REGISTRY_TABLE, type RegistryColumn } from '../../registry/table.ts';
import { defineCommand, type CommandContext } from './command.ts';
import type { MoodleTarget } from '../moodle/target.ts';
import { onceForSource } from './source-reads.ts';

/**
 * Columns an instance's copy never holds: the password (an instance boots from the master's registry, never from
 * its own, so its copy has no use for one) and the cron counters, which only the master's rows keep.
 */
const BLANKED: Partial<Record<RegistryColumn, string | number>> = {
  vdbpass: '',
  lastcron: 0,
  lastcrongap: 0,
  croncount: 0,
};

/** A master's row as an instance's copy holds it. */
const copyRow = (row: RegistryRow) =>
  Object.fromEntries(REGISTRY_COLUMNS.map((c) => [c, BLANKED[c] ?? row[c] ?? null])) as Record<RegistryColumn, unknown>;

const enabledRows = (ctx: CommandContext) =>
  onceForSource(ctx, 'registry-copy', async () => (await ctx.lifecycle.registry.enabledRows()).map(copyRow));

/** The columns of a target's own local_vmoodle table that VMoodle defines; none when it has no such table. */
async function copyColumns(conn: PoolConnection, target: MoodleTarget): Promise<RegistryColumn[]> {
  const [rows] = await conn.query(
    'SELECT COLUMN_NAME AS name FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?',
    [target.db.database, `${target.db.prefix}${REGISTRY_TABLE}`],
  );
  const present = new Set((rows as Array<{ name: string }>).map((r) => r.name.toLowerCase()));
  return REGISTRY_COLUMNS.filter((c) => present.has(c));
}

const NO_TABLE = `has no ${REGISTRY_TABLE} table (VMoodle is not installed there): left alone`;
const rowsText = (n: number) => `${n} row${n === 1 ? '' : 's'}`;

/**
 * VMoodle's "sync registers": each target's own local_vmoodle gets the master's enabled rows, so that features
 * reading it on the instance (primary accounts, user_mnet_hosts) see the fleet. Unlike VMoodle, no password is copied.
 */
export const syncRegisters = defineCommand({
  name: 'lifecycle/syncregisters',
  category: 'lifecycle',
  summary:
    "Copy the registry's enabled rows into each target's own local_vmoodle table, where it has one, with no database password",
  params: [],
  destructive: false,
  reversible: false,
  idempotent: true,
  needsSource: false,
  writes: true,
  async preview(ctx, target) {
    const wanted = (await enabledRows(ctx)).length;
    return ctx.moodle.withConnection(target, async (conn) => {
      const columns = await copyColumns(conn as PoolConnection, target);
      if (columns.length === 0) return { note: NO_TABLE };
      const [[{ n }]] = (await conn.query(
        `SELECT COUNT(*) AS n FROM ${ctx.moodle.table(target, REGISTRY_TABLE)}`,
      )) as unknown as [[{ n: number }]];
      return { old: rowsText(Number(n)), new: rowsText(wanted) };
    });
  },
  async apply(ctx, target) {
    const wanted = await enabledRows(ctx);
    const table = ctx.moodle.table(target, REGISTRY_TABLE);
    return ctx.moodle.withTransaction(target, async (conn) => {
      const columns = await copyColumns(conn, target);
      if (columns.length === 0) return { status: 'already_applied', message: NO_TABLE };
      const [current] = await conn.query(`SELECT ?? FROM ${table} ORDER BY id FOR UPDATE`, [columns]);
      // Compared as text: the two drivers' settings give BIGINTs as numbers on one side and strings on the other.
      const cells = (row: Record<string, unknown>) =>
        columns.map((c) => (row[c] === null || row[c] === undefined ? null : String(row[c])));
      const want = wanted.map(cells);
      const have = (current as Array<Record<string, unknown>>).map(cells);
      const old = rowsText(have.length);
      if (JSON.stringify(have) === JSON.stringify(want)) return { status: 'already_applied', old, new: old };
      // DELETE, not VMoodle's TRUNCATE: a TRUNCATE commits at once, and a failed insert would leave the table empty.
      await conn.query(`DELETE FROM ${table}`);
      if (want.length)
        await conn.query(`INSERT INTO ${table} (??) VALUES ?`, [
          columns,
          wanted.map((row) => columns.map((c) => row[c])),
        ]);
      return { status: 'applied', old, new: rowsText(want.length) };
    });
  },
});
