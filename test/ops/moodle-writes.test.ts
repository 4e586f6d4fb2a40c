import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Redis } from 'ioredis';
import mysql, { type Connection } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMysqlUrl } from '../../src/core/db/mysql-url.ts';
import { runCli } from '../support/cli.ts';
import { leaseMoodleDatabase, type TestDatabase } from '../support/databases.ts';
import { opsFixture, registerInstances, startWorker, type OpsFixture } from '../support/fleet.ts';
import { testServices } from '../support/services.ts';
import { createPlan } from '../../src/ops/executor/planner.ts';
import { cancelRun, revertRun, startRun } from '../../src/ops/executor/run-actions.ts';
import { FINAL_STATES } from '../../src/ops/executor/run-model.ts';
import { knownSecret } from '../support/secrets.ts';
import { CONFIG_IN_REDIS, mucConfigPhp, redisStorePhp } from '../support/muc.ts';
import { configLogEvent, type ConfigLogRow } from '../support/moodle-log.ts';

let fx: OpsFixture;
let site: TestDatabase;
let conn: Connection;

async function run(...args: string[]): Promise<void> {
  const result = await runCli([...args, '--hosts', 'site', '--yes'], fx.env);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
}

async function rows<T>(sql: string, binds: unknown[] = []): Promise<T[]> {
  const [found] = await conn.query(sql.replaceAll('{', `\`${site.name}\`.\`mdl_`).replaceAll('}', '`'), binds);
  return found as T[];
}

/** The newest config_log row, and the log store rows written since `since` (config_log's id). */
async function logged(since: number): Promise<{ log: ConfigLogRow; events: Array<Record<string, unknown>> }> {
  const [log] = await rows<ConfigLogRow>('SELECT * FROM {config_log} ORDER BY id DESC LIMIT 1');
  const events = await rows<Record<string, unknown>>(
    "SELECT * FROM {logstore_standard_log} WHERE eventname = '\\\\core\\\\event\\\\config_log_created' AND objectid > ? ORDER BY id",
    [since],
  );
  return { log: log as ConfigLogRow, events };
}

const lastLogId = async () =>
  Number((await rows<{ id: number | null }>('SELECT MAX(id) AS id FROM {config_log}'))[0]?.id ?? 0);

const eventRow = configLogEvent;

describe.runIf(testServices().moodleDump)(
  "setting writes logged as Moodle's set_config and unset_config log them",
  () => {
    beforeAll(async () => {
      site = await leaseMoodleDatabase();
      fx = await opsFixture('writes');
      await registerInstances(fx, [{ shortname: 'site', database: site.name }]);
      startWorker(fx);
      conn = await mysql.createConnection(parseMysqlUrl(testServices().mysqlServer));
    });
    afterAll(() => conn.end());

    it('sets, changes and unsets a core setting with the config_log and JSON log store rows of cfg.php', async () => {
      let since = await lastLogId();
      const before = Math.floor(Date.now() / 1000);
      await run('run', 'generic/setconfig', 'key=vmopsnew', 'value=1');
      let { log, events } = await logged(since);
      expect(log).toMatchObject({ userid: 0, plugin: null, name: 'vmopsnew', value: '1', oldvalue: '0' });
      expect(log.timemodified).toBeGreaterThanOrEqual(before);
      expect(events).toEqual([
        { id: expect.any(Number), ...eventRow(log, '{"name":"vmopsnew","oldvalue":false,"value":"1","plugin":null}') },
      ]);

      since = log.id;
      await run('run', 'generic/setconfig', 'key=vmopsnew', 'value=a/é');
      ({ log, events } = await logged(since));
      expect(log).toMatchObject({ userid: 0, plugin: null, name: 'vmopsnew', value: 'a/é', oldvalue: '1' });
      expect(events).toEqual([
        {
          id: expect.any(Number),
          ...eventRow(log, '{"name":"vmopsnew","oldvalue":"1","value":"a\\/\\u00e9","plugin":null}'),
        },
      ]);

      since = log.id;
      await run('run', 'generic/setconfig', 'key=vmopsnew', 'unset=1');
      ({ log, events } = await logged(since));
      expect(log).toMatchObject({ userid: 0, plugin: null, name: 'vmopsnew', value: null, oldvalue: 'a/é' });
      expect(events).toEqual([
        {
          id: expect.any(Number),
          ...eventRow(log, '{"name":"vmopsnew","oldvalue":"a\\/\\u00e9","value":null,"plugin":null}'),
        },
      ]);
      expect(await rows('SELECT * FROM {config} WHERE name = ?', ['vmopsnew'])).toEqual([]);
    });

    it('writes `other` as PHP serialize when the store says jsonformat 0, for a changed and a new plugin setting and a core one', async () => {
      await conn.query(
        `UPDATE \`${site.name}\`.mdl_config_plugins SET value = '0' WHERE plugin = 'logstore_standard' AND name = 'jsonformat'`,
      );
      try {
        let since = await lastLogId();
        await run('run', 'generic/setpluginconfig', 'pkey=tool_recyclebin/coursebinenable', 'pvalue=0');
        let { log, events } = await logged(since);
        expect(log).toMatchObject({
          userid: 0,
          plugin: 'tool_recyclebin',
          name: 'coursebinenable',
          value: '0',
          oldvalue: '1',
        });
        expect(events).toEqual([
          {
            id: expect.any(Number),
            ...eventRow(
              log,
              'a:4:{s:4:"name";s:15:"coursebinenable";s:8:"oldvalue";s:1:"1";s:5:"value";s:1:"0";s:6:"plugin";s:15:"tool_recyclebin";}',
            ),
          },
        ]);

        since = log.id;
        await run('run', 'generic/setpluginconfig', 'pkey=tool_recyclebin/vmopsnew', 'pvalue=é');
        ({ log, events } = await logged(since));
        expect(log).toMatchObject({ plugin: 'tool_recyclebin', name: 'vmopsnew', value: 'é', oldvalue: '0' });
        expect(events).toEqual([
          {
            id: expect.any(Number),
            ...eventRow(
              log,
              'a:4:{s:4:"name";s:8:"vmopsnew";s:8:"oldvalue";b:0;s:5:"value";s:2:"é";s:6:"plugin";s:15:"tool_recyclebin";}',
            ),
          },
        ]);

        await run('run', 'generic/setconfig', 'key=vmopscore', 'value=1');
        since = await lastLogId();
        await run('run', 'generic/setconfig', 'key=vmopscore', 'value=a/é');
        ({ log, events } = await logged(since));
        expect(log).toMatchObject({ userid: 0, plugin: null, name: 'vmopscore', value: 'a/é', oldvalue: '1' });
        expect(events).toEqual([
          {
            id: expect.any(Number),
            ...eventRow(
              log,
              'a:4:{s:4:"name";s:9:"vmopscore";s:8:"oldvalue";s:1:"1";s:5:"value";s:4:"a/é";s:6:"plugin";N;}',
            ),
          },
        ]);

        await run('run', 'generic/setconfig', 'key=vmopsgone', 'value=ü');
        since = await lastLogId();
        await run('run', 'generic/setconfig', 'key=vmopsgone', 'unset=1');
        ({ log, events } = await logged(since));
        expect(log).toMatchObject({ userid: 0, plugin: null, name: 'vmopsgone', value: null, oldvalue: 'ü' });
        expect(events).toEqual([
          {
            id: expect.any(Number),
            ...eventRow(log, 'a:4:{s:4:"name";s:9:"vmopsgone";s:8:"oldvalue";s:2:"ü";s:5:"value";N;s:6:"plugin";N;}'),
          },
        ]);
      } finally {
        await conn.query(
          `UPDATE \`${site.name}\`.mdl_config_plugins SET value = '1' WHERE plugin = 'logstore_standard' AND name = 'jsonformat'`,
        );
      }
    });

    it('unsets a plugin setting as cfg.php --unset --component does, with its JSON log store row', async () => {
      await run('run', 'generic/setpluginconfig', 'pkey=tool_recyclebin/vmopsunset', 'pvalue=7');
      const since = await lastLogId();
      await run('run', 'generic/setpluginconfig', 'pkey=tool_recyclebin/vmopsunset', 'unset=1');
      const { log, events } = await logged(since);
      expect(log).toMatchObject({
        userid: 0,
        plugin: 'tool_recyclebin',
        name: 'vmopsunset',
        value: null,
        oldvalue: '7',
      });
      expect(events).toEqual([
        {
          id: expect.any(Number),
          ...eventRow(log, '{"name":"vmopsunset","oldvalue":"7","value":null,"plugin":"tool_recyclebin"}'),
        },
      ]);
      expect(
        await rows("SELECT * FROM {config_plugins} WHERE plugin = 'tool_recyclebin' AND name = 'vmopsunset'"),
      ).toEqual([]);
    });

    it('writes no log store row when the standard store is not enabled, and masks a password setting in both rows', async () => {
      await conn.query(
        `UPDATE \`${site.name}\`.mdl_config_plugins SET value = '' WHERE plugin = 'tool_log' AND name = 'enabled_stores'`,
      );
      let since = await lastLogId();
      try {
        await run('run', 'generic/setconfig', 'key=forcelogin', 'value=1');
        const { log, events } = await logged(since);
        expect(log).toMatchObject({ name: 'forcelogin', value: '1', oldvalue: '0' });
        expect(events).toEqual([]);
      } finally {
        await conn.query(
          `UPDATE \`${site.name}\`.mdl_config_plugins SET value = 'logstore_standard' WHERE plugin = 'tool_log' AND name = 'enabled_stores'`,
        );
      }
      since = await lastLogId();
      await run('run', 'generic/setconfig', 'key=smtppass', `value=${knownSecret('Smtp-Wr1tes-Secret')}`);
      const { log, events } = await logged(since);
      expect(log).toMatchObject({ name: 'smtppass', value: '********', oldvalue: '' });
      expect(events).toEqual([
        {
          id: expect.any(Number),
          ...eventRow(log, '{"name":"smtppass","oldvalue":"","value":"********","plugin":null}'),
        },
      ]);
    });

    it('makes a revert a conflict where the value was changed after the run wrote it, and shows the values a revert writes', async () => {
      const first = JSON.parse(
        (
          await runCli(
            ['--json', 'run', 'generic/setconfig', '--hosts', 'site', 'key=forcelogin', 'value=0', '--yes'],
            fx.env,
          )
        ).stdout,
      );
      const changed = JSON.parse(
        (
          await runCli(
            ['--json', 'run', 'generic/setconfig', '--hosts', 'site', 'key=forcelogin', 'value=1', '--yes'],
            fx.env,
          )
        ).stdout,
      );
      expect(changed.targets[0]).toMatchObject({ status: 'applied', old: '0', new: '1' });
      await conn.query(`UPDATE \`${site.name}\`.mdl_config SET value = 'someone' WHERE name = 'forcelogin'`);

      const planned = await revertRun(fx.rt, changed.run, 'tester');
      expect(planned.targets[0]).toMatchObject({
        preview_old: 'someone',
        preview_new: '0',
        preview_note: `changed since run ${changed.run} wrote 1: a conflict, not overwritten`,
      });
      const shown = JSON.parse((await runCli(['--json', 'runs', 'show', String(planned.run.id)], fx.env)).stdout);
      expect(shown.params).toMatchObject({ key: 'forcelogin', value: '0' });
      await startRun(fx.rt, planned.run.id, 'tester', planned.run.plan_hash);
      await fx.rt.progress.follow(
        planned.run.id,
        () => undefined,
        (e) => e.type === 'state' && FINAL_STATES.includes(e.state),
      );
      expect((await fx.rt.store.getTargets(planned.run.id))[0]).toMatchObject({ status: 'conflict' });
      expect((await rows<{ value: string }>("SELECT value FROM {config} WHERE name = 'forcelogin'"))[0]?.value).toBe(
        'someone',
      );
      expect(first.targets[0].status).toMatch(/applied/);
    });

    it('purges after a SQL write as purgecaches does, not after a SELECT, and refuses purge=1 with a SELECT', async () => {
      const revs = async () =>
        Object.fromEntries(
          (
            await rows<{ name: string; value: string }>(
              "SELECT name, value FROM {config} WHERE name IN ('themerev', 'jsrev', 'langrev', 'templaterev', 'localcachedirpurged')",
            )
          ).map((r) => [r.name, Number(r.value)]),
        );
      const cacherev = async () => Number((await rows<{ c: number }>('SELECT MIN(cacherev) AS c FROM {course}'))[0]?.c);
      const seed = () => {
        for (const dir of ['cache/cachestore_file/default_application/core_config', 'localcache/theme'])
          writeEntry(join(fx.dataDir, 'site', dir, 'x.cache'));
      };
      const writeEntry = (path: string) => {
        mkdirSync(dirname(path), { recursive: true });
        writeFileSync(path, 'cached');
      };
      seed();
      const [before, courseBefore] = [await revs(), await cacherev()];
      await run('run', 'sql/sql', "sql=SELECT value FROM {config} WHERE name = 'release'");
      expect(await revs()).toEqual(before);
      expect(existsSync(join(fx.dataDir, 'site', 'localcache', 'theme', 'x.cache'))).toBe(true);

      expect(
        (
          await runCli(
            [
              'run',
              'sql/sql',
              '--hosts',
              'site',
              "sql=UPDATE {config} SET value = 'vmops' WHERE name = 'frontpage_vmops'",
              '--confirm=1',
            ],
            fx.env,
          )
        ).code,
      ).toBe(0);
      const after = await revs();
      for (const name of Object.keys(before)) expect(after[name]).toBeGreaterThan(before[name] as number);
      expect(await cacherev()).toBeGreaterThan(courseBefore);
      expect(existsSync(join(fx.dataDir, 'site', 'cache', 'cachestore_file'))).toBe(false);
      expect(existsSync(join(fx.dataDir, 'site', 'localcache', 'theme'))).toBe(false);

      const refused = await runCli(['run', 'sql/sql', '--hosts', 'site', 'sql=SELECT 1', 'purge=1', '--yes'], fx.env);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain(
        'sql/sql: purge: purge=1 with a read-only statement: it changes nothing, so there is nothing to purge',
      );
    });

    describe('maintenance', () => {
      const file = () => join(fx.dataDir, 'site', 'climaintenance.html');
      const setting = async (name: string) =>
        (await rows<{ value: string }>('SELECT value FROM {config} WHERE name = ?', [name]))[0]?.value;
      const plan = async (params: Record<string, string>) => {
        const planned = await createPlan(fx.rt, {
          command: 'generic/maintenance',
          params,
          selector: { tohosts: ['site'] },
          requestedBy: 'tester',
          via: 'cli',
        });
        await cancelRun(fx.rt, planned.run.id, 'tester');
        const [target] = planned.targets;
        return { old: target?.preview_old, new: target?.preview_new };
      };
      const status = async (...params: string[]) => {
        const result = await runCli(
          ['--json', 'run', 'generic/maintenance', '--hosts', 'site', ...params, '--yes'],
          fx.env,
        );
        return JSON.parse(result.stdout) as {
          run: number;
          targets: Array<{ status: string; old: string; new: string; message: string | null }>;
        };
      };

      /**
       * Moodle's error/plainpage.php as enable_cli_maintenance_mode() fills it for a site with no message and no template
       * (moodle-facts §3.2): "<fullname> under maintenance" over the sentence, for the dump's "Moodle Template".
       */
      const sitePage = readFileSync(
        join(import.meta.dirname, '..', 'fixtures', 'climaintenance-site-name.html'),
        'utf8',
      );
      const messagePage = (message: string) =>
        sitePage
          .replaceAll(
            'Moodle Template under maintenance',
            'The site is undergoing maintenance and is currently not available',
          )
          .replace(
            "<div class='alert-danger'>The site is undergoing maintenance and is currently not available</div>",
            `<div class='alert-danger'>${message}</div>`,
          );
      const logsSince = (since: number) =>
        rows<ConfigLogRow>('SELECT * FROM {config_log} WHERE id > ? ORDER BY id', [since]);

      it('turns web and CLI maintenance on as Moodle does: both settings logged as the admin page logs them, the page written 0666, no row for the file', async () => {
        const since = await lastLogId();
        expect(await plan({ mmode: '1', mmessage: 'Back at <b>6</b>', climaintenance: '1' })).toEqual({
          old: 'off',
          new: 'on; message "Back at <b>6</b>"; CLI file',
        });
        expect((await status('mmode=1', 'mmessage=Back at <b>6</b>', 'climaintenance=1')).targets[0]?.status).toBe(
          'applied',
        );
        expect(await setting('maintenance_enabled')).toBe('1');
        expect(await setting('maintenance_message')).toBe('Back at <b>6</b>');
        const logs = await logsSince(since);
        expect(logs.map((l) => [l.userid, l.name, l.value, l.oldvalue])).toEqual([
          [2, 'maintenance_enabled', '1', '0'],
          [2, 'maintenance_message', 'Back at <b>6</b>', ''],
        ]);
        const events = await rows<Record<string, unknown>>(
          'SELECT * FROM {logstore_standard_log} WHERE objecttable = ? AND objectid > ? ORDER BY id',
          ['config_log', since],
        );
        expect(events).toEqual([
          {
            id: expect.any(Number),
            ...eventRow(
              logs[0] as ConfigLogRow,
              '{"name":"maintenance_enabled","oldvalue":"0","value":"1","plugin":null}',
              'admin',
            ),
          },
          {
            id: expect.any(Number),
            ...eventRow(
              logs[1] as ConfigLogRow,
              '{"name":"maintenance_message","oldvalue":"","value":"Back at <b>6<\\/b>","plugin":null}',
              'admin',
            ),
          },
        ]);
        expect(readFileSync(file(), 'utf8')).toBe(messagePage('Back at <b>6</b>'));
        expect(statSync(file()).mode & 0o777).toBe(0o666);
      });

      it('turns everything off, whatever climaintenance says: the file and a scheduled maintenance go too, and revert puts the message back', async () => {
        await conn.query(
          `INSERT INTO \`${site.name}\`.mdl_config (name, value) VALUES ('maintenance_later', '1900000000')`,
        );
        const planned = await plan({ mmode: '0', mmessage: 'Back at <b>6</b>' });
        expect(planned).toEqual({
          old: 'on; message "Back at <b>6</b>"; CLI file; scheduled for 2030-03-17T17:46:40.000Z',
          new: 'off; message "Back at <b>6</b>"',
        });
        const off = await status('mmode=0');
        expect(off.targets[0]).toMatchObject({ status: 'applied', new: 'off' });
        expect(await setting('maintenance_enabled')).toBe('0');
        expect(await setting('maintenance_later')).toBeUndefined();
        expect(existsSync(file())).toBe(false);
        const revert = JSON.parse(
          (await runCli(['--json', 'runs', 'revert', String(off.run), '--yes'], fx.env)).stdout,
        );
        expect(revert.targets[0]).toMatchObject({ status: 'applied', new: 'on; message "Back at <b>6</b>"; CLI file' });
        expect(await setting('maintenance_message')).toBe('Back at <b>6</b>');
        expect(existsSync(file())).toBe(true);
      });

      it('writes the page Moodle writes without a message: the site template verbatim, else "<site> under maintenance"', async () => {
        await status('mmode=0');
        await conn.query(`UPDATE \`${site.name}\`.mdl_config SET value = '' WHERE name = 'maintenance_message'`);
        expect((await status('mmode=1', 'mmessage=<p> </p>', 'climaintenance=1')).targets[0]?.status).toBe('applied');
        expect(readFileSync(file(), 'utf8')).toBe(sitePage);
        await status('mmode=0');
        const template = join(fx.dataDir, 'site', 'climaintenance.template.html');
        writeFileSync(template, '<html>Our own page</html>');
        try {
          await status('mmode=1', 'climaintenance=1');
          expect(readFileSync(file(), 'utf8')).toBe('<html>Our own page</html>');
        } finally {
          rmSync(template);
          await status('mmode=0');
        }
      });

      it('changes only what differs, in every combination of web mode, message, the CLI file and a scheduled maintenance', async () => {
        await status('mmode=0', 'mmessage=');
        const later = () =>
          conn.query(
            `INSERT INTO \`${site.name}\`.mdl_config (name, value) VALUES ('maintenance_later', '1900000000')`,
          );
        const cases: Array<{
          before?: () => Promise<unknown>;
          params: string[];
          shown: string;
          logged: Array<[string, string]>;
          file: boolean;
        }> = [
          { params: ['mmode=1'], shown: 'on', logged: [['maintenance_enabled', '1']], file: false },
          { params: ['mmode=1', 'climaintenance=1'], shown: 'on; CLI file', logged: [], file: true },
          {
            params: ['mmode=1', 'mmessage=Soon'],
            shown: 'on; message "Soon"; CLI file',
            logged: [['maintenance_message', 'Soon']],
            file: true,
          },
          {
            before: later,
            params: ['mmode=1', 'mmessage=Soon'],
            shown: 'on; message "Soon"; CLI file',
            logged: [],
            file: true,
          },
          {
            params: ['mmode=0', 'mmessage=Soon', 'climaintenance=1'],
            shown: 'off; message "Soon"',
            logged: [['maintenance_enabled', '0']],
            file: false,
          },
          {
            before: later,
            params: ['mmode=0', 'mmessage=Soon'],
            shown: 'off; message "Soon"',
            logged: [],
            file: false,
          },
          { params: ['mmode=0'], shown: 'off', logged: [['maintenance_message', '']], file: false },
        ];
        for (const c of cases) {
          await c.before?.();
          const since = await lastLogId();
          const result = await status(...c.params);
          expect(result.targets[0], c.params.join(' ')).toMatchObject({ status: 'applied', new: c.shown });
          expect((await logsSince(since)).map((l) => [l.name, l.value])).toEqual(c.logged);
          expect(existsSync(file())).toBe(c.file);
          expect(await setting('maintenance_later')).toBeUndefined();
        }
      });

      it('is not "already applied" where the database is off but the CLI file or a scheduled maintenance is still there', async () => {
        await status('mmode=0');
        expect((await status('mmode=0')).targets[0]?.status).toBe('already_applied');
        writeFileSync(file(), 'left behind');
        expect((await status('mmode=0')).targets[0]).toMatchObject({
          status: 'applied',
          old: 'off; CLI file',
          new: 'off',
        });
        expect(existsSync(file())).toBe(false);
        await conn.query(
          `INSERT INTO \`${site.name}\`.mdl_config (name, value) VALUES ('maintenance_later', '1900000000')`,
        );
        expect((await status('mmode=0')).targets[0]).toMatchObject({ status: 'applied', new: 'off' });
        expect(await setting('maintenance_later')).toBeUndefined();
      });
    });

    describe("Moodle's caches, where the site keeps them", () => {
      const dataroot = () => join(fx.dataDir, 'site');
      const S = 'f3b6c2a1d4e5f60718293a4b5c6d7e8f';
      const md5 = (v: string) => createHash('md5').update(v).digest('hex');
      const sha1 = (v: string) => createHash('sha1').update(v).digest('hex');
      /** moodle-facts §3.3: k = sha1(P.'-'.K), P = md5("1/core/config/".S). */
      const key = (plugin: string) => sha1(`${md5(`1/core/config/${S}`)}-${plugin}`);
      const entry = (plugin: string) =>
        join(
          dataroot(),
          'cache',
          'cachestore_file',
          'default_application',
          'core_config',
          `${key(plugin).slice(0, 3)}-cache`,
          `${key(plugin)}.cache`,
        );
      const mucConfig = (stores: string, mapping: string) => mucConfigPhp(S, stores, mapping);
      const writeEntry = (path: string) => {
        mkdirSync(dirname(path), { recursive: true });
        writeFileSync(path, 'a:0:{}');
      };

      it('reports a write whose cache entry cannot be deleted as applied, cache not purged, with why', async () => {
        mkdirSync(join(dataroot(), 'muc'), { recursive: true });
        writeFileSync(join(dataroot(), 'muc', 'config.php'), mucConfig('', ''));
        writeEntry(entry('core'));
        // An immutable file: even root cannot delete it (chattr +i), as on a dataroot mounted read-only in part.
        execFileSync('chattr', ['+i', entry('core')]);
        const before = (await rows<{ value: string }>("SELECT value FROM {config} WHERE name = 'enablebadges'"))[0]
          ?.value;
        const wanted = before === '1' ? '0' : '1';
        const logged = async () =>
          (
            await rows<{ n: number }>(
              "SELECT COUNT(*) AS n FROM {config_log} WHERE name = 'enablebadges' AND value = ?",
              [wanted],
            )
          )[0]?.n;
        const loggedBefore = await logged();
        try {
          const result = await runCli(
            ['--json', 'run', 'generic/setconfig', '--hosts', 'site', 'key=enablebadges', `value=${wanted}`, '--yes'],
            fx.env,
          );
          const [target] = JSON.parse(result.stdout).targets;
          expect(target).toMatchObject({ status: 'applied_cache_not_purged', old: before, new: wanted });
          expect(target.message).toMatch(/cache not purged: .*could not be deleted \(EPERM\)/);
          expect(Number(await logged())).toBe(Number(loggedBefore) + 1);
        } finally {
          execFileSync('chattr', ['-i', entry('core')]);
          rmSync(entry('core'));
        }
      });

      it('deletes only the core/config entry of the plugin a setting belongs to, in a file store', async () => {
        mkdirSync(join(dataroot(), 'muc'), { recursive: true });
        writeFileSync(join(dataroot(), 'muc', 'config.php'), mucConfig('', ''));
        const roledefs = join(
          dataroot(),
          'cache',
          'cachestore_file',
          'default_application',
          'core_roledefs',
          '5-6-cache',
          '5-6c06dfec26439fc34b01531f0cfd4a5f.cache',
        );
        for (const path of [entry('core'), entry('tool_recyclebin'), roledefs]) writeEntry(path);
        await run('run', 'generic/setconfig', 'key=forcelogin', 'value=1');
        expect(existsSync(entry('core'))).toBe(false);
        expect(existsSync(entry('tool_recyclebin'))).toBe(true);
        expect(existsSync(roledefs)).toBe(true);
        await run('run', 'generic/setpluginconfig', 'pkey=tool_recyclebin/autohide', 'pvalue=0');
        expect(existsSync(entry('tool_recyclebin'))).toBe(false);
        expect(existsSync(roledefs)).toBe(true);
      });

      it("deletes the setting's hash field in a Redis store and keeps the others; purgecaches empties the site's store only", async () => {
        const prefix = `${fx.env.VMOODLE_QUEUE_PREFIX}_muc_`;
        const server = new URL(testServices().redisUrl);
        writeFileSync(
          join(dataroot(), 'muc', 'config.php'),
          mucConfig(redisStorePhp(`${server.hostname}:${server.port || 6379}`, prefix), CONFIG_IN_REDIS),
        );
        const redis = new Redis(testServices().redisUrl);
        try {
          const hash = `${prefix}${md5('1 core config')}`;
          await redis.hset(hash, key('core'), 'a:0:{}', key('tool_recyclebin'), 'a:0:{}');
          await run('run', 'generic/setconfig', 'key=forcelogin', 'value=0');
          expect((await redis.hkeys(hash)).sort()).toEqual([key('tool_recyclebin')]);

          const roledefs = `${prefix}${md5('1 core roledefs')}`;
          const otherSite = `${fx.env.VMOODLE_QUEUE_PREFIX}_othersite_${md5('1 core config')}`;
          await redis.hset(roledefs, '5-x', 'a:0:{}');
          await redis.hset(otherSite, key('core'), 'a:0:{}');
          await run('run', 'generic/purgecaches');
          expect(await redis.exists(hash, roledefs)).toBe(0);
          expect(await redis.hkeys(otherSite)).toEqual([key('core')]);
          await redis.del(otherSite);
        } finally {
          redis.disconnect();
          rmSync(join(dataroot(), 'muc'), { recursive: true, force: true });
        }
      });

      it('says which store it could not reach, and that Moodle will not see the change, where no node can purge through PHP', async () => {
        mkdirSync(join(dataroot(), 'muc'), { recursive: true });
        writeFileSync(
          join(dataroot(), 'muc', 'config.php'),
          mucConfig(redisStorePhp('127.0.0.1:1', 'gone_'), CONFIG_IN_REDIS),
        );
        try {
          const result = JSON.parse(
            (
              await runCli(
                ['--json', 'run', 'generic/setconfig', '--hosts', 'site', 'key=forcelogin', 'value=1', '--yes'],
                fx.env,
              )
            ).stdout,
          );
          expect(result.targets[0]).toMatchObject({
            status: 'applied_cache_not_purged',
            message:
              'applied, cache not purged: cache store "redis_store" (redis) at 127.0.0.1:1 could not be reached: ECONNREFUSED, so Moodle won\'t see the change until its caches are purged',
          });
          expect(
            (await rows<{ value: string }>("SELECT value FROM {config} WHERE name = 'forcelogin'"))[0]?.value,
          ).toBe('1');
        } finally {
          rmSync(join(dataroot(), 'muc'), { recursive: true, force: true });
        }
      });
    });
  },
);
