import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { tmpdir } from 'node:os';
import { gunzipSync } from 'node:zlib';
import { join } from 'node:path';
import mysql, { type Connection } from 'mysql2/promise';
import { unserialize } from 'php-serialize';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMysqlUrl } from '../../src/core/db/mysql-url.ts';
import { createFromTemplate, CREATE_STEPS, type CreateStep } from '../../src/ops/lifecycle/create.ts';
import { runCli } from '../support/cli.ts';
import { dropDatabase, leaseMoodleDatabase, type TestDatabase } from '../support/databases.ts';
import { opsFixture, registerInstances, startWorker, type OpsFixture } from '../support/fleet.ts';
import { siteQueries } from '../support/moodle-log.ts';
import { testServices } from '../support/services.ts';

/** The fixture is a site installed at this address (its README). */
const A = 'http://localhost/moodle-tpl';
const B = 'https://b.campus.example.org';
const PEER = 'https://peer.campus.example.org';

/** A block's settings as PHP's serialize() writes a stdClass, with its text linking to A, and base64 as Moodle stores it. */
function blockConfig(text: string): string {
  const s = (v: string) => `s:${Buffer.byteLength(v)}:"${v}";`;
  return Buffer.from(
    `O:8:"stdClass":3:{${s('title')}${s('Links')}${s('text')}${s(text)}${s('format')}${s('1')}}`,
  ).toString('base64');
}

describe.runIf(testServices().moodleDump)(
  'instance lifecycle: snapshot, create from a template, disable → destroy',
  () => {
    let fx: OpsFixture;
    let siteA: TestDatabase;
    let peer: TestDatabase;
    let conn: Connection;
    let root: string;
    const bDatabase = `${testServices().runId}_lc_b`;
    const a = siteQueries(
      () => conn,
      () => siteA.name,
    );
    const b = siteQueries(
      () => conn,
      () => bDatabase,
    );
    const p = siteQueries(
      () => conn,
      () => peer.name,
    );
    const server = () => parseMysqlUrl(testServices().mysqlServer);

    async function cli(...args: string[]) {
      const result = await runCli(['--json', ...args], fx.env);
      return { ...result, json: result.stdout ? JSON.parse(result.stdout) : undefined };
    }
    const databaseExists = async (name: string) => {
      const [rows] = await conn.query('SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?', [
        name,
      ]);
      return (rows as unknown[]).length > 0;
    };

    beforeAll(async () => {
      const [masterSite, ...sites] = await Promise.all([
        leaseMoodleDatabase(),
        leaseMoodleDatabase(),
        leaseMoodleDatabase(),
      ]);
      [siteA, peer] = sites as [TestDatabase, TestDatabase];
      root = mkdtempSync(join(tmpdir(), 'vmops-dataroots-'));
      afterAll(() => rmSync(root, { recursive: true, force: true }));
      fx = await opsFixture('lifecycle', masterSite, { VMOODLE_DATAROOT_ROOT: root });
      await registerInstances(fx, [
        { shortname: 'a', database: siteA.name, vhostname: A, dataroot: join(root, 'a'), mnet: 0 },
        { shortname: 'peer', database: peer.name, vhostname: PEER, dataroot: join(root, 'peer'), mnet: 0 },
      ]);
      startWorker(fx);
      conn = await mysql.createConnection(server());
      afterAll(() => conn.end());
      afterAll(() => dropDatabase(bDatabase));

      // A has used MNET: a key pair (a literal), its local row holding the certificate, and a block linking to its own pages.
      await a.rows("UPDATE {config} SET value = 'strict' WHERE name = 'mnet_dispatcher_mode'");
      await a.rows(
        'INSERT INTO {config_plugins} (plugin, name, value) VALUES (\'mnet\', \'openssl\', \'CERT-A0@@@@@@@@KEY-A0\'), (\'mnet\', \'openssl_history\', \'a:1:{i:0;a:3:{s:11:"certificate";s:7:"CERT-AH";s:11:"keypair_PEM";s:6:"KEY-AH";s:7:"expires";s:10:"1700000000";}}\')',
      );
      await a.rows("UPDATE {mnet_host} SET public_key = 'CERT-A0', public_key_expires = 1790000000 WHERE id = 1");
      await a.rows(
        "INSERT INTO {block_instances} (blockname, parentcontextid, showinsubcontexts, requiredbytheme, pagetypepattern, subpagepattern, defaultregion, defaultweight, configdata, timecreated, timemodified) VALUES ('html', 1, 0, 0, 'site-index', NULL, 'side-pre', 0, ?, 0, 0)",
        [blockConfig(`<a href="${A}/course/view.php?id=1">Home</a> and <a href="${A}/my/">Dashboard</a>`)],
      );
      // A's dataroot: files to keep, and the transient folders a snapshot leaves out.
      for (const [path, text] of [
        ['filedir/ab/cd/abcd1234', 'a file'],
        ['lang/fr/langconfig.php', '<?php'],
        ['cache/core_component.php', A],
        ['localcache/x', '1'],
        ['sessions/sess_1', 's'],
        ['temp/t', 't'],
        ['trashdir/x', 'x'],
      ] as const) {
        mkdirSync(join(root, 'a', path, '..'), { recursive: true });
        writeFileSync(join(root, 'a', path), text);
      }
    });

    it('snapshots A: a manifest of its source and Moodle version, its tables, and its dataroot without caches, sessions and temp', async () => {
      const result = await cli('run', 'lifecycle/snapshot', '--hosts', 'a', 'template=tpl-a', '--yes');
      expect(result.stderr).toBe('');
      expect(result.json.targets[0]).toMatchObject({ status: 'applied', new: 'tpl-a' });
      expect(result.json.targets[0].message).toMatch(
        /^494 tables, \d+ rows \([\d.]+ MB gzipped\), dataroot [\d.]+ MB; Moodle 4\.5\.6 \(Build: 20250811\)$/,
      );

      const shown = await cli('templates', 'show', 'tpl-a');
      expect(shown.json).toMatchObject({
        name: 'tpl-a',
        prefix: 'mdl_',
        version: '2024100706',
        release: '4.5.6 (Build: 20250811)',
        tables: 494,
        source: { kind: 'instance', shortname: 'a', wwwroot: A, dataroot: join(root, 'a') },
      });
      const folder = join(fx.rt.config.lifecycle.templatesDir, 'tpl-a', 'dataroot');
      expect(readdirSync(folder).sort()).toEqual(['filedir', 'lang']);
      expect(readFileSync(join(folder, 'filedir/ab/cd/abcd1234'), 'utf8')).toBe('a file');
      expect((await cli('templates', 'list')).json.map((t: { name: string }) => t.name)).toEqual(['tpl-a']);

      const again = await cli('run', 'lifecycle/snapshot', '--hosts', 'a', 'template=tpl-a', '--yes');
      expect(again.json.targets[0]).toMatchObject({
        status: 'failed',
        message: "a template 'tpl-a' exists already: choose another name, or delete it first (templates delete tpl-a)",
      });
    });

    it("snapshots the master (--master) without the registry's rows, which hold every instance's database login", async () => {
      const result = await cli('lifecycle', 'snapshot', '--master', 'template=tpl-master', '--yes');
      expect(result.stderr).toBe('');
      expect(result.json.targets[0]).toMatchObject({ shortname: 'master', status: 'applied', new: 'tpl-master' });
      expect((await cli('templates', 'show', 'tpl-master')).json.source).toMatchObject({
        kind: 'master',
        shortname: 'master',
        wwwroot: 'https://master.example.org',
      });
      const sql = gunzipSync(
        readFileSync(join(fx.rt.config.lifecycle.templatesDir, 'tpl-master', 'database.sql.gz')),
      ).toString('utf8');
      expect(sql).toContain('CREATE TABLE `mdl_local_vmoodle`');
      expect(sql).not.toContain('INSERT INTO `mdl_local_vmoodle`');
      expect(sql).not.toContain(siteA.name);

      expect((await cli('templates', 'delete', 'tpl-master')).json).toMatchObject({ name: 'tpl-master', tables: 495 });
      expect(existsSync(join(fx.rt.config.lifecycle.templatesDir, 'tpl-master'))).toBe(false);
      const missing = await cli('templates', 'show', 'tpl-master');
      expect(missing.stderr).toContain(
        `no template 'tpl-master' in ${fx.rt.config.lifecycle.templatesDir} (templates list shows them)`,
      );
      expect((await cli('templates', 'show', '../etc')).stderr).toContain("'../etc' is not a template name");
    });

    it('creates B from it: no trace of A outside the history tables, block settings rewritten, its own identity and key, registered and enabled', async () => {
      const result = await cli(
        'run',
        'lifecycle/create',
        '--master',
        'template=tpl-a',
        'shortname=b',
        'name=Campus B',
        `vhostname=${B}`,
        `vdbname=${bDatabase}`,
        `vdatapath=${join(root, 'b')}`,
        'mnet=0',
        '--yes',
      );
      expect(result.stderr).toBe('');
      expect(result.json.targets[0]).toMatchObject({ status: 'applied', new: B });
      expect(result.json.targets[0].message).toMatch(
        /^created b \(id \d+\) from tpl-a, Moodle 4\.5\.6 \(Build: 20250811\); 1 block settings rewritten$/,
      );

      const [schema] = await conn.query(
        'SELECT DEFAULT_COLLATION_NAME AS c FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?',
        [bDatabase],
      );
      expect(schema).toEqual([{ c: 'utf8mb4_unicode_ci' }]);
      const [columns] = await conn.query(
        "SELECT TABLE_NAME AS t, COLUMN_NAME AS c FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND DATA_TYPE IN ('char', 'varchar', 'text', 'mediumtext', 'longtext') AND TABLE_NAME NOT IN ('mdl_config_log', 'mdl_logstore_standard_log')",
        [bDatabase],
      );
      const holding: string[] = [];
      for (const { t, c } of columns as Array<{ t: string; c: string }>) {
        const [rows] = await conn.query(
          `SELECT COUNT(*) AS n FROM \`${bDatabase}\`.\`${t}\` WHERE INSTR(\`${c}\`, ?) > 0`,
          [A],
        );
        if (Number((rows as Array<{ n: number }>)[0]?.n)) holding.push(`${t}.${c}`);
      }
      expect(holding).toEqual([]);
      expect((await b.rows<{ n: number }>('SELECT COUNT(*) AS n FROM {mnet_host} WHERE wwwroot = ?', [B]))[0]).toEqual({
        n: 1,
      });

      const [block] = await b.rows<{ configdata: string }>(
        "SELECT configdata FROM {block_instances} WHERE blockname = 'html' AND configdata <> ''",
      );
      const config = unserialize(Buffer.from(block!.configdata, 'base64').toString('utf8'), {
        stdClass: class stdClass {},
      }) as { title: string; text: string; format: string };
      expect(config.constructor.name).toBe('stdClass');
      expect(config).toMatchObject({
        title: 'Links',
        text: `<a href="${B}/course/view.php?id=1">Home</a> and <a href="${B}/my/">Dashboard</a>`,
        format: '1',
      });

      const setting = async (q: typeof a, name: string) =>
        (await q.rows<{ value: string }>('SELECT value FROM {config} WHERE name = ?', [name]))[0]?.value;
      expect(await setting(b, 'siteidentifier')).not.toBe(await setting(a, 'siteidentifier'));
      expect(await setting(b, 'siteidentifier')).toMatch(/^[0-9a-f]{32}b\.campus\.example\.org$/);
      expect(await setting(b, 'geoip2file')).toBe(join(root, 'b', 'geoip/GeoIP-City.mmdb'));
      expect(await setting(b, 'sessioncookie')).toMatch(/^[0-9a-f]{12}$/);
      expect(await setting(b, 'mnet_dispatcher_mode')).toBe('strict');
      expect(await b.rows("SELECT fullname, shortname FROM {course} WHERE format = 'site'")).toEqual([
        { fullname: 'Campus B', shortname: 'b' },
      ]);

      const [openssl] = await b.rows<{ value: string }>(
        "SELECT value FROM {config_plugins} WHERE plugin = 'mnet' AND name = 'openssl'",
      );
      expect(openssl!.value).not.toContain('CERT-A0');
      const cert = new X509Certificate(openssl!.value.split('@@@@@@@@')[0] as string);
      expect(cert.subject).toContain(`CN=${B}`);
      // A's archived pairs are not inherited: B's history starts empty, as a first key's does.
      expect(
        await b.rows("SELECT value FROM {config_plugins} WHERE plugin = 'mnet' AND name = 'openssl_history'"),
      ).toEqual([{ value: 'a:0:{}' }]);
      const [local] = await b.rows<{ public_key: string }>('SELECT public_key FROM {mnet_host} WHERE id = 1');
      expect(local!.public_key).toBe(openssl!.value.split('@@@@@@@@')[0]);

      const shown = await cli('instances', 'show', 'b');
      expect(shown.json).toMatchObject({
        shortname: 'b',
        vhostname: B,
        vdbname: bDatabase,
        vdatapath: join(root, 'b'),
        enabled: true,
        mnet: 0,
      });
      expect(readdirSync(join(root, 'b')).sort()).toEqual(['cache', 'filedir', 'lang', 'localcache']);
      expect(readdirSync(join(root, 'b', 'cache'))).toEqual([]);
      expect(readFileSync(join(root, 'b', 'filedir/ab/cd/abcd1234'), 'utf8')).toBe('a file');
    });

    it.each([...CREATE_STEPS, 'inside register'] as const)(
      'a failure at %s leaves no database, folder or registry row',
      async (at) => {
        const database = `${testServices().runId}_lc_fail`;
        const dataroot = join(root, 'failing');
        const target = {
          host: {
            kind: 'instance' as const,
            id: 0,
            shortname: 'failing',
            name: 'Failing',
            wwwroot: 'https://failing.campus.example.org',
            enabled: true,
          },
          db: { ...server(), database, prefix: 'mdl_' },
          dataroot,
        };
        const creation = createFromTemplate(
          {
            access: fx.rt.moodle,
            templates: fx.rt.templates,
            guard: { root, keep: [] },
            keyDays: 28,
            register: async (fields) => {
              if (at === 'inside register') throw new Error('the registry went away');
              return fx.rt.registry.add(fields);
            },
            onStep: (step: CreateStep) => {
              if (step === at) throw new Error(`injected at ${step}`);
            },
          },
          'tpl-a',
          {
            target,
            login: { user: 'vmi_failing0000', password: 'x' },
            fields: {
              name: 'Failing',
              shortname: 'failing',
              vhostname: target.host.wwwroot,
              vdbname: database,
              vdatapath: dataroot,
              mnet: 0,
            },
          },
        );
        await expect(creation).rejects.toThrow(
          at === 'inside register' ? 'the registry went away' : `injected at ${at}`,
        );
        expect(await databaseExists(database)).toBe(false);
        const [logins] = await conn.query("SELECT User FROM mysql.user WHERE User = 'vmi_failing0000'");
        expect(logins).toEqual([]);
        expect(existsSync(dataroot)).toBe(false);
        expect((await fx.rt.registry.loadAll()).map((i) => i.shortname)).toEqual(['a', 'peer', 'b']);
      },
    );

    it('refuses a vdatapath of /, of the master, of another instance, or outside the allowed root, before anything is made', async () => {
      const create = (vdatapath: string) =>
        cli(
          'run',
          'lifecycle/create',
          '--master',
          'template=tpl-a',
          'shortname=c',
          'name=C',
          'vhostname=https://c.campus.example.org',
          `vdbname=${testServices().runId}_lc_c`,
          `vdatapath=${vdatapath}`,
          '--yes',
        );
      expect((await create('/')).stderr).toContain("vdatapath: '/' is never an instance's dataroot");
      expect((await create(fx.env.VMOODLE_MASTER_DATAROOT as string)).stderr).toContain(
        `is not under the allowed dataroot folder ${root}`,
      );
      expect((await create(join(root, 'a'))).stderr).toContain(
        `vdatapath: ${join(root, 'a')} is the dataroot of instance a`,
      );
      expect((await create(join(root, 'a', 'inner'))).stderr).toContain(
        `vdatapath: ${join(root, 'a', 'inner')} lies in the dataroot of instance a`,
      );
      expect((await create('/var/moodledata/c')).stderr).toContain(
        `/var/moodledata/c is not under the allowed dataroot folder ${root}`,
      );
      expect(await databaseExists(`${testServices().runId}_lc_c`)).toBe(false);
      expect((await fx.rt.registry.loadAll()).map((i) => i.shortname)).not.toContain('c');
    });

    it('refuses to destroy an enabled instance, then destroys B once disabled: database, dataroot and peer rows gone, the checked final snapshot kept', async () => {
      // The peer knows B, with a service link and no user from it.
      await p.rows(
        "INSERT INTO {mnet_host} (deleted, wwwroot, ip_address, name, public_key, public_key_expires, transport, portno, last_connect_time, last_log_id, force_theme, applicationid, sslverification) VALUES (0, ?, '', 'B', 'CERT-B', 1790000000, 1, 0, 0, 0, 0, 1, 0)",
        [B],
      );
      const [{ id: hostId }] = (await p.rows<{ id: number }>('SELECT id FROM {mnet_host} WHERE wwwroot = ?', [B])) as [
        { id: number },
      ];
      await p.rows('INSERT INTO {mnet_host2service} (hostid, serviceid, publish, subscribe) VALUES (?, 1, 1, 1)', [
        hostId,
      ]);

      const refused = await cli('run', 'lifecycle/destroy', '--hosts', 'b', '--confirm=1');
      expect(refused.json.targets[0]).toMatchObject({
        status: 'failed',
        message: 'b is enabled: only a disabled instance can be destroyed (disable it first: instances disable b)',
      });
      expect(await databaseExists(bDatabase)).toBe(true);

      expect((await cli('instances', 'disable', 'b')).code).toBe(0);
      const result = await cli('run', 'lifecycle/destroy', '--hosts', 'b', '--include-disabled', '--confirm=1');
      expect(result.stderr).toBe('');
      expect(result.json.targets[0].status).toBe('applied');
      expect(result.json.targets[0].message).toMatch(
        new RegExp(
          `^final snapshot b-final-\\d{8}T\\d{6} \\(checked: 494 tables\\); database ${bDatabase} dropped; dataroot ${join(root, 'b')} removed; login vmi_[0-9a-f]{12} dropped; removed from 1 peers$`,
        ),
      );
      expect(await databaseExists(bDatabase)).toBe(false);
      expect(existsSync(join(root, 'b'))).toBe(false);
      expect(await p.rows('SELECT id FROM {mnet_host} WHERE wwwroot = ?', [B])).toEqual([]);
      expect(await p.rows('SELECT id FROM {mnet_host2service} WHERE hostid = ?', [hostId])).toEqual([]);
      expect((await fx.rt.registry.loadAll()).map((i) => i.shortname)).toEqual(['a', 'peer']);
      const templates = (await cli('templates', 'list')).json as Array<{
        name: string;
        tables: number;
        source: { wwwroot: string };
      }>;
      expect(templates.find((t) => t.name.startsWith('b-final-'))).toMatchObject({
        tables: 494,
        source: { wwwroot: B },
      });
      const [scratch] = await conn.query(
        "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'vmops\\_check\\_%'",
      );
      expect(scratch).toEqual([]);
    });
  },
);
