import { randomBytes } from 'node:crypto';
import mysql, { type Connection } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMysqlUrl } from '../../src/core/db/mysql-url.ts';
import { registryDdl } from '../../src/registry/table.ts';
import { runCli } from '../support/cli.ts';
import { createDatabase, thinInstances } from '../support/databases.ts';
import { opsFixture, registerInstances, startWorker, type OpsFixture } from '../support/fleet.ts';
import { testServices } from '../support/services.ts';

describe.runIf(testServices().moodleDump)(
  "sync registers: the registry's enabled rows in each instance's own local_vmoodle",
  () => {
    let fx: OpsFixture;
    let conn: Connection;
    let database: string;
    const user = `${testServices().runId}_syn`.slice(0, 16);
    const password = `pw-${randomBytes(9).toString('base64url')}`;
    const passwords = [password, 'pw-far-4411', 'pw-old-4412', 'stale-pw-4413'];
    const copy = async (prefix: string) => {
      const [rows] = await conn.query('SELECT * FROM ??.?? ORDER BY id', [database, `${prefix}local_vmoodle`]);
      return rows as Array<Record<string, unknown>>;
    };

    beforeAll(async () => {
      fx = await opsFixture('regsync');
      database = (await createDatabase('regsync')).name;
      await thinInstances(database, 3, { tables: ['config'], rowsOf: ['config'] });
      const server = parseMysqlUrl(testServices().mysqlServer);
      conn = await mysql.createConnection(server);
      await conn.query('DROP USER IF EXISTS ?@?', [user, '%']);
      await conn.query('CREATE USER ?@? IDENTIFIED BY ?', [user, '%', password]);
      await conn.query(`GRANT ALL ON \`${database}\`.* TO ?@?`, [user, '%']);
      // VMoodle is installed on s1 and s2 (s1's copy holds a stale row with a password, as VMoodle copied them), not on s3.
      await conn.query(`USE \`${database}\``);
      await conn.query(registryDdl('i1_'));
      await conn.query(registryDdl('i2_'));
      await conn.query(
        "INSERT INTO i1_local_vmoodle (name, shortname, vhostname, vdbpass, vdbname, vdatapath) VALUES ('gone', 'gone', 'https://gone.example.org', 'stale-pw-4413', 'gone', '/var/moodledata/gone')",
      );
      await registerInstances(fx, [
        { shortname: 's1', database, prefix: 'i1_' },
        { shortname: 's2', database, prefix: 'i2_' },
        { shortname: 's3', database, prefix: 'i3_' },
        { shortname: 'far', database: 'far', vdbhost: '127.0.0.1:1', unreachableDataroot: true },
        { shortname: 'old', database: 'old', enabled: false, unreachableDataroot: true },
      ]);
      const registry = fx.app.masterDb(fx.rt.registry.table);
      await registry
        .clone()
        .whereIn('shortname', ['s1', 's2', 's3'])
        .update({ vdblogin: user, vdbpass: password, lastcron: 1_700_000_000, croncount: 12 });
      await registry.clone().where({ shortname: 'far' }).update({ vdbpass: 'pw-far-4411' });
      await registry.clone().where({ shortname: 'old' }).update({ vdbpass: 'pw-old-4412' });
      startWorker(fx);
    });

    afterAll(async () => {
      await conn?.query('DROP USER IF EXISTS ?@?', [user, '%']);
      await conn?.end();
    });

    it('copies the four enabled rows with no password and no cron counters, leaves a site without VMoodle alone, and reports the unreachable one', async () => {
      const result = await runCli(['--json', 'run', 'lifecycle/syncregisters', '--hosts', '*', '--yes'], fx.env);
      const targets = Object.fromEntries(
        (
          JSON.parse(result.stdout).targets as Array<{
            shortname: string;
            status: string;
            old: string;
            new: string;
            message: string;
          }>
        ).map((t) => [t.shortname, t]),
      );
      expect(Object.keys(targets).sort()).toEqual(['far', 's1', 's2', 's3']);
      expect(targets.s1).toMatchObject({ status: 'applied', old: '1 row', new: '4 rows' });
      expect(targets.s2).toMatchObject({ status: 'applied', old: '0 rows', new: '4 rows' });
      expect(targets.s3).toMatchObject({
        status: 'already_applied',
        message: 'has no local_vmoodle table (VMoodle is not installed there): left alone',
      });
      expect(targets.far?.status).toBe('failed');

      const master = await fx.app.masterDb(fx.rt.registry.table).where({ enabled: 1 }).orderBy('id');
      for (const prefix of ['i1_', 'i2_']) {
        const rows = await copy(prefix);
        expect(rows.map((r) => r.shortname)).toEqual(['s1', 's2', 's3', 'far']);
        for (const [i, row] of rows.entries()) {
          expect(row).toEqual({ ...master[i], vdbpass: '', lastcron: 0, lastcrongap: 0, croncount: 0 });
        }
        const text = JSON.stringify(rows);
        for (const secret of passwords) expect(text).not.toContain(secret);
      }
      const [tables] = await conn.query(
        'SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME LIKE ?',
        [database, 'i3\\_local\\_vmoodle'],
      );
      expect(tables).toEqual([]);
      const everything = `${result.stdout}${result.stderr}`;
      for (const secret of passwords) expect(everything).not.toContain(secret);

      const again = await runCli(['--json', 'run', 'lifecycle/syncregisters', '--hosts', 's1,s2', '--yes'], fx.env);
      expect((JSON.parse(again.stdout).targets as Array<{ status: string }>).map((t) => t.status)).toEqual([
        'already_applied',
        'already_applied',
      ]);
    });
  },
);
