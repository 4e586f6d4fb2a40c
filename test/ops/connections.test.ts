import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMysqlUrl } from '../../src/core/db/mysql-url.ts';
import { MoodleAccess } from '../../src/ops/moodle/access.ts';
import type { MoodleTarget } from '../../src/ops/moodle/target.ts';
import { serverName } from '../../src/core/security-settings.ts';
import { createDatabase, type TestDatabase } from '../support/databases.ts';
import { testServices } from '../support/services.ts';
import { passTime } from '../support/wait.ts';

/** A dedicated login, so that the server's count of its connections is this test's alone. */
const USER = `vmops_conn_${process.pid}`;

describe('connections to an instance database', () => {
  let db: TestDatabase;
  let admin: mysql.Connection;
  let target: MoodleTarget;
  const access = new MoodleAccess({
    perServer: 3,
    connectTimeoutMs: 5_000,
    allowedServers: async () => [{ server: serverName(parseMysqlUrl(testServices().mysqlServer)), tls: false }],
  });

  const open = async () => {
    const [rows] = await admin.query('SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE USER = ?', [USER]);
    return Number((rows as Array<{ n: number }>)[0]?.n);
  };

  beforeAll(async () => {
    db = await createDatabase('conns');
    const server = parseMysqlUrl(testServices().mysqlServer);
    admin = await mysql.createConnection(server);
    await admin.query(`CREATE USER IF NOT EXISTS ?@'%' IDENTIFIED BY 'conn-test'`, [USER]);
    await admin.query(`GRANT ALL ON \`${db.name}\`.* TO ?@'%'`, [USER]);
    await admin.query(`CREATE TABLE \`${db.name}\`.t (id INT PRIMARY KEY)`);
    target = {
      host: { kind: 'instance', id: 1, shortname: 'c1', wwwroot: 'https://c1.example.org' } as MoodleTarget['host'],
      db: {
        host: server.host,
        port: server.port,
        user: USER,
        password: 'conn-test',
        database: db.name,
        prefix: 'mdl_',
      },
      dataroot: undefined,
    };
  });
  afterAll(async () => {
    await access.close();
    await admin.query("DROP USER IF EXISTS ?@'%'", [USER]);
    await admin.end();
  });

  it("sends the product's statements several per round trip, and an operator's one at a time", async () => {
    const seen = await access.withStatements(target, async (sql) => {
      sql.write(`INSERT INTO \`${db.name}\`.t VALUES (1)`);
      sql.write(`INSERT INTO \`${db.name}\`.t VALUES (2)`);
      return sql.read<{ n: number }>(`SELECT COUNT(*) AS n FROM \`${db.name}\`.t`);
    });
    expect(Number(seen[0]?.n)).toBe(2);
    await expect(
      access.withUserSqlConnection(target, (conn) => conn.query(`SELECT 1; DELETE FROM \`${db.name}\`.t`)),
    ).rejects.toThrow(/SQL syntax/);
    const [left] = await admin.query(`SELECT COUNT(*) AS n FROM \`${db.name}\`.t`);
    expect(Number((left as Array<{ n: number }>)[0]?.n)).toBe(2);
  });

  it('rolls back every queued statement when one of them fails', async () => {
    await expect(
      access.withStatements(target, async (sql) => {
        sql.write(`INSERT INTO \`${db.name}\`.t VALUES (3)`);
        sql.write(`INSERT INTO \`${db.name}\`.t VALUES (1)`);
      }),
    ).rejects.toThrow(/Duplicate entry/);
    const [rows] = await admin.query(`SELECT id FROM \`${db.name}\`.t ORDER BY id`);
    expect((rows as Array<{ id: number }>).map((r) => r.id)).toEqual([1, 2]);
  });

  it("keeps the pool's connections and an operator's together within the server's cap", async () => {
    let most = 0;
    const hold = (ms: number) => passTime(ms, 'the connections stay open together');
    await Promise.all(
      Array.from({ length: 3 }, () =>
        access.withStatements(
          target,
          async (sql) => {
            await sql.read('SELECT 1');
            most = Math.max(most, await open());
            await hold(50);
          },
          false,
        ),
      ),
    );
    expect(await open()).toBe(3);
    await Promise.all(
      Array.from({ length: 3 }, () =>
        access.withUserSqlConnection(target, async (conn) => {
          await conn.query('SELECT 1');
          most = Math.max(most, await open());
          await hold(50);
        }),
      ),
    );
    expect(most).toBeLessThanOrEqual(3);
  });
});
