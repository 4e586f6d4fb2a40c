import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mysql, { type Connection } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMysqlUrl } from '../../src/core/db/mysql-url.ts';
import { validateInstance } from '../../src/registry/validation.ts';
import { INSTANCE_DEFAULTS } from '../../src/registry/instance.ts';
import { runCli } from '../support/cli.ts';
import { opsFixture, registerInstances, startWorker, thinFleet, type OpsFixture } from '../support/fleet.ts';
import { instance } from '../support/instances.ts';
import { testServices } from '../support/services.ts';

const fields = (extra: object) => ({
  ...INSTANCE_DEFAULTS,
  name: 'Law',
  shortname: 'law',
  vhostname: 'https://law.example.org',
  vdbname: 'moodle_law',
  vdatapath: '/srv/moodledata/law',
  ...extra,
});
const problems = (extra: object, others = [] as ReturnType<typeof instance>[]) =>
  validateInstance(fields(extra), others).map((e) => `${e.field}: ${e.message}`);

describe('registry rules that keep every instance selectable and its folders its own', () => {
  it.each(['law,old', 'law*', 'la?', 'law school', ''])('refuses the short name %j', (shortname) => {
    expect(problems({ shortname }).some((p) => p.startsWith('shortname: '))).toBe(true);
  });

  it.each([
    ['/srv/moodledata/law/../../../etc', "'/srv/moodledata/law/../../../etc' must not contain '..'"],
    ['moodledata/law', "'moodledata/law' must be an absolute path"],
    ['/', "'/' is a system folder"],
    ['/var', "'/var' is a system folder"],
    ['/etc/moodle', "'/etc/moodle' is inside the system folder /etc"],
    ['/proc/1/root', "'/proc/1/root' is inside the system folder /proc"],
  ])('refuses the data folder %s', (vdatapath, message) => {
    expect(problems({ vdatapath })).toContain(`vdatapath: ${message}`);
  });

  it('compares data folders once resolved, so two spellings of one folder clash', () => {
    const other = instance('music', 'https://music.example.org', { vdatapath: '/srv/moodledata/law' });
    expect(problems({ vdatapath: '/srv//moodledata/./law/' }, [other])).toContain(
      "vdatapath: '/srv//moodledata/./law/' is already the data folder of enabled instance music",
    );
  });
});

describe.runIf(testServices().moodleDump)('rows written by other tools that break the rules', () => {
  let fx: OpsFixture;
  let conn: Connection;

  beforeAll(async () => {
    fx = await opsFixture('badrows');
    await thinFleet(fx, 3);
    await registerInstances(fx, [
      { shortname: 'escape', database: 'unused' },
      { shortname: 'comma', database: 'unused' },
      { shortname: 'nodb', database: 'unused' },
      { shortname: 'twin1', database: 'unused' },
      { shortname: 'twin2', database: 'unused' },
    ]);
    const registry = () => fx.app.masterDb(fx.rt.registry.table);
    const outside = join(fx.dataDir, 'outside');
    mkdirSync(join(outside, 'cache'), { recursive: true });
    writeFileSync(join(outside, 'cache', 'keep.txt'), 'not the instance’s');
    await registry()
      .where({ shortname: 'escape' })
      .update({
        vdatapath: `${fx.dataDir}/escape/../outside`,
        vdbname: (await registry().where({ shortname: 't1' }).first()).vdbname,
        vdbprefix: (await registry().where({ shortname: 't1' }).first()).vdbprefix,
      });
    await registry().where({ shortname: 'comma' }).update({ shortname: 'comma,x' });
    await registry().where({ shortname: 'nodb' }).update({ vdbname: '' });
    await registry().where({ shortname: 'twin2' }).update({ shortname: 'twin1' });
    startWorker(fx);
    conn = await mysql.createConnection(parseMysqlUrl(testServices().mysqlServer));
  });
  afterAll(() => conn?.end());

  it('are named and left out of selection, and a run on the whole fleet goes on for the others', async () => {
    const shown = await runCli(['showtargets', '--match', '*'], fx.env);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain('3 targets');
    expect(shown.stdout).toMatch(
      /left out escape \(https:\/\/escape\.campus\.example\.org\): vdatapath: '.*\/escape\/\.\.\/outside' must not contain '\.\.'/,
    );
    expect(shown.stdout).toMatch(
      /left out comma,x \(https:\/\/comma\.campus\.example\.org\): shortname: 'comma,x' must not contain/,
    );
    expect(shown.stdout).toMatch(/left out nodb \(https:\/\/nodb\.campus\.example\.org\): vdbname: is required/);
    expect(shown.stdout).toMatch(
      /left out twin1 \(https:\/\/twin1\.campus\.example\.org\): shortname: 'twin1' is used by 2 rows/,
    );
    expect(shown.stdout).toMatch(
      /left out twin1 \(https:\/\/twin2\.campus\.example\.org\): shortname: 'twin1' is used by 2 rows/,
    );

    const result = await runCli(['--json', 'run', 'generic/purgecaches', '--match', '*', '--yes'], fx.env);
    expect(result.code).toBe(0);
    const json = JSON.parse(result.stdout);
    expect(json.targets.map((t: { shortname: string }) => t.shortname)).toEqual(['t1', 't2', 't3']);
    expect(json.targets.every((t: { status: string }) => t.status === 'applied')).toBe(true);
    expect(existsSync(join(fx.dataDir, 'outside', 'cache', 'keep.txt'))).toBe(true);
  });

  it('refuses to name a left-out row as a target, saying why', async () => {
    const result = await runCli(['showtargets', '--hosts', 'nodb'], fx.env);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      'vmoodle: nodb is left out of selection: vdbname: is required [registry]; fix its registry row with vmoodle instances edit\n',
    );
  });
});
