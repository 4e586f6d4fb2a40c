import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import mysql, { type Connection } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMysqlUrl } from '../../src/core/db/mysql-url.ts';
import { runCli } from '../support/cli.ts';
import { leaseMoodleDatabase, type TestDatabase } from '../support/databases.ts';
import { opsFixture, registerInstances, startWorker, type OpsFixture } from '../support/fleet.ts';
import { siteQueries } from '../support/moodle-log.ts';
import { mucConfigPhp } from '../support/muc.ts';
import { testServices } from '../support/services.ts';

let fx: OpsFixture;
let site: TestDatabase;
let conn: Connection;
const q = siteQueries(
  () => conn,
  () => site.name,
);

async function run(...args: string[]) {
  const result = await runCli(['--json', 'run', ...args, '--hosts', 'site', '--yes'], fx.env);
  expect(result.stderr).toBe('');
  return JSON.parse(result.stdout).targets[0];
}

const CATEGORY_COLUMNS =
  'id, name, idnumber, description, descriptionformat, parent, sortorder, coursecount, visible, visibleold, timemodified, depth, path, theme';
const categories = () =>
  q.rows<Record<string, unknown>>(`SELECT ${CATEGORY_COLUMNS} FROM {course_categories} ORDER BY id`);
const contexts = () =>
  q.rows<Record<string, unknown>>(
    'SELECT id, contextlevel, instanceid, path, depth, locked FROM {context} WHERE contextlevel = 40 ORDER BY id',
  );
/** A course_categories row as moodle-facts §3.5 lists it: id,name,idnumber,description,descriptionformat,parent,sortorder,coursecount,visible,visibleold,timemodified,depth,path,theme. */
const category = (...v: unknown[]) => Object.fromEntries(CATEGORY_COLUMNS.split(', ').map((c, i) => [c, v[i]]));
const context = (...v: unknown[]) =>
  Object.fromEntries(['id', 'contextlevel', 'instanceid', 'path', 'depth', 'locked'].map((c, i) => [c, v[i]]));

/** The log store row of a category or course event by the dump's admin, as Moodle's event classes make them. */
const courseEvent = (
  name: string,
  crud: string,
  objecttable: string,
  objectid: number,
  ctx: [number, number, number],
  other: string,
  edulevel = 0,
  courseid = 0,
) => {
  const parts = name.split('_');
  const action = parts.pop();
  return {
    eventname: `\\core\\event\\${name}`,
    component: 'core',
    action,
    target: parts.join('_'),
    objecttable,
    objectid,
    crud,
    edulevel,
    contextid: ctx[0],
    contextlevel: ctx[1],
    contextinstanceid: ctx[2],
    userid: 2,
    courseid,
    relateduserid: null,
    anonymous: 0,
    other,
    timecreated: expect.any(Number),
    origin: 'web',
    ip: null,
    realuserid: null,
  };
};

describe.runIf(testServices().moodleDump)(
  'courses and categories, as core_course_category and course_change_visibility write them',
  () => {
    let now: number;

    beforeAll(async () => {
      site = await leaseMoodleDatabase();
      fx = await opsFixture('courses');
      await registerInstances(fx, [{ shortname: 'site', database: site.name }]);
      startWorker(fx);
      conn = await mysql.createConnection(parseMysqlUrl(testServices().mysqlServer));
      now = Math.floor(Date.now() / 1000);
    });
    afterAll(() => conn.end());

    it('createcategory builds the rows moodle-facts §3.5 shows, one level and then a nested one, with sortorder renumbered depth-first', async () => {
      expect(await categories()).toEqual([
        category(1, 'Category 1', null, null, 1, 0, 10000, 0, 1, 1, expect.any(Number), 1, '/1', null),
      ]);
      expect(await q.rows('SELECT sortorder FROM {course} WHERE id = 1')).toEqual([{ sortorder: 0 }]);
      const events = await q.lastId('logstore_standard_log');

      expect(await run('courses/createcategory', 'path=A', 'idnumber=x')).toMatchObject({
        status: 'applied',
        message: 'created A (id 2)',
      });
      expect(await run('courses/createcategory', 'path=A/B')).toMatchObject({
        status: 'applied',
        message: 'created B (id 3)',
      });
      const [, a, b] = await categories();
      expect(a).toEqual(category(2, 'A', 'x', '', 0, 0, 20000, 0, 1, 1, expect.any(Number), 1, '/2', null));
      expect(b).toEqual(category(3, 'B', null, '', 0, 2, 30000, 0, 1, 1, expect.any(Number), 2, '/2/3', null));
      expect(Number(a?.timemodified)).toBeGreaterThanOrEqual(now);
      expect((await contexts()).slice(1)).toEqual([
        context(11, 40, 2, '/1/11', 2, 0),
        context(12, 40, 3, '/1/11/12', 3, 0),
      ]);
      // The first create also set the site course's sortorder from 0 to 1.
      expect(await q.rows('SELECT sortorder FROM {course} WHERE id = 1')).toEqual([{ sortorder: 1 }]);
      expect(await q.eventsSince(events)).toEqual([
        courseEvent('course_category_created', 'c', 'course_categories', 2, [11, 40, 2], 'null'),
        courseEvent('course_category_created', 'c', 'course_categories', 3, [12, 40, 3], 'null'),
      ]);

      // Two missing levels at once; the tree is numbered depth-first: Category 1, A, B, then the new branch.
      expect(await run('courses/createcategory', 'path=Faculty/Physics', 'idnumber=phys', 'visible=0')).toMatchObject({
        status: 'applied',
        message: 'created Faculty (id 4), Physics (id 5)',
      });
      expect(
        (await categories()).map((c) => [
          c.name,
          c.idnumber,
          c.parent,
          c.sortorder,
          c.visible,
          c.visibleold,
          c.depth,
          c.path,
        ]),
      ).toEqual([
        ['Category 1', null, 0, 10000, 1, 1, 1, '/1'],
        ['A', 'x', 0, 20000, 1, 1, 1, '/2'],
        ['B', null, 2, 30000, 1, 1, 2, '/2/3'],
        ['Faculty', null, 0, 40000, 1, 1, 1, '/4'],
        ['Physics', 'phys', 4, 50000, 0, 0, 2, '/4/5'],
      ]);
      expect((await contexts()).slice(3)).toEqual([
        context(13, 40, 4, '/1/13', 2, 0),
        context(14, 40, 5, '/1/13/14', 3, 0),
      ]);
      expect(await run('courses/createcategory', 'path=Faculty/Physics', 'idnumber=phys')).toMatchObject({
        status: 'already_applied',
      });
      expect(await run('courses/createcategory', 'path=Other', 'idnumber=phys')).toMatchObject({
        status: 'conflict',
        message: 'the idnumber "phys" is taken by category "Physics" (id 5); nothing written',
      });
    });

    it('hides and shows a category as hide() and show() do: subcategories and courses through visibleold, course_category_updated logged, the category caches purged', async () => {
      const S = '9a8b7c6d5e4f30211203f4e5d6c7b8a9';
      const dataroot = join(fx.dataDir, 'site');
      mkdirSync(join(dataroot, 'muc'), { recursive: true });
      writeFileSync(join(dataroot, 'muc', 'config.php'), mucConfigPhp(S));
      const tree = join(dataroot, 'cache/cachestore_file/default_application/core_coursecattree/ab-cache/ab.cache');
      mkdirSync(dirname(tree), { recursive: true });
      writeFileSync(tree, 'a:0:{}');
      await q.rows(
        "INSERT INTO {course} (category, sortorder, fullname, shortname, summary, visible, visibleold) VALUES (3, 30001, 'In B', 'inb', '', 1, 1), (3, 30002, 'Hidden in B', 'hiddeninb', '', 0, 0)",
      );
      const visibility = async () => ({
        cats: (
          await q.rows<{ id: number; visible: number; visibleold: number }>(
            'SELECT id, visible, visibleold FROM {course_categories} WHERE id IN (2, 3) ORDER BY id',
          )
        ).map((c) => [c.id, c.visible, c.visibleold]),
        courses: (
          await q.rows<{ shortname: string; visible: number; visibleold: number }>(
            'SELECT shortname, visible, visibleold FROM {course} WHERE category = 3 ORDER BY shortname',
          )
        ).map((c) => [c.shortname, c.visible, c.visibleold]),
      });
      const events = await q.lastId('logstore_standard_log');

      expect(await run('courses/categoryvisibility', 'idnumber=x', 'visible=0')).toMatchObject({
        status: 'applied',
        old: 'visible',
        new: 'hidden',
      });
      expect(await visibility()).toEqual({
        cats: [
          [2, 0, 0],
          [3, 0, 1],
        ],
        courses: [
          ['hiddeninb', 0, 0],
          ['inb', 0, 1],
        ],
      });
      expect(existsSync(tree)).toBe(false);
      // purge_by_event() recorded the event for sessions: sha1(P-K) with P = md5("1/core/eventinvalidation/".S), its token serialize()d.
      const k = createHash('sha1')
        .update(`${createHash('md5').update(`1/core/eventinvalidation/${S}`).digest('hex')}-changesincoursecat`)
        .digest('hex');
      const invalidation = join(
        dataroot,
        'cache/cachestore_file/default_application/core_eventinvalidation',
        `${k.slice(0, 3)}-cache`,
        `${k}.cache`,
      );
      expect(readFileSync(invalidation, 'utf8')).toMatch(
        /^a:1:\{s:6:"purged";s:\d+:"\d{10}(\.\d{1,4})?-[0-9a-f]{13}\d\.\d{8}";\}$/,
      );
      const [, length, token] = /s:(\d+):"([^"]+)"/.exec(readFileSync(invalidation, 'utf8')) as RegExpExecArray;
      expect(Number(length)).toBe(token?.length);

      expect(await run('courses/categoryvisibility', 'idnumber=x', 'visible=1')).toMatchObject({
        status: 'applied',
        old: 'hidden',
        new: 'visible',
      });
      expect(await visibility()).toEqual({
        cats: [
          [2, 1, 1],
          [3, 1, 1],
        ],
        courses: [
          ['hiddeninb', 0, 0],
          ['inb', 1, 1],
        ],
      });
      expect(await run('courses/categoryvisibility', 'idnumber=x', 'visible=1')).toMatchObject({
        status: 'already_applied',
      });
      expect(await q.eventsSince(events)).toEqual([
        courseEvent('course_category_updated', 'u', 'course_categories', 2, [11, 40, 2], 'null'),
        courseEvent('course_category_updated', 'u', 'course_categories', 2, [11, 40, 2], 'null'),
      ]);
    });

    it('hides a course as course_change_visibility() does: visible and visibleold, cacherev, course_updated with the changed fields', async () => {
      await q.rows(
        "INSERT INTO {course} (category, sortorder, fullname, shortname, idnumber, summary, visible, visibleold, cacherev) VALUES (1, 10001, 'Course One', 'c1', 'C-1', '', 1, 1, 0)",
      );
      const [{ id }] = (await q.rows<{ id: number }>("SELECT id FROM {course} WHERE shortname = 'c1'")) as [
        { id: number },
      ];
      await q.rows("INSERT INTO {context} (contextlevel, instanceid, path, depth, locked) VALUES (50, ?, '', 3, 0)", [
        id,
      ]);
      const [{ id: ctx }] = (await q.rows<{ id: number }>(
        'SELECT id FROM {context} WHERE contextlevel = 50 AND instanceid = ?',
        [id],
      )) as [{ id: number }];
      const events = await q.lastId('logstore_standard_log');
      const before = Math.floor(Date.now() / 1000);

      expect(await run('courses/visibility', 'field=idnumber', 'value=C-1', 'visible=0')).toMatchObject({
        status: 'applied',
        old: 'visible',
        new: 'hidden',
      });
      const [row] = await q.rows<{ visible: number; visibleold: number; timemodified: number; cacherev: number }>(
        'SELECT visible, visibleold, timemodified, cacherev FROM {course} WHERE id = ?',
        [id],
      );
      expect(row).toMatchObject({ visible: 0, visibleold: 0 });
      expect(Number(row?.timemodified)).toBeGreaterThanOrEqual(before);
      expect(Number(row?.cacherev)).toBe(Number(row?.timemodified));
      expect(await q.eventsSince(events)).toEqual([
        courseEvent(
          'course_updated',
          'u',
          'course',
          id,
          [ctx, 50, id],
          '{"shortname":"c1","fullname":"Course One","updatedfields":{"visible":"0","visibleold":"0"}}',
          1,
          id,
        ),
      ]);
      expect(await run('courses/visibility', 'field=shortname', 'value=c1', 'visible=0')).toMatchObject({
        status: 'already_applied',
      });

      const found = await run('courses/checkcourse', 'field=fullname', 'value=Course%');
      expect(found).toMatchObject({ status: 'applied', value: '[c1] Course One (C-1)', message: '1 course' });
      const missing = await run('courses/visibility', 'field=shortname', 'value=nosuch', 'visible=1');
      expect(missing).toMatchObject({ status: 'failed', message: 'no course with shortname nosuch on site' });
    });
  },
);
