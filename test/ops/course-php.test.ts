import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql, { type Connection } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMysqlUrl } from '../../src/core/db/mysql-url.ts';
import { FINAL_STATES } from '../../src/ops/executor/run-model.ts';
import { runCli } from '../support/cli.ts';
import { leaseMoodleDatabase, type TestDatabase } from '../support/databases.ts';
import { fakePhp, type FakePhp } from '../support/fake-php.ts';
import { opsFixture, registerInstances, type OpsFixture } from '../support/fleet.ts';
import { ExecutorWorker } from '../../src/ops/executor/worker.ts';
import { siteQueries } from '../support/moodle-log.ts';
import { testServices } from '../support/services.ts';

const WRAPPERS = ['delete_course', 'delete_category', 'empty_category', 'restore_course'];

describe.runIf(testServices().moodleDump)("course work done by Moodle's own code, through the PHP runner", () => {
  let fx: OpsFixture;
  let fake: FakePhp;
  let site: TestDatabase;
  let conn: Connection;
  const q = siteQueries(
    () => conn,
    () => site.name,
  );
  const wrapper = (name: string) => join(fake.codeRoot, 'local', 'vmoodle', 'cli', `${name}.php`);
  const HOST = '--host=https://site.campus.example.org';

  async function run(args: string[]) {
    const result = await runCli(['--json', 'run', ...args, '--hosts', 'site'], fx.env);
    expect(result.stderr).toBe('');
    return JSON.parse(result.stdout);
  }
  const argvSince = (count: number) =>
    fake
      .records()
      .sort((a, b) => a.start - b.start)
      .slice(count)
      .map((r) => r.argv);

  beforeAll(async () => {
    fake = fakePhp({ delayMs: 20, wrappers: WRAPPERS });
    const base = mkdtempSync(join(tmpdir(), 'vmops-coursephp-'));
    const nodes = join(base, 'nodes.yml');
    writeFileSync(
      nodes,
      `web1:\n  code_root: ${fake.codeRoot}\n  dataroots: [${join(base, 'web1')}]\n  php: ${fake.php}\n  max_php: 2\n`,
    );
    site = await leaseMoodleDatabase();
    fx = await opsFixture('coursephp', undefined, { VMOODLE_NODES: nodes });
    mkdirSync(join(base, 'web1', 'site'), { recursive: true });
    await registerInstances(fx, [{ shortname: 'site', database: site.name, dataroot: join(base, 'web1', 'site') }]);
    // Work through Moodle's PHP goes to the queue of the node that holds the instance.
    const worker = new ExecutorWorker(fx.rt, { node: 'web1' });
    afterAll(() => worker.close());
    conn = await mysql.createConnection(parseMysqlUrl(testServices().mysqlServer));
    await q.rows("UPDATE {course_categories} SET idnumber = 'cat1' WHERE id = 1");
    await q.rows(
      "INSERT INTO {course} (category, sortorder, fullname, shortname, idnumber, summary) VALUES (1, 10001, 'Physics 101', 'phy101', 'P-101', ''), (1, 10002, 'Physics 102', 'phy102', 'P-102', '')",
    );
  });
  afterAll(() => conn.end());

  it('deletecourse runs delete_course once per course found, by the field asked (an idnumber is never looked up as a shortname)', async () => {
    const ids = (await q.rows<{ id: number }>("SELECT id FROM {course} WHERE shortname LIKE 'phy1%' ORDER BY id")).map(
      (r) => r.id,
    );
    const before = fake.records().length;
    const byId = await run(['courses/deletecourse', 'field=idnumber', 'value=P-102', '--confirm=1']);
    expect(byId.targets[0]).toMatchObject({ status: 'applied' });
    expect(argvSince(before)).toEqual([[wrapper('delete_course'), HOST, `--courseid=${ids[1]}`]]);

    const byName = await run(['courses/deletecourse', 'field=fullname', 'value=Physics%', '--confirm=1']);
    expect(byName.targets[0]).toMatchObject({ status: 'applied' });
    expect(argvSince(before + 1)).toEqual([
      [wrapper('delete_course'), HOST, `--courseid=${ids[0]}`],
      [wrapper('delete_course'), HOST, `--courseid=${ids[1]}`],
    ]);
    const none = await run(['courses/deletecourse', 'field=shortname', 'value=nosuch', '--confirm=1']);
    expect(none.targets[0]).toMatchObject({
      status: 'already_applied',
      message: 'no course with shortname nosuch here',
    });
    for (const record of fake.records()) expect(Object.keys(record.env).sort()).toEqual(['LANG', 'PATH']);
  });

  it('deletecategory, emptycategory and restorecourse pass the category and course as their wrappers take them', async () => {
    const before = fake.records().length;
    await run(['courses/emptycategory', 'idnumber=cat1', '--confirm=1']);
    await run(['courses/deletecategory', 'idnumber=cat1', '--confirm=1']);
    const restored = await run([
      'courses/restorecourse',
      'location=/srv/backups/physics 2026.mbz',
      'catidnumber=cat1',
      'shortname=phy2026',
      'fullname=Physics, 2026',
      'idnumber=P-2026',
      'visible=0',
      'enroladmins=siteadmins',
      '--yes',
    ]);
    expect(restored.targets[0]).toMatchObject({ status: 'applied' });
    expect(argvSince(before)).toEqual([
      [wrapper('empty_category'), HOST, '--categoryid=1'],
      [wrapper('delete_category'), HOST, '--categoryid=1'],
      [
        wrapper('restore_course'),
        HOST,
        '--file=/srv/backups/physics 2026.mbz',
        '--categoryid=1',
        '--shortname=phy2026',
        '--fullname=Physics, 2026',
        '--visible=0',
        '--idnumber=P-2026',
        '--enroladmins=siteadmins',
      ],
    ]);
    const relative = await runCli(
      [
        'run',
        'courses/restorecourse',
        '--hosts',
        'site',
        'location=../c.mbz',
        'catidnumber=cat1',
        'shortname=x',
        'fullname=X',
        '--yes',
      ],
      fx.env,
    );
    expect(relative.code).toBe(2);
    expect(relative.stderr).toContain(
      'courses/restorecourse: location: an absolute path to a .mbz file, without . or .. parts',
    );
  });

  it('delays each target by delay plus a share of spread, says when in the plan and the start, and a cancel ends the waiting targets at once', async () => {
    const before = fake.records().length;
    const started = await runCli(
      [
        'run',
        'courses/deletecourse',
        '--hosts',
        'site',
        'field=shortname',
        'value=phy101',
        'delay=60',
        'spread=30',
        '--confirm=1',
        '--detach',
      ],
      fx.env,
    );
    const runId = Number(/Run (\d+) started\./.exec(started.stdout)?.[1]);
    expect(started.stdout).toMatch(
      new RegExp(`Run ${runId} started\\. Its targets are scheduled at \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d UTC\\.`),
    );
    const [target] = await fx.rt.store.getTargets(runId);
    expect(target?.preview_note).toMatch(
      /^delete phy101 · through Moodle's PHP on node web1 · runs 1 h( \d+ min)? after the start$/,
    );
    expect(target?.delay_ms).toBeGreaterThanOrEqual(3_600_000);
    expect(target?.delay_ms).toBeLessThanOrEqual(5_400_000);
    const job = await fx.rt.queueOf(target?.node ?? null).getJob(fx.rt.targetJobId(runId, target?.id as number));
    expect(await job?.getState()).toBe('delayed');

    expect((await runCli(['runs', 'cancel', String(runId)], fx.env)).code).toBe(0);
    await fx.rt.progress.follow(
      runId,
      () => undefined,
      (e) => e.type === 'state' && FINAL_STATES.includes(e.state),
    );
    expect((await fx.rt.store.getRun(runId)).state).toBe('cancelled');
    expect((await fx.rt.store.getTargets(runId))[0]).toMatchObject({
      status: 'cancelled',
      message: 'not started: the run was cancelled',
    });
    expect(fake.records().length).toBe(before);
  });
});
