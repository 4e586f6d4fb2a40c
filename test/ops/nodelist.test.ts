import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql, { type Connection } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMysqlUrl } from '../../src/core/db/mysql-url.ts';
import { takeSnapshot } from '../../src/ops/lifecycle/snapshot.ts';
import { runCli } from '../support/cli.ts';
import { dropDatabase, leaseMoodleDatabase, type TestDatabase } from '../support/databases.ts';
import { opsFixture, registerInstances, startWorker, type OpsFixture } from '../support/fleet.ts';
import { siteQueries } from '../support/moodle-log.ts';
import { knownSecret } from '../support/secrets.ts';
import { testServices } from '../support/services.ts';

const HEADER =
  'vhostname;vtemplate;name;shortname;description;vdbtype;vdbhost;vdblogin;vdbpass;vdbname;vdbprefix;vdatapath;mnet;config_theme;auth_cas|hostname';

describe.runIf(testServices().moodleDump)("bulk create and destroy from VMoodle's nodelist.csv", () => {
  let fx: OpsFixture;
  let conn: Connection;
  let root: string;
  let files: string;
  const db = (n: number) => `${testServices().runId}_nl${n}`;
  const n1 = siteQueries(
    () => conn,
    () => db(1),
  );
  const n2 = siteQueries(
    () => conn,
    () => db(2),
  );
  const server = () => parseMysqlUrl(testServices().mysqlServer);
  const cli = async (...args: string[]) => {
    const result = await runCli(['--json', ...args], fx.env);
    return { ...result, json: result.stdout ? JSON.parse(result.stdout) : undefined };
  };
  const file = (name: string, lines: string[]) => {
    const path = join(files, name);
    writeFileSync(path, `\uFEFF${lines.join('\n')}\n`);
    return path;
  };
  const line = (
    n: number,
    extra: Partial<
      Record<
        'template' | 'shortname' | 'vdbname' | 'vdatapath' | 'login' | 'mnet' | 'theme' | 'cas' | 'description',
        string
      >
    > = {},
  ) =>
    [
      `https://n${n}.campus.example.org`,
      extra.template ?? 'tpl',
      `Campus N${n}`,
      extra.shortname ?? `n${n}`,
      extra.description ?? '',
      'mariadb',
      ...(extra.login ?? ';;').split(';'),
      extra.vdbname ?? db(n),
      'mdl_',
      extra.vdatapath ?? join(root, `n${n}`),
      extra.mnet ?? '-1',
      extra.theme ?? '',
      extra.cas ?? '',
    ].join(';');
  const databases = async () => {
    const [rows] = await conn.query(
      'SELECT SCHEMA_NAME AS name FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ?',
      [`${testServices().runId}\\_nl%`],
    );
    return (rows as Array<{ name: string }>).map((r) => r.name);
  };

  beforeAll(async () => {
    const [master, a] = (await Promise.all([leaseMoodleDatabase(), leaseMoodleDatabase()])) as [
      TestDatabase,
      TestDatabase,
    ];
    root = mkdtempSync(join(tmpdir(), 'vmops-nodelist-'));
    files = join(root, '..', `${root.split('/').pop()}-files`);
    mkdirSync(files);
    afterAll(() => rmSync(root, { recursive: true, force: true }));
    afterAll(() => rmSync(files, { recursive: true, force: true }));
    fx = await opsFixture('nodelist', master, { VMOODLE_DATAROOT_ROOT: root });
    await registerInstances(fx, [
      { shortname: 'a', database: a.name, vhostname: 'http://localhost/moodle-tpl', dataroot: join(root, 'a') },
    ]);
    startWorker(fx);
    conn = await mysql.createConnection(server());
    afterAll(() => conn.end());
    for (let i = 1; i <= 3; i++) afterAll(() => dropDatabase(db(i)));
    const fleet = await fx.rt.registry.loadFleet();
    await takeSnapshot(fx.rt.moodle, fx.rt.moodleTarget(fleet, fleet.find('a')!), fx.rt.templates, 'tpl', {
      kind: 'instance',
    });
  });

  it('lint names every bad line and makes nothing', async () => {
    const secret = knownSecret('n0t-a-registered-password');
    const path = file('bad.csv', [
      '# the 2027 intake',
      HEADER,
      line(1),
      line(2, { shortname: '' }),
      line(3, { template: 'nope' }),
      line(4, { vdatapath: '/var/moodledata/n4' }),
      line(5, { login: `127.0.0.1:3306;someone;${secret}` }),
      'https://n6.campus.example.org;tpl;Campus N6;n6',
      line(7, { shortname: 'n1' }),
      line(8, { shortname: 'a' }),
      line(9, { vdbname: 'moodle-n9' }),
      line(10, { description: 'x'.repeat(1100) }),
      line(11, { mnet: 'many' }),
    ]);
    const result = await cli('lifecycle', 'bulkcreate', path, '--lint');
    expect(result.code).toBe(1);
    const problems = result.json.problems as Array<{ line: number; message: string }>;
    expect(problems.map((p) => p.line)).toEqual([4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
    const at = (n: number) => problems.find((p) => p.line === n)?.message;
    expect(at(4)).toContain('missing parameter shortname');
    expect(at(5)).toBe(`no template 'nope' in ${fx.rt.config.lifecycle.templatesDir} (templates list shows them)`);
    expect(at(6)).toBe(`vdatapath: /var/moodledata/n4 is not under the allowed dataroot folder ${root}`);
    expect(at(7)).toContain("is neither the master's nor a registered instance's");
    expect(at(8)).toBe('4 cells, the header has 15');
    expect(at(9)).toBe('the same shortname as line 3');
    expect(at(10)).toContain("shortname: 'a' is already used by http://localhost/moodle-tpl");
    expect(at(11)).toContain("vdbname: 'moodle-n9' must not contain '-'");
    expect(at(12)).toBe('longer than 1024 bytes');
    expect(at(13)).toContain("mnet: 'many' must be -1, 0, a subnet number or new");
    expect(result.stdout).not.toContain(secret);

    const refused = await cli('lifecycle', 'bulkcreate', path, '--yes');
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('10 bad lines, nothing done: line 4: ');
    expect(await databases()).toEqual([]);
    expect((await fx.rt.registry.loadAll()).map((i) => i.shortname)).toEqual(['a']);
  });

  it('makes every instance of a good file in one run, with its config_ and component| settings written as cfg.php writes them', async () => {
    const master = server();
    const path = file('good.csv', [
      HEADER,
      line(1, { theme: 'classic', cas: 'cas.example.org' }),
      line(2, {
        description: 'Second&#44 with a comma',
        login: `${master.host}:${master.port};${master.user};${master.password ?? ''}`,
        mnet: '0',
      }),
    ]);
    expect((await cli('lifecycle', 'bulkcreate', path, '--lint')).json).toEqual({ file: path, lines: 2, problems: [] });
    const result = await cli('lifecycle', 'bulkcreate', path, '--yes');
    expect(result.stderr).toBe('');
    expect(result.json.targets.map((t: { shortname: string; status: string }) => [t.shortname, t.status])).toEqual([
      ['n1', 'applied'],
      ['n2', 'applied'],
    ]);
    expect(result.json.targets[0].message).toContain('2 settings of its own written');

    const rows = await fx.rt.registry.loadAll();
    expect(rows.find((i) => i.shortname === 'n1')).toMatchObject({
      vhostname: 'https://n1.campus.example.org',
      vdbname: db(1),
      mnet: -1,
      enabled: true,
    });
    expect(rows.find((i) => i.shortname === 'n2')).toMatchObject({
      description: 'Second, with a comma',
      mnet: 0,
      enabled: true,
    });
    expect(await n1.rows("SELECT value FROM {config} WHERE name = 'theme'")).toEqual([{ value: 'classic' }]);
    expect(await n1.rows("SELECT value FROM {config_plugins} WHERE plugin = 'auth_cas' AND name = 'hostname'")).toEqual(
      [{ value: 'cas.example.org' }],
    );
    const logged = await n1.rows(
      "SELECT userid, plugin, name, value, oldvalue FROM {config_log} WHERE name IN ('theme', 'hostname') ORDER BY id DESC LIMIT 2",
    );
    expect(logged).toEqual([
      { userid: 0, plugin: 'auth_cas', name: 'hostname', value: 'cas.example.org', oldvalue: '0' },
      { userid: 0, plugin: null, name: 'theme', value: 'classic', oldvalue: 'boost' },
    ]);
    expect(await n2.rows("SELECT value FROM {config} WHERE name = 'theme'")).toEqual([{ value: 'boost' }]);
  });

  it('bulk destroy uses only the registry: a line whose password or path differs is refused, a matching one destroys', async () => {
    expect((await cli('instances', 'disable', 'n1')).code).toBe(0);
    const wrong = knownSecret('a-guessed-password');
    const bad = file('retire-bad.csv', [
      'vhostname;vdbname;vdblogin;vdbpass;vdatapath',
      `https://n1.campus.example.org;${db(1)};root;${wrong};${join(root, 'n1')}`,
      `https://n1.campus.example.org;${db(1)};;;/`,
      'https://nobody.campus.example.org;;;;',
    ]);
    const refused = await cli('lifecycle', 'bulkdestroy', bad, '--confirm=1');
    expect(refused.code).toBe(2);
    // n1 was made with a login of its own, so the line's root is not its login either.
    expect(refused.stderr).toContain(
      '3 bad lines, nothing done: line 2: vdblogin, vdbpass not as the registry holds them for n1: nothing of it is destroyed; line 3: vdatapath not as the registry holds them for n1',
    );
    expect(refused.stderr).toContain(
      "line 4: no registered instance has the wwwroot 'https://nobody.campus.example.org'",
    );
    expect(refused.stderr).not.toContain(wrong);
    expect(await databases()).toContain(db(1));

    const good = file('retire.csv', ['vhostname;vdbname', `https://n1.campus.example.org/;${db(1)}`]);
    const result = await cli('lifecycle', 'bulkdestroy', good, '--confirm=1');
    expect(result.stderr).toBe('');
    expect(result.json.targets).toMatchObject([{ shortname: 'n1', status: 'applied' }]);
    expect(await databases()).toEqual([db(2)]);
    expect(existsSync(join(root, 'n1'))).toBe(false);
    expect((await fx.rt.registry.loadAll()).map((i) => i.shortname).sort()).toEqual(['a', 'n2']);
  });
});
