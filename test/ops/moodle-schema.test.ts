import mysql from 'mysql2/promise';
import { describe, expect, it } from 'vitest';
import { parseMysqlUrl } from '../../src/core/db/mysql-url.ts';
import { loadDump, restoreSql, runSqlIn } from '../../src/ops/moodle/dump.ts';
import { COMPACT_SCHEMA_PATH } from '../../src/ops/moodle/moodle-source.ts';
import { makeDistinctSite, readWwwroot } from '../../src/ops/moodle/site-identity.ts';
import { COMPACT_TABLES } from '../../src/ops/moodle/tables.ts';
import { createDatabase, thinInstances, leaseMoodleDatabase } from '../support/databases.ts';
import { testServices } from '../support/services.ts';

async function columns(url: string, tables: readonly string[], prefix = 'mdl_') {
  const { database, ...server } = parseMysqlUrl(url);
  const conn = await mysql.createConnection(server);
  const [rows] = await conn.query(
    `SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, COLUMN_KEY, EXTRA
       FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN (?) ORDER BY TABLE_NAME, ORDINAL_POSITION`,
    [database, tables.map((t) => prefix + t)],
  );
  await conn.end();
  return rows;
}

describe.runIf(testServices().moodleDump)('Moodle schema', () => {
  it('the compact schema has exactly the real dump’s tables, columns and types', async () => {
    const real = await leaseMoodleDatabase();
    const compact = await createDatabase('compact');
    await runSqlIn(parseMysqlUrl(compact.url), compact.name, restoreSql(await loadDump(COMPACT_SCHEMA_PATH)));
    const realColumns = await columns(real.url, COMPACT_TABLES);
    expect(new Set((realColumns as Array<{ TABLE_NAME: string }>).map((c) => c.TABLE_NAME)).size).toBe(
      COMPACT_TABLES.length,
    );
    expect(await columns(compact.url, COMPACT_TABLES)).toEqual(realColumns);
  });

  it('a restored copy becomes a distinct site with its own identity and no inherited key', async () => {
    const db = await leaseMoodleDatabase();
    const conn = await mysql.createConnection(parseMysqlUrl(db.url));
    await conn.query(
      "INSERT INTO mdl_config_plugins (plugin, name, value) VALUES ('mnet', 'openssl', 'CERT@@@@@@@@KEY')",
    );
    const [[before]] = (await conn.query("SELECT value FROM mdl_config WHERE name = 'siteidentifier'")) as unknown as [
      [{ value: string }],
    ];
    const oldWwwroot = await readWwwroot(conn, db.name, 'mdl_');
    expect(oldWwwroot).toBe('http://localhost/moodle-tpl');

    await makeDistinctSite(conn, {
      database: db.name,
      prefix: 'mdl_',
      oldWwwroot,
      wwwroot: 'https://law.example.org',
      dataroot: '/srv/law',
      fullname: 'Law faculty',
      shortname: 'law',
    });

    expect(await readWwwroot(conn, db.name, 'mdl_')).toBe('https://law.example.org');
    const [[after]] = (await conn.query("SELECT value FROM mdl_config WHERE name = 'siteidentifier'")) as unknown as [
      [{ value: string }],
    ];
    expect(after.value).not.toBe(before.value);
    expect(after.value).toMatch(/^[0-9a-f]{32}law\.example\.org$/);
    const [keys] = await conn.query(
      "SELECT id FROM mdl_config_plugins WHERE plugin = 'mnet' AND name IN ('openssl', 'openssl_history')",
    );
    expect(keys).toEqual([]);
    const [stale] = await conn.query(
      "SELECT name FROM mdl_config_plugins WHERE value LIKE '%localhost/moodle-tpl%' UNION SELECT site FROM mdl_adminpresets WHERE site LIKE '%moodle-tpl%'",
    );
    expect(stale).toEqual([]);
    const [[site]] = (await conn.query(
      "SELECT fullname, shortname FROM mdl_course WHERE format = 'site'",
    )) as unknown as [[object]];
    expect(site).toEqual({ fullname: 'Law faculty', shortname: 'law' });
    const [[geo]] = (await conn.query("SELECT value FROM mdl_config WHERE name = 'geoip2file'")) as unknown as [
      [{ value: string }],
    ];
    expect(geo.value).toBe('/srv/law/geoip/GeoIP-City.mmdb');
    await conn.end();
  });

  it('builds thin instances under their own prefixes with only the tables asked for', async () => {
    const db = await createDatabase('thin');
    const prefixes = await thinInstances(db.name, 20, { tables: ['config', 'config_log'], rowsOf: ['config'] });
    const conn = await mysql.createConnection(parseMysqlUrl(db.url));
    const [tables] = await conn.query('SELECT COUNT(*) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?', [
      db.name,
    ]);
    expect((tables as Array<{ n: number }>)[0]!.n).toBe(40);
    const [[cfg]] = (await conn.query(`SELECT COUNT(*) AS n FROM \`${prefixes[19]}config\``)) as unknown as [
      [{ n: number }],
    ];
    expect(cfg.n).toBe(584);
    const [[log]] = (await conn.query(`SELECT COUNT(*) AS n FROM \`${prefixes[0]}config_log\``)) as unknown as [
      [{ n: number }],
    ];
    expect(log.n).toBe(0);
    await conn.end();
  });
});
