import { errorKind } from '../core/errors.ts';
import type { Knex } from 'knex';
import { assertTablePrefix, quoteId } from '../core/db/identifiers.ts';

/** VMoodle's registry table, `{prefix}local_vmoodle`, as its db/install.xml defines it. */
export const REGISTRY_TABLE = 'local_vmoodle';

/**
 * The table as Moodle's XMLDB generator creates it on MariaDB/MySQL from local_vmoodle's install.xml
 * (int(10+) → bigint, int(3) → smallint, int(1) → tinyint, char → varchar, text → longtext), so a master
 * set up by this product is one VMoodle itself could use.
 */
export function registryDdl(prefix: string): string {
  return `CREATE TABLE ${quoteId(assertTablePrefix(prefix) + REGISTRY_TABLE)} (
  id BIGINT(10) NOT NULL AUTO_INCREMENT,
  name VARCHAR(255) DEFAULT NULL,
  shortname VARCHAR(80) DEFAULT NULL,
  description LONGTEXT DEFAULT NULL,
  vhostname VARCHAR(255) DEFAULT NULL,
  vdbtype VARCHAR(16) NOT NULL DEFAULT 'mysqli',
  vdbhost VARCHAR(80) NOT NULL DEFAULT 'localhost',
  vdblogin VARCHAR(16) NOT NULL DEFAULT 'root',
  vdbpass VARCHAR(32) DEFAULT NULL,
  vdbname VARCHAR(64) DEFAULT NULL,
  vdbprefix VARCHAR(10) NOT NULL DEFAULT 'mdl_',
  vdbpersist TINYINT(1) NOT NULL DEFAULT 0,
  vdatapath VARCHAR(255) DEFAULT NULL,
  mnet SMALLINT(3) NOT NULL DEFAULT 0,
  enabled TINYINT(1) NOT NULL DEFAULT 1,
  timecreated BIGINT(10) NOT NULL DEFAULT 0,
  lastcron BIGINT(11) NOT NULL DEFAULT 0,
  lastcrongap BIGINT(11) NOT NULL DEFAULT 0,
  croncount BIGINT(11) NOT NULL DEFAULT 0,
  metadata LONGTEXT DEFAULT NULL,
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=COMPRESSED COMMENT='Default comment for vmoodle, please edit me'`;
}

export const REGISTRY_COLUMNS = [
  'id',
  'name',
  'shortname',
  'description',
  'vhostname',
  'vdbtype',
  'vdbhost',
  'vdblogin',
  'vdbpass',
  'vdbname',
  'vdbprefix',
  'vdbpersist',
  'vdatapath',
  'mnet',
  'enabled',
  'timecreated',
  'lastcron',
  'lastcrongap',
  'croncount',
  'metadata',
] as const;

export type RegistryColumn = (typeof REGISTRY_COLUMNS)[number];

export class RegistryTableError extends errorKind('unavailable') {}

/**
 * Uses an existing VMoodle table as it is (it is never altered) or creates it. A table that lacks one of
 * VMoodle's columns is refused rather than patched: it belongs to something else.
 */
export async function ensureRegistryTable(db: Knex, prefix: string): Promise<'existing' | 'created'> {
  const table = assertTablePrefix(prefix) + REGISTRY_TABLE;
  const rows: Array<{ COLUMN_NAME: string }> = await db
    .select('COLUMN_NAME')
    .from('information_schema.COLUMNS')
    .where({ TABLE_SCHEMA: db.raw('DATABASE()'), TABLE_NAME: table });
  if (rows.length === 0) {
    try {
      await db.raw(registryDdl(prefix));
    } catch (err) {
      // Another process may have created it between the check and the CREATE.
      if ((err as { code?: string }).code !== 'ER_TABLE_EXISTS_ERROR') throw err;
      return 'existing';
    }
    return 'created';
  }
  const present = new Set(rows.map((r) => r.COLUMN_NAME.toLowerCase()));
  const missing = REGISTRY_COLUMNS.filter((c) => !present.has(c));
  if (missing.length > 0) {
    throw new RegistryTableError(
      `table ${table} exists but lacks VMoodle's columns ${missing.join(', ')}; it is left untouched`,
    );
  }
  return 'existing';
}
