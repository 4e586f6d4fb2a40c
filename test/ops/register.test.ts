import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql, { type Connection } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMysqlUrl } from '../../src/core/db/mysql-url.ts';
import { readSiteConfig } from '../../src/ops/moodle/site-config.ts';
import { runCli } from '../support/cli.ts';
import { createDatabase, thinInstances } from '../support/databases.ts';
import { opsFixture, type OpsFixture } from '../support/fleet.ts';
import { testServices } from '../support/services.ts';

/** The password the heredoc sample gives: quotes and braces, which a heredoc keeps as they are. */
const HEREDOC_PASSWORD = `Ar'ts"p{w}9`;

describe.runIf(testServices().moodleDump)('register existing Moodles from their config.php files', () => {
  let fx: OpsFixture;
  let conn: Connection;
  let database: string;
  let dir: string;
  const user = `${testServices().runId}_reg`.slice(0, 16);
  const server = () => parseMysqlUrl(testServices().mysqlServer);
  const cli = async (...args: string[]) => {
    const result = await runCli(['--json', ...args], fx.env);
    return { ...result, json: result.stdout ? JSON.parse(result.stdout) : undefined };
  };
  const sample = (name: string, text: string) => {
    const path = join(dir, `${name}.php`);
    writeFileSync(path, text);
    return path;
  };
  const rows = async () =>
    await fx.app
      .masterDb(fx.rt.registry.table)
      .select(
        'name',
        'shortname',
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
      )
      .orderBy('id');

  let law: string;
  let arts: string;
  let notes: string;

  beforeAll(async () => {
    fx = await opsFixture('register');
    await fx.rt.registry.ensureTable();
    database = (await createDatabase('regsites')).name;
    await thinInstances(database, 3, { tables: ['config', 'course'], rowsOf: ['config', 'course'] });
    conn = await mysql.createConnection(server());
    for (const [prefix, fullname] of [
      ['i1_', 'Faculty of Law'],
      ['i2_', 'School of Arts'],
      ['i3_', 'Lecture notes'],
    ]) {
      await conn.query('UPDATE ??.?? SET fullname = ? WHERE id = 1', [database, `${prefix}course`, fullname]);
    }
    await conn.query('DROP USER IF EXISTS ?@?', [user, '%']);
    await conn.query('CREATE USER ?@? IDENTIFIED BY ?', [user, '%', HEREDOC_PASSWORD]);
    await conn.query(`GRANT SELECT ON \`${database}\`.* TO ?@?`, [user, '%']);
    dir = mkdtempSync(join(tmpdir(), 'vmops-register-'));
    const { host, port } = server();
    // As Moodle's installer writes it.
    law = sample(
      'law',
      `<?php  // Moodle configuration file

unset($CFG);
global $CFG;
$CFG = new stdClass();

$CFG->dbtype    = 'mariadb';
$CFG->dblibrary = 'native';
$CFG->dbhost    = '${host}';
$CFG->dbname    = '${database}';
$CFG->dbuser    = '${server().user}';
$CFG->dbpass    = '${server().password ?? ''}';
$CFG->prefix    = 'i1_';
$CFG->dboptions = array (
  'dbpersist' => 0,
  'dbport' => ${port},
  'dbsocket' => '',
  'dbcollation' => 'utf8mb4_unicode_ci',
);

$CFG->wwwroot   = 'https://law.campus.example.org/';
$CFG->dataroot  = '/var/moodledata/law';
$CFG->admin     = 'admin';

$CFG->directorypermissions = 0777;

require_once(__DIR__ . '/lib/setup.php');

// There is no php closing tag in this file,
// it is intentional because it prevents trailing whitespace problems!
`,
    );
    // A VMoodle master: the hook before setup.php, and its own site's values in concatenations.
    arts = sample(
      'arts',
      `<?php
unset($CFG);
global $CFG;
$CFG = new stdClass();
$CFG->dbtype = 'mysqli';
$CFG->dblibrary = 'native';
$CFG->dbhost = '${host}';
$CFG->dbname = '${database}';
$CFG->dbuser = '${user}';
$CFG->dbpass = <<<EOT
${HEREDOC_PASSWORD}
EOT;
$CFG->prefix = 'i2_';
$CFG->dboptions = ['dbpersist' => 1, 'dbport' => '${port}'];
$CFG->wwwroot = "https://arts.campus.example.org";
$CFG->moodledata = '/var/moodledata';
$CFG->dataroot = $CFG->moodledata . '/arts';
$CFG->dirroot = __DIR__;
if (!empty($CLI_VMOODLE_PRECHECK)) {
    $CLI_VMOODLE_PRECHECK = false;
    return;
}
require_once($CFG->dirroot . '/local/vmoodle/vconfig.php');
require_once(__DIR__ . '/lib/setup.php');
`,
    );
    // Comments that look like settings, a branch that may not run, a nowdoc, and a setting given twice.
    notes = sample(
      'notes',
      `<?php
unset($CFG);
global $CFG;
$CFG = new stdClass();
/* Old server:
$CFG->dbhost = 'db-old.example.org';
$CFG->dbname = 'moodle_old';
*/
// $CFG->prefix = 'old_';
# $CFG->wwwroot = 'https://old.example.org';
$CFG->dbtype = 'mariadb';
$CFG->dbhost = '${host}';
$CFG->dbname = <<<'DB'
${database}
DB;
$CFG->dbuser = '${server().user}';
$CFG->dbpass = '${server().password ?? ''}';
$CFG->prefix = 'i3_';
$CFG->dboptions = array('dbport' => ${port});
$CFG->wwwroot = 'https://notes-old.campus.example.org';
$CFG->wwwroot = 'https://campus.example.org/notes';
$CFG->dataroot = '/var/moodledata/notes';
if (getenv('MOODLE_TEST')) {
    $CFG->dataroot = '/tmp/moodledata';
}
$CFG->message = <<<HTML
  <p>Maintenance on {$CFG->wwwroot}</p>
HTML;
require_once(__DIR__ . '/lib/setup.php');
`,
    );
  });

  afterAll(async () => {
    await conn?.query('DROP USER IF EXISTS ?@?', [user, '%']);
    await conn?.end();
  });

  it('names every problem of every file and registers nothing, in lint and for real', async () => {
    const unreadable = sample(
      'unreadable',
      `<?php
$CFG->dbtype = 'mariadb';
$CFG->dbhost = 'localhost';
$CFG->dbname = getenv('MOODLE_DB');
$CFG->dbuser = 'moodle';
$CFG->prefix = 'mdl_';
$CFG->wwwroot = 'https://env.campus.example.org';
`,
    );
    const master = sample(
      'master',
      `<?php
$CFG->dbtype = 'mariadb'; $CFG->dbhost = 'localhost'; $CFG->dbname = 'm'; $CFG->dbuser = 'u'; $CFG->dbpass = '';
$CFG->prefix = 'mdl_'; $CFG->wwwroot = 'https://master.example.org'; $CFG->dataroot = '/var/moodledata/master';
`,
    );
    const wrongLogin = sample(
      'wrong',
      `<?php
$CFG->dbtype = 'mariadb'; $CFG->dbhost = '${server().host}'; $CFG->dbname = '${database}'; $CFG->dbuser = '${user}'; $CFG->dbpass = 'not-it';
$CFG->prefix = 'i9_'; $CFG->dboptions = ['dbport' => ${server().port}]; $CFG->wwwroot = 'https://wrong.campus.example.org'; $CFG->dataroot = '/var/moodledata/wrong';
`,
    );
    const broken = sample('broken', '<?php $CFG->wwwroot = ;');
    for (const flags of [['--lint'], []]) {
      const result = await cli(
        'instances',
        'register',
        law,
        unreadable,
        master,
        wrongLogin,
        broken,
        join(dir, 'missing.php'),
        ...flags,
      );
      expect(result.code).toBe(2);
      const message = (result.json.problems as Array<{ file: string; message: string }>)
        .map((p) => `${p.file}: ${p.message}`)
        .join('\n');
      expect(result.json.problems).toHaveLength(6);
      expect(message).toContain(
        `${unreadable}: $CFG->dbname (line 4) is not a value that can be read without running PHP`,
      );
      expect(message).toContain(`${unreadable}: $CFG->dataroot is not set at the top level of the file`);
      expect(message).toContain(`${master}: https://master.example.org is the master: it has no registry row`);
      expect(message).toMatch(
        new RegExp(`${wrongLogin}: its database cannot be read with the file's login: .*Access denied`),
      );
      expect(message).toContain(`${broken}: not PHP that can be read`);
      expect(message).toContain(`${join(dir, 'missing.php')}: cannot be read (ENOENT)`);
      expect(message).not.toContain(law);
      expect(message).not.toContain('not-it');
    }
    expect(await rows()).toEqual([]);
  });

  it('reads the three files into the rows their settings say, the passwords kept only in the registry', async () => {
    const lint = await cli('instances', 'register', law, arts, notes, '--lint');
    expect(lint.json.problems).toBeUndefined();
    expect(lint.code).toBe(0);
    expect(
      lint.json.instances.map((i: { shortname: string; vmoodleBoot: boolean }) => [i.shortname, i.vmoodleBoot]),
    ).toEqual([
      ['law', false],
      ['arts', true],
      ['campus_notes', false],
    ]);
    expect(lint.stdout).not.toContain(HEREDOC_PASSWORD);
    expect(await rows()).toEqual([]);

    const result = await cli('instances', 'register', law, arts, notes);
    expect(result.code).toBe(0);
    expect(result.stdout).not.toContain(HEREDOC_PASSWORD);
    const { host, port, user: root, password } = server();
    expect(await rows()).toEqual([
      {
        name: 'Faculty of Law',
        shortname: 'law',
        vhostname: 'https://law.campus.example.org',
        vdbtype: 'mariadb',
        vdbhost: `${host}:${port}`,
        vdblogin: root,
        vdbpass: password ?? '',
        vdbname: database,
        vdbprefix: 'i1_',
        vdbpersist: 0,
        vdatapath: '/var/moodledata/law',
        mnet: -1,
        enabled: 1,
      },
      {
        name: 'School of Arts',
        shortname: 'arts',
        vhostname: 'https://arts.campus.example.org',
        vdbtype: 'mysqli',
        vdbhost: `${host}:${port}`,
        vdblogin: user,
        vdbpass: HEREDOC_PASSWORD,
        vdbname: database,
        vdbprefix: 'i2_',
        vdbpersist: 1,
        vdatapath: '/var/moodledata/arts',
        mnet: -1,
        enabled: 1,
      },
      {
        name: 'Lecture notes',
        shortname: 'campus_notes',
        vhostname: 'https://campus.example.org/notes',
        vdbtype: 'mariadb',
        vdbhost: `${host}:${port}`,
        vdblogin: root,
        vdbpass: password ?? '',
        vdbname: database,
        vdbprefix: 'i3_',
        vdbpersist: 0,
        vdatapath: '/var/moodledata/notes',
        mnet: -1,
        enabled: 1,
      },
    ]);

    const again = await cli('instances', 'register', law);
    expect(again.code).toBe(2);
    expect(again.json.problems).toEqual([
      { file: law, message: "shortname 'law' is already used by https://law.campus.example.org" },
      { file: law, message: "vhostname 'https://law.campus.example.org' is already registered (instance law)" },
      { file: law, message: `vdbname ${database} with the prefix i1_ holds the tables of enabled instance law` },
      { file: law, message: "vdatapath '/var/moodledata/law' is already the data folder of enabled instance law" },
    ]);
  });

  it('writes a standalone config.php per instance, mode 0640, that reads back as the registry row, and never overwrites one unasked', async () => {
    const out = join(dir, 'standalone');
    const result = await cli('instances', 'generateconfigs', '--out', out);
    expect(result.code).toBe(0);
    expect(result.stdout).not.toContain(HEREDOC_PASSWORD);
    const files = ['config-law.php', 'config-arts.php', 'config-campus_notes.php'];
    expect(readdirSync(out).sort()).toEqual([...files].sort());
    const { host, port, user: root, password } = server();
    for (const name of files) expect(statSync(join(out, name)).mode & 0o777).toBe(0o640);
    const arts = readFileSync(join(out, 'config-arts.php'), 'utf8');
    expect(arts).toContain(`$CFG->dbpass    = 'Ar\\'ts"p{w}9';`);
    expect(arts).not.toContain('vmoodle/vconfig.php');
    expect(readSiteConfig(arts, 'config-arts.php')).toEqual({
      problems: [],
      config: {
        wwwroot: 'https://arts.campus.example.org',
        dataroot: '/var/moodledata/arts',
        dbtype: 'mysqli',
        dbhost: host,
        dbname: database,
        dbuser: user,
        dbpass: HEREDOC_PASSWORD,
        prefix: 'i2_',
        dbport: port,
        dbpersist: true,
        dbsocket: undefined,
        vmoodleBoot: false,
      },
    });
    expect(readSiteConfig(readFileSync(join(out, 'config-law.php'), 'utf8'), 'law').config).toMatchObject({
      wwwroot: 'https://law.campus.example.org',
      dbuser: root,
      dbpass: password ?? '',
      prefix: 'i1_',
      dbpersist: false,
    });

    writeFileSync(join(out, 'config-law.php'), '<?php // edited by hand');
    const again = await cli('instances', 'generateconfigs', '--out', out, 'law', 'arts');
    expect(again.code).toBe(2);
    expect(again.stderr).toContain(
      `${out} already holds config-law.php, config-arts.php: nothing written (--replace overwrites them)`,
    );
    expect(readFileSync(join(out, 'config-law.php'), 'utf8')).toBe('<?php // edited by hand');
    expect((await cli('instances', 'generateconfigs', '--out', out, 'law', '--replace')).code).toBe(0);
    expect(readFileSync(join(out, 'config-law.php'), 'utf8')).toContain(
      "$CFG->wwwroot   = 'https://law.campus.example.org';",
    );
  });
});
