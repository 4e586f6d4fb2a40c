import type { Connection } from 'mysql2/promise';

export interface ConfigLogRow {
  id: number;
  userid: number;
  timemodified: number;
  plugin: string | null;
  name: string;
  value: string | null;
  oldvalue: string | null;
}

/** Queries on one restored site, with Moodle's `{table}` for its `mdl_` tables. */
export function siteQueries(conn: () => Connection, database: () => string) {
  const rows = async <T>(sql: string, binds: unknown[] = []): Promise<T[]> => {
    const [found] = await conn().query(sql.replaceAll('{', `\`${database()}\`.\`mdl_`).replaceAll('}', '`'), binds);
    return found as T[];
  };
  const lastId = async (table: string) =>
    Number((await rows<{ id: number | null }>(`SELECT MAX(id) AS id FROM {${table}}`))[0]?.id ?? 0);
  return {
    rows,
    lastId,
    /** The config_log rows added since `since` (an id), oldest first. */
    configLogSince: (since: number) =>
      rows<ConfigLogRow>('SELECT * FROM {config_log} WHERE id > ? ORDER BY id', [since]),
    /** The log store rows added since `since` (an id), oldest first, without their ids. */
    eventsSince: async (since: number) =>
      (
        await rows<Record<string, unknown>>('SELECT * FROM {logstore_standard_log} WHERE id > ? ORDER BY id', [since])
      ).map(({ id: _id, ...rest }) => rest),
  };
}

/** Who the reference says logs a change: cfg.php from the CLI (user 0), or the admin (user 2 of the dump's `siteadmins`) on an admin page. */
export type Logger = 'cli' | 'admin';

/** The log store row moodle-facts §3.1 shows for a config_log row, with `other` as given. */
export const configLogEvent = (log: ConfigLogRow, other: string, by: Logger = 'cli') => ({
  eventname: '\\core\\event\\config_log_created',
  component: 'core',
  action: 'created',
  target: 'config_log',
  objecttable: 'config_log',
  objectid: log.id,
  crud: 'c',
  edulevel: 0,
  contextid: 1,
  contextlevel: 10,
  contextinstanceid: 0,
  userid: by === 'cli' ? 0 : 2,
  courseid: 0,
  relateduserid: null,
  anonymous: 0,
  other,
  timecreated: log.timemodified,
  origin: by === 'cli' ? 'cli' : 'web',
  ip: null,
  realuserid: null,
});
