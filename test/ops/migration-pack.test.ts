import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql, { type Connection } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMysqlUrl } from '../../src/core/db/mysql-url.ts';
import { runCli } from '../support/cli.ts';
import { createDatabase, dropDatabase, thinInstances } from '../support/databases.ts';
import { opsFixture, registerInstances, type OpsFixture } from '../support/fleet.ts';
import { testServices } from '../support/services.ts';

/** The pack's rule for the next version's database on the same server: the version word swapped, or added. */
const next = (name: string) => (name.includes('45') ? name.replaceAll('45', '50') : `${name}_50`);

/** Every file under a folder, with its path. */
const filesUnder = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? filesUnder(join(dir, e.name)) : [join(dir, e.name)],
  );

describe.runIf(testServices().moodleDump)('the N→N+1 migration pack', () => {
  let fx: OpsFixture;
  let conn: Connection;
  let database: string;
  let work: string;
  const user = `${testServices().runId}_mig`.slice(0, 16);
  const password = `Mig'r"at3-${Date.now() % 100000}`;
  const cli = async (...args: string[]) => {
    const result = await runCli(
      ['--json', 'migration', 'pack', '--from', '45', '--to', '50', '--new-dirroot', '/var/www/moodle50', ...args],
      fx.env,
    );
    return { ...result, json: result.stdout ? JSON.parse(result.stdout) : undefined };
  };

  beforeAll(async () => {
    fx = await opsFixture('migration');
    database = (await createDatabase('mig45')).name;
    await thinInstances(database, 2, {
      tables: ['config', 'config_plugins', 'course'],
      rowsOf: ['config', 'config_plugins', 'course'],
    });
    conn = await mysql.createConnection(parseMysqlUrl(testServices().mysqlServer));
    await conn.query('DROP USER IF EXISTS ?@?', [user, '%']);
    await conn.query('CREATE USER ?@? IDENTIFIED BY ?', [user, '%', password]);
    await conn.query(`GRANT ALL ON *.* TO ?@?`, [user, '%']);
    work = mkdtempSync(join(tmpdir(), 'vmops-pack-'));
    await registerInstances(fx, [
      { shortname: 'law', database, prefix: 'i1_', dataroot: join(work, 'moodledata45', 'law') },
      { shortname: 'arts', database, prefix: 'i2_', dataroot: join(work, 'moodledata45', 'arts') },
    ]);
    await fx.app.masterDb(fx.rt.registry.table).update({ vdblogin: user, vdbpass: password });
    // A setting that holds law's dataroot, which the copy must point at the new one, and one that merely starts alike.
    await conn.query('INSERT INTO ??.i1_config (name, value) VALUES (?, ?), (?, ?)', [
      database,
      'pathtounzip',
      `${join(work, 'moodledata45', 'law')}/bin/unzip`,
      'pathtozip',
      `${join(work, 'moodledata45', 'lawyers')}/zip`,
    ]);
    writeFileSync(join(work, 'moodledata45', 'law', 'kept.txt'), 'kept');
  });

  afterAll(async () => {
    await dropDatabase(next(database));
    await conn?.query('DROP USER IF EXISTS ?@?', [user, '%']);
    await conn?.end();
  });

  it('refuses bad input with a clear message and writes nothing', async () => {
    const out = join(work, 'refused');
    const same = await runCli(
      ['migration', 'pack', '--from', '45', '--to', '45', '--new-dirroot', '/var/www/moodle50', '--out', out],
      fx.env,
    );
    expect(same.stderr).toContain('--from and --to are the same version');
    const word = await runCli(
      ['migration', 'pack', '--from', '4.5', '--to', '50', '--new-dirroot', '/var/www/moodle50', '--out', out],
      fx.env,
    );
    expect(word.stderr).toContain("--from '4.5': a version word of letters and digits");
    const path = await runCli(
      ['migration', 'pack', '--from', '45', '--to', '50', '--new-dirroot', "/var/www/moodle'50", '--out', out],
      fx.env,
    );
    expect(path.stderr).toContain("--new-dirroot '/var/www/moodle'50': the pack takes absolute paths");
    const noOut = await runCli(
      ['migration', 'pack', '--from', '45', '--to', '50', '--new-dirroot', '/var/www/moodle50'],
      fx.env,
    );
    expect(noOut.stderr).toContain('--out is needed to write the pack (or --dry-run to see it)');
    for (const r of [same, word, path, noOut]) expect(r.code).toBe(2);
    expect(existsSync(out)).toBe(false);
  });

  it('prints in a dry run what each script of each site will do, and writes nothing', async () => {
    const result = await cli('--dry-run', '--no-master', 'law');
    expect(result.code).toBe(0);
    const [law] = result.json.sites;
    expect(law.env).toMatchObject({
      OLD_DB: database,
      NEW_DB: next(database),
      PREFIX: 'i1_',
      OLD_DATAROOT: join(work, 'moodledata45', 'law'),
      NEW_DATAROOT: join(work, 'moodledata50', 'law'),
    });
    expect(law.steps.map((s: { file: string }) => s.file)).toEqual([
      'step1-backup-databases.sh',
      'step2-create-new-databases.sh',
      'step3-copy-transform-database.sh',
      'step4-sync-dataroot.sh',
      'step5-adjust-config.sh',
      'step6-upgrade.sh',
      'step7-post-upgrade.sh',
    ]);
    expect(law.steps[4].summary).toBe(
      `point https://law.campus.example.org's row in ${next(fx.master.name)}.mdl_local_vmoodle at ${law.env.NEW_DBHOST}, ${next(database)} and ${join(work, 'moodledata50', 'law')}`,
    );
    expect(result.json.written).toEqual([]);
    expect(result.stdout).not.toContain(password);
  });

  it('writes scripts for the master and two instances that pass bash -n, hold no password, and whose DRY_RUN prints the commands', async () => {
    const out = join(work, 'pack');
    const result = await cli('--out', out);
    expect(result.code).toBe(0);
    const files = filesUnder(out);
    const scripts = files.filter((f) => f.endsWith('.sh'));
    expect(scripts.length).toBe(1 + 3 * 8);
    for (const script of scripts) execFileSync('bash', ['-n', script]);
    for (const file of files) expect(readFileSync(file, 'utf8')).not.toContain(password);
    expect(statSync(join(out, 'law', 'step1-backup-databases.sh')).mode & 0o777).toBe(0o750);
    const checklist = readFileSync(join(out, 'CHECKLIST.md'), 'utf8');
    expect(checklist).toContain(
      `\`law-old.cnf\`: \`[client]\` host, port ${parseMysqlUrl(testServices().mysqlServer).host}`,
    );
    expect(checklist).toContain('Switch the DNS of every wwwroot to the new machine');
    expect(checklist).toContain('Make the new machine');

    const dry = spawnSync('bash', [join(out, 'law', 'step1-backup-databases.sh')], {
      env: { ...process.env, DRY_RUN: '1' },
      encoding: 'utf8',
    });
    expect(dry.status).toBe(0);
    expect(dry.stdout).toContain(
      `+ mysqldump --defaults-extra-file=${join(out, 'credentials', 'law-old.cnf')} --single-transaction --quick --hex-blob ${database} <its tables starting i1_>`,
    );
    expect(dry.stdout).toContain('(the option file');
    expect(existsSync('/var/backups/vmoodle-migration')).toBe(false);
    const config = spawnSync('bash', [join(out, 'law', 'step5-adjust-config.sh')], {
      env: { ...process.env, DRY_RUN: '1' },
      encoding: 'utf8',
    });
    expect(config.stdout).toContain(`vhostname = 'https://law.campus.example.org'`);
    const missing = spawnSync('bash', [join(out, 'law', 'step1-backup-databases.sh')], { encoding: 'utf8' });
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain(`law: the option file ${join(out, 'credentials', 'law-old.cnf')} is missing`);
  });

  it('with the logins written as option files, steps 1 to 4 back up, copy and sync law for real', async () => {
    const out = join(work, 'real');
    const backups = join(work, 'backups');
    const result = await cli('--out', out, '--with-credentials', '--no-master', '--backup-dir', backups, 'law');
    expect(result.code).toBe(0);
    const option = join(out, 'credentials', 'law-old.cnf');
    expect(statSync(option).mode & 0o777).toBe(0o600);
    expect(statSync(join(out, 'credentials')).mode & 0o777).toBe(0o700);
    expect(readFileSync(option, 'utf8')).toContain(`password="Mig'r\\"at3-`);
    for (const file of filesUnder(out).filter((f) => !f.endsWith('.cnf')))
      expect(readFileSync(file, 'utf8')).not.toContain(password);

    for (const step of [
      'step1-backup-databases.sh',
      'step2-create-new-databases.sh',
      'step3-copy-transform-database.sh',
      'step4-sync-dataroot.sh',
    ]) {
      const ran = spawnSync('bash', [join(out, 'law', step)], { encoding: 'utf8' });
      expect(ran.stderr, step).toBe('');
      expect(ran.status, step).toBe(0);
    }
    const [dump] = readdirSync(backups);
    expect(dump).toMatch(new RegExp(`^${database}-i1_\\d{8}-\\d{6}\\.sql\\.gz$`));
    expect(statSync(join(backups, dump as string)).mode & 0o777).toBe(0o600);
    const [tables] = await conn.query(
      'SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY 1',
      [next(database)],
    );
    expect((tables as Array<{ t: string }>).map((r) => r.t)).toEqual(['i1_config', 'i1_config_plugins', 'i1_course']);
    const [paths] = await conn.query('SELECT name, value FROM ??.i1_config WHERE name IN (?, ?) ORDER BY name', [
      next(database),
      'pathtounzip',
      'pathtozip',
    ]);
    expect(paths).toEqual([
      { name: 'pathtounzip', value: `${join(work, 'moodledata50', 'law')}/bin/unzip` },
      { name: 'pathtozip', value: `${join(work, 'moodledata45', 'lawyers')}/zip` },
    ]);
    expect(readFileSync(join(work, 'moodledata50', 'law', 'kept.txt'), 'utf8')).toBe('kept');
    expect(existsSync(join(work, 'moodledata50', 'law', 'cache'))).toBe(false);

    // The dataroot sync deletes what the live site deleted.
    mkdirSync(join(work, 'moodledata45', 'law', 'filedir'), { recursive: true });
    writeFileSync(join(work, 'moodledata50', 'law', 'stale.txt'), 'gone on the live site');
    expect(spawnSync('bash', [join(out, 'law', 'step4-sync-dataroot.sh')]).status).toBe(0);
    expect(existsSync(join(work, 'moodledata50', 'law', 'stale.txt'))).toBe(false);
    const again = spawnSync('bash', [join(out, 'law', 'step2-create-new-databases.sh')], { encoding: 'utf8' });
    expect(again.status).toBe(1);
    expect(again.stderr).toContain(`law: ${next(database)} already holds 3 tables starting i1_`);
  });

  it("points the master's config.php in the new code tree at its new database and dataroot, and says when a line cannot be changed", async () => {
    const dirroot = join(work, 'moodle50');
    mkdirSync(dirroot, { recursive: true });
    const out = join(work, 'master-pack');
    expect((await cli('--out', out, '--new-dirroot', dirroot, '--new-dataroot-root', join(work, 'data50'))).code).toBe(
      0,
    );
    const { host } = parseMysqlUrl(testServices().mysqlServer);
    const config = (dbname: string) => `<?php  // Moodle configuration file
unset($CFG);
global $CFG;
$CFG = new stdClass();
$CFG->dbtype    = 'mariadb';
$CFG->dbhost    = 'db45.example.org';
$CFG->dbname    = ${dbname};
$CFG->prefix    = 'mdl_';
$CFG->wwwroot   = 'https://master.example.org';
$CFG->dataroot  = '/srv/moodledata45/master';
include $CFG->dirroot.'/local/vmoodle/vconfig.php';
require_once(__DIR__ . '/lib/setup.php');
`;
    writeFileSync(join(dirroot, 'config.php'), config("'moodle45'"));
    const step = join(out, 'master', 'step5-adjust-config.sh');
    const ran = spawnSync('bash', [step], { encoding: 'utf8' });
    expect(ran.stderr).toBe('');
    expect(ran.status).toBe(0);
    expect(readFileSync(join(dirroot, 'config.php'), 'utf8')).toBe(
      config(`'${next(fx.master.name)}'`)
        .replace("'db45.example.org'", `'${host}'`)
        .replace("'/srv/moodledata45/master'", `'${join(work, 'data50', 'master')}'`),
    );
    writeFileSync(join(dirroot, 'config.php'), config("getenv('DB')"));
    const refused = spawnSync('bash', [step], { encoding: 'utf8' });
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain(
      `master: ${join(dirroot, 'config.php')}: $CFG->dbname is not a plain quoted assignment, so it was not changed: set it to '${next(fx.master.name)}' by hand`,
    );
  });
});
