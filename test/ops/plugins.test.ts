import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import mysql, { type Connection } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMysqlUrl } from '../../src/core/db/mysql-url.ts';
import { runCli } from '../support/cli.ts';
import { leaseMoodleDatabase, type TestDatabase } from '../support/databases.ts';
import { opsFixture, registerInstances, startWorker, type OpsFixture } from '../support/fleet.ts';
import { configLogEvent, siteQueries, type ConfigLogRow } from '../support/moodle-log.ts';
import { mucConfigPhp } from '../support/muc.ts';
import { testServices } from '../support/services.ts';

let fx: OpsFixture;
let site: TestDatabase;
let other: TestDatabase;
let conn: Connection;
const q = siteQueries(
  () => conn,
  () => site.name,
);

async function setstate(
  plugin: string,
  state: string,
  host = 'site',
): Promise<{ status: string; old: string | null; new: string | null; message: string | null }> {
  const result = await runCli(
    ['--json', 'run', 'plugins/setstate', '--hosts', host, `plugin=${plugin}`, `state=${state}`, '--yes'],
    fx.env,
  );
  expect(result.stderr).toBe('');
  return JSON.parse(result.stdout).targets[0];
}

/** What one step logged: its config_log rows, and the log store rows, by the admin as the admin pages log them. */
async function step(
  plugin: string,
  state: string,
  expected: Array<Pick<ConfigLogRow, 'name' | 'plugin' | 'oldvalue' | 'value'> & { other: string }>,
) {
  const [logSince, eventSince] = [await q.lastId('config_log'), await q.lastId('logstore_standard_log')];
  const before = Math.floor(Date.now() / 1000);
  const outcome = await setstate(plugin, state);
  const logs = await q.configLogSince(logSince);
  expect(
    logs.map(({ name, plugin: p, oldvalue, value, userid }) => ({ name, plugin: p, oldvalue, value, userid })),
  ).toEqual(expected.map(({ other: _o, ...row }) => ({ ...row, userid: 2 })));
  for (const log of logs) expect(log.timemodified).toBeGreaterThanOrEqual(before);
  expect(await q.eventsSince(eventSince)).toEqual(
    logs.map((log, i) => configLogEvent(log, expected[i]?.other as string, 'admin')),
  );
  return outcome;
}

const setting = async (name: string) =>
  (await q.rows<{ value: string }>('SELECT value FROM {config} WHERE name = ?', [name]))[0]?.value;

describe.runIf(testServices().moodleDump)('plugins: states written as Moodle 4.5 writes them', () => {
  beforeAll(async () => {
    [site, other] = await Promise.all([leaseMoodleDatabase(), leaseMoodleDatabase()]);
    fx = await opsFixture('plugins');
    await registerInstances(fx, [
      { shortname: 'site', database: site.name },
      { shortname: 'other', database: other.name },
    ]);
    startWorker(fx);
    conn = await mysql.createConnection(parseMysqlUrl(testServices().mysqlServer));
  });
  afterAll(() => conn.end());

  it("mod_chat: enabled and disabled again, its course modules hidden and restored through visibleold, each course's cacherev moved on", async () => {
    const [{ id: chat }] = (await q.rows<{ id: number }>("SELECT id FROM {modules} WHERE name = 'chat'")) as [
      { id: number },
    ];
    await q.rows(
      "INSERT INTO {course} (category, fullname, shortname, summary, cacherev) VALUES (1, 'C1', 'c1', '', 5), (1, 'C2', 'c2', '', 5)",
    );
    const [c1, c2] = (
      await q.rows<{ id: number }>("SELECT id FROM {course} WHERE shortname IN ('c1', 'c2') ORDER BY shortname")
    ).map((r) => r.id);
    // One module hidden when chat was disabled (visibleold 1), one its teacher hid (visibleold 0), in two courses.
    await q.rows(
      'INSERT INTO {course_modules} (course, module, instance, section, visible, visibleold) VALUES (?, ?, 1, 0, 0, 1), (?, ?, 2, 0, 0, 0)',
      [c1, chat, c2, chat],
    );
    const modules = () =>
      q.rows<{ course: number; visible: number; visibleold: number }>(
        'SELECT course, visible, visibleold FROM {course_modules} WHERE module = ? ORDER BY course',
        [chat],
      );
    const cacherev = async () =>
      (
        await q.rows<{ cacherev: number }>('SELECT cacherev FROM {course} WHERE id IN (?, ?) ORDER BY id', [c1, c2])
      ).map((r) => Number(r.cacherev));
    const before = Math.floor(Date.now() / 1000);

    expect(
      await step('mod_chat', 'enable', [
        {
          name: 'mod_visibility',
          plugin: 'chat',
          oldvalue: '0',
          value: '1',
          other: '{"name":"mod_visibility","oldvalue":"0","value":1,"plugin":"chat"}',
        },
      ]),
    ).toMatchObject({ status: 'applied', old: 'disabled', new: 'enabled' });
    expect((await q.rows<{ visible: number }>("SELECT visible FROM {modules} WHERE name = 'chat'"))[0]?.visible).toBe(
      1,
    );
    expect(await modules()).toEqual([
      { course: c1, visible: 1, visibleold: 1 },
      { course: c2, visible: 0, visibleold: 0 },
    ]);
    const [rev1, rev2] = await cacherev();
    expect(rev1).toBeGreaterThanOrEqual(before);
    expect(rev2).toBe(5);

    expect(
      await step('mod_chat', 'disable', [
        {
          name: 'mod_visibility',
          plugin: 'chat',
          oldvalue: '1',
          value: '0',
          other: '{"name":"mod_visibility","oldvalue":"1","value":0,"plugin":"chat"}',
        },
      ]),
    ).toMatchObject({ status: 'applied', old: 'enabled', new: 'disabled' });
    expect((await q.rows<{ visible: number }>("SELECT visible FROM {modules} WHERE name = 'chat'"))[0]?.visible).toBe(
      0,
    );
    expect(await modules()).toEqual([
      { course: c1, visible: 0, visibleold: 1 },
      { course: c2, visible: 0, visibleold: 0 },
    ]);
    expect((await cacherev())[0]).toBe((rev1 as number) + 1);
    expect((await cacherev())[1]).toBe(5);
    expect(await setstate('mod_chat', 'disable')).toMatchObject({ status: 'already_applied' });
  });

  it('block_rss_client: enabled and disabled again, block_visibility logged', async () => {
    await step('block_rss_client', 'enable', [
      {
        name: 'block_visibility',
        plugin: 'rss_client',
        oldvalue: '0',
        value: '1',
        other: '{"name":"block_visibility","oldvalue":"0","value":1,"plugin":"rss_client"}',
      },
    ]);
    expect(
      (await q.rows<{ visible: number }>("SELECT visible FROM {block} WHERE name = 'rss_client'"))[0]?.visible,
    ).toBe(1);
    await step('block_rss_client', 'disable', [
      {
        name: 'block_visibility',
        plugin: 'rss_client',
        oldvalue: '1',
        value: '0',
        other: '{"name":"block_visibility","oldvalue":"1","value":0,"plugin":"rss_client"}',
      },
    ]);
    expect(
      (await q.rows<{ visible: number }>("SELECT visible FROM {block} WHERE name = 'rss_client'"))[0]?.visible,
    ).toBe(0);
  });

  it('filter tex: on, off but available, disabled, with filter_active at the system context renumbered as filter_set_global_state does', async () => {
    const filters = () =>
      q.rows<{ filter: string; active: number; sortorder: number }>(
        'SELECT filter, active, sortorder FROM {filter_active} WHERE contextid = 1 ORDER BY sortorder',
      );
    // The dump: six filters on, tex without a row (disabled).
    const dump = [
      ['displayh5p', 1, 1],
      ['activitynames', 1, 2],
      ['mathjaxloader', 1, 3],
      ['emoticon', 1, 4],
      ['urltolink', 1, 5],
      ['mediaplugin', 1, 6],
    ];
    const rowsOf = (list: Array<Array<string | number>>) =>
      list.map(([filter, active, sortorder]) => ({ filter, active, sortorder }));
    expect(await filters()).toEqual(rowsOf(dump));

    await step('filter_tex', 'enable', [
      {
        name: 'filter_active',
        plugin: 'tex',
        oldvalue: '',
        value: '1',
        other: '{"name":"filter_active","oldvalue":"","value":1,"plugin":"tex"}',
      },
    ]);
    expect(await filters()).toEqual(rowsOf([...dump, ['tex', 1, 7]]));
    await step('filter_tex', 'available', [
      {
        name: 'filter_active',
        plugin: 'tex',
        oldvalue: '1',
        value: '-1',
        other: '{"name":"filter_active","oldvalue":"1","value":-1,"plugin":"tex"}',
      },
    ]);
    expect(await filters()).toEqual(rowsOf([...dump, ['tex', -1, 7]]));
    await step('filter_tex', 'disable', [
      {
        name: 'filter_active',
        plugin: 'tex',
        oldvalue: '-1',
        value: '-9999',
        other: '{"name":"filter_active","oldvalue":"-1","value":-9999,"plugin":"tex"}',
      },
    ]);
    expect(await filters()).toEqual(rowsOf([...dump, ['tex', -9999, 7]]));

    // A disabled filter leaves its place: the enabled close up, the disabled follow by name; enabled again, it comes last of the enabled.
    await step('filter_activitynames', 'disable', [
      {
        name: 'filter_active',
        plugin: 'activitynames',
        oldvalue: '1',
        value: '-9999',
        other: '{"name":"filter_active","oldvalue":"1","value":-9999,"plugin":"activitynames"}',
      },
    ]);
    expect(await filters()).toEqual(
      rowsOf([
        ['displayh5p', 1, 1],
        ['mathjaxloader', 1, 2],
        ['emoticon', 1, 3],
        ['urltolink', 1, 4],
        ['mediaplugin', 1, 5],
        ['activitynames', -9999, 6],
        ['tex', -9999, 7],
      ]),
    );
    await step('filter_activitynames', 'enable', [
      {
        name: 'filter_active',
        plugin: 'activitynames',
        oldvalue: '-9999',
        value: '1',
        other: '{"name":"filter_active","oldvalue":"-9999","value":1,"plugin":"activitynames"}',
      },
    ]);
    expect(await filters()).toEqual(
      rowsOf([
        ['displayh5p', 1, 1],
        ['mathjaxloader', 1, 2],
        ['emoticon', 1, 3],
        ['urltolink', 1, 4],
        ['mediaplugin', 1, 5],
        ['activitynames', 1, 6],
        ['tex', -9999, 7],
      ]),
    );
    expect(await setting('filterall')).toBe('0');
  });

  it('auth_email: out of the auth list and back, logged under core with the lists as text', async () => {
    await step('auth_email', 'disable', [
      {
        name: 'auth',
        plugin: 'core',
        oldvalue: 'email',
        value: '',
        other: '{"name":"auth","oldvalue":"email","value":"","plugin":"core"}',
      },
    ]);
    expect(await setting('auth')).toBe('');
    await step('auth_email', 'enable', [
      {
        name: 'auth',
        plugin: 'core',
        oldvalue: '',
        value: 'email',
        other: '{"name":"auth","oldvalue":"","value":"email","plugin":"core"}',
      },
    ]);
    expect(await setting('auth')).toBe('email');
    const refused = await setstate('auth_manual', 'disable');
    expect(refused).toMatchObject({
      status: 'failed',
      message: 'auth_manual is always enabled and cannot be disabled',
    });
  });

  it('enrol_meta: appended to enrol_plugins_enabled and taken out, the system context marked dirty for sessions', async () => {
    const before = Math.floor(Date.now() / 1000);
    await step('enrol_meta', 'enable', [
      {
        name: 'enrol_plugins_enabled',
        plugin: 'meta',
        oldvalue: '0',
        value: '1',
        other: '{"name":"enrol_plugins_enabled","oldvalue":false,"value":1,"plugin":"meta"}',
      },
    ]);
    expect(await setting('enrol_plugins_enabled')).toBe('manual,guest,self,cohort,meta');
    const [flag] = await q.rows<{
      flagtype: string;
      name: string;
      value: string;
      timemodified: number;
      expiry: number;
    }>(
      "SELECT flagtype, name, value, timemodified, expiry FROM {cache_flags} WHERE flagtype = 'accesslib/dirtycontexts'",
    );
    expect(flag).toMatchObject({ flagtype: 'accesslib/dirtycontexts', name: '/1', value: '1' });
    expect(Number(flag?.timemodified)).toBeGreaterThanOrEqual(before);
    expect(Number(flag?.expiry)).toBe(Number(flag?.timemodified) + 28_800);
    await step('enrol_meta', 'disable', [
      {
        name: 'enrol_plugins_enabled',
        plugin: 'meta',
        oldvalue: '1',
        value: '0',
        other: '{"name":"enrol_plugins_enabled","oldvalue":true,"value":0,"plugin":"meta"}',
      },
    ]);
    expect(await setting('enrol_plugins_enabled')).toBe('manual,guest,self,cohort');
    expect(await q.rows("SELECT id FROM {cache_flags} WHERE flagtype = 'accesslib/dirtycontexts'")).toHaveLength(1);
  });

  it('editor_atto: out of texteditors, and appended at the end when enabled again', async () => {
    await step('editor_atto', 'disable', [
      {
        name: 'editor_visibility',
        plugin: 'atto',
        oldvalue: '1',
        value: '0',
        other: '{"name":"editor_visibility","oldvalue":true,"value":0,"plugin":"atto"}',
      },
    ]);
    expect(await setting('texteditors')).toBe('tiny,tinymce,textarea');
    await step('editor_atto', 'enable', [
      {
        name: 'editor_visibility',
        plugin: 'atto',
        oldvalue: '0',
        value: '1',
        other: '{"name":"editor_visibility","oldvalue":false,"value":1,"plugin":"atto"}',
      },
    ]);
    expect(await setting('texteditors')).toBe('tiny,tinymce,textarea,atto');
  });

  it('qtype_multianswer: question/multianswer_disabled written, then deleted', async () => {
    const flag = () =>
      q.rows<{ value: string }>(
        "SELECT value FROM {config_plugins} WHERE plugin = 'question' AND name = 'multianswer_disabled'",
      );
    await step('qtype_multianswer', 'disable', [
      {
        name: 'multianswer_disabled',
        plugin: 'question',
        oldvalue: '0',
        value: '1',
        other: '{"name":"multianswer_disabled","oldvalue":false,"value":true,"plugin":"question"}',
      },
    ]);
    expect(await flag()).toEqual([{ value: '1' }]);
    await step('qtype_multianswer', 'enable', [
      {
        name: 'multianswer_disabled',
        plugin: 'question',
        oldvalue: '1',
        value: '0',
        other: '{"name":"multianswer_disabled","oldvalue":"1","value":false,"plugin":"question"}',
      },
    ]);
    expect(await flag()).toEqual([]);
  });

  it("invalidates the setting's core/config entry and purges the plugin manager's cache, and nothing else", async () => {
    const S = '0a1b2c3d4e5f60718293a4b5c6d7e8f9';
    const dataroot = join(fx.dataDir, 'site');
    mkdirSync(join(dataroot, 'muc'), { recursive: true });
    writeFileSync(join(dataroot, 'muc', 'config.php'), mucConfigPhp(S));
    const md5 = (v: string) => createHash('md5').update(v).digest('hex');
    const sha1 = (v: string) => createHash('sha1').update(v).digest('hex');
    // moodle-facts §3.3: core/config keys are sha1(P-K); plugin_manager and roledefs use simple keys K-P.
    const configEntry = (plugin: string) => {
      const k = sha1(`${md5(`1/core/config/${S}`)}-${plugin}`);
      return join(
        dataroot,
        'cache/cachestore_file/default_application/core_config',
        `${k.slice(0, 3)}-cache`,
        `${k}.cache`,
      );
    };
    const pluginManager = join(
      dataroot,
      'cache/cachestore_file/default_application/core_plugin_manager/pl-cache/plugins-x.cache',
    );
    const roledefs = join(dataroot, 'cache/cachestore_file/default_application/core_roledefs/5-6-cache/5-6c06.cache');
    const seed = () => {
      for (const path of [configEntry('core'), configEntry('question'), pluginManager, roledefs]) {
        mkdirSync(dirname(path), { recursive: true });
        writeFileSync(path, 'a:0:{}');
      }
    };
    try {
      seed();
      await setstate('qtype_multianswer', 'disable');
      expect([
        existsSync(configEntry('question')),
        existsSync(configEntry('core')),
        existsSync(pluginManager),
        existsSync(roledefs),
      ]).toEqual([false, true, false, true]);
      seed();
      await setstate('editor_atto', 'disable');
      expect([
        existsSync(configEntry('question')),
        existsSync(configEntry('core')),
        existsSync(pluginManager),
        existsSync(roledefs),
      ]).toEqual([true, false, false, true]);
    } finally {
      await setstate('qtype_multianswer', 'enable');
      await setstate('editor_atto', 'enable');
      rmSync(join(dataroot, 'muc'), { recursive: true, force: true });
    }
  });

  it('compare reports exactly the plugin that differs, and sync makes the hosts equal', async () => {
    await setstate('mod_survey', 'enable', 'other');
    const compared = await runCli(
      ['--json', 'run', 'plugins/compare', '--hosts', 'site,other', 'plugintype=mod', '--yes'],
      fx.env,
    );
    const { comparison } = JSON.parse(compared.stdout);
    expect(comparison.differences).toEqual([
      { item: 'survey', majority: 'disabled', odd: [{ host: 'other', value: 'enabled' }] },
    ]);
    expect(Object.keys(comparison.matrix)).toHaveLength(24);
    const text = await runCli(['run', 'plugins/compare', '--hosts', 'site,other', 'plugintype=mod', '--yes'], fx.env);
    expect(text.stdout).toContain('1 of 24 plugins differs across 2 hosts:');
    expect(text.stdout).toMatch(/PLUGIN\s+site\s+other\nsurvey\s+disabled\s+enabled/);

    const synced = await runCli(
      ['--json', 'run', 'plugins/sync', '--from', 'site', '--hosts', 'other', 'plugintype=mod', '--yes'],
      fx.env,
    );
    expect(JSON.parse(synced.stdout).targets[0]).toMatchObject({
      status: 'applied',
      message: '1 changed: survey → disabled',
    });
    const again = await runCli(
      ['--json', 'run', 'plugins/compare', '--hosts', 'site,other', 'plugintype=mod', '--yes'],
      fx.env,
    );
    expect(JSON.parse(again.stdout).comparison.differences).toEqual([]);
  });

  it('refuses a plugin of a type it cannot set, and a state the type does not have, before anything runs', async () => {
    const media = await runCli(
      ['run', 'plugins/setstate', '--hosts', 'site', 'plugin=media_videojs', 'state=disable', '--yes'],
      fx.env,
    );
    expect(media.code).toBe(2);
    expect(media.stderr).toContain("plugin: 'media_videojs' is not a plugin of a type whose state can be set");
    const available = await runCli(
      ['run', 'plugins/setstate', '--hosts', 'site', 'plugin=mod_chat', 'state=available', '--yes'],
      fx.env,
    );
    expect(available.code).toBe(2);
    expect(available.stderr).toContain("state: mod plugins are enabled or disabled; 'available' is for filters");
  });
});
