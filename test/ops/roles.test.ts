import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
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
let other: TestDatabase;
let conn: Connection;
const onSite = siteQueries(
  () => conn,
  () => site.name,
);
const onOther = siteQueries(
  () => conn,
  () => other.name,
);

async function json(args: string[]) {
  const result = await runCli(['--json', ...args], fx.env);
  expect(result.stderr).toBe('');
  return JSON.parse(result.stdout);
}

const caps = (q: typeof onSite, role: number) =>
  q.rows<{ capability: string; permission: number }>(
    'SELECT capability, permission FROM {role_capabilities} WHERE roleid = ? AND contextid = 1 ORDER BY capability',
    [role],
  );

/** The log store row of a capability change by the dump's admin (user 2) at the system context, as moodle-facts §3.4 shows it. */
const capabilityEvent = (kind: 'assigned' | 'unassigned', roleid: number, other: string) => ({
  eventname: `\\core\\event\\capability_${kind}`,
  component: 'core',
  action: kind,
  target: 'capability',
  objecttable: 'role_capabilities',
  objectid: roleid,
  crud: 'u',
  edulevel: 0,
  contextid: 1,
  contextlevel: 10,
  contextinstanceid: 0,
  userid: 2,
  courseid: 0,
  relateduserid: null,
  anonymous: 0,
  other,
  timecreated: expect.any(Number),
  origin: 'web',
  ip: null,
  realuserid: null,
});

const byOther = (a: Record<string, unknown>, b: Record<string, unknown>) =>
  String(a.other).localeCompare(String(b.other));

describe.runIf(testServices().moodleDump)("roles: compared and copied as Moodle's accesslib writes them", () => {
  beforeAll(async () => {
    [site, other] = await Promise.all([leaseMoodleDatabase(), leaseMoodleDatabase()]);
    fx = await opsFixture('roles');
    await registerInstances(fx, [
      { shortname: 'site', database: site.name },
      { shortname: 'other', database: other.name },
    ]);
    startWorker(fx);
    conn = await mysql.createConnection({ ...parseMysqlUrl(testServices().mysqlServer), multipleStatements: true });
  });
  afterAll(() => conn.end());

  it('compare between a default site and one with a changed capability reports exactly that capability', async () => {
    await onOther.rows(
      "UPDATE {role_capabilities} SET permission = -1000 WHERE roleid = 3 AND capability = 'moodle/course:changefullname'",
    );
    const { comparison } = await json([
      'run',
      'roles/compare',
      '--hosts',
      'site,other',
      'role=editingteacher',
      '--yes',
    ]);
    expect(comparison.differences).toEqual([
      { item: 'moodle/course:changefullname', majority: 'ALLOW', odd: [{ host: 'other', value: 'PROHIBIT' }] },
    ]);
    expect(Object.keys(comparison.matrix)).toHaveLength(472);
  });

  it('sync is one transaction: a failure part way leaves the role as it was, and logs nothing', async () => {
    await onOther.rows(
      "DELETE FROM {role_capabilities} WHERE roleid = 3 AND capability = 'moodle/course:changesummary'",
    );
    await onOther.rows(
      "INSERT INTO {role_capabilities} (contextid, roleid, capability, permission, timemodified, modifierid) VALUES (1, 3, 'moodle/site:config', 1, 0, 0)",
    );
    const before = await caps(onOther, 3);
    const events = await onOther.lastId('logstore_standard_log');
    await onOther.rows(`CREATE TRIGGER \`${other.name}\`.vmops_fail BEFORE DELETE ON {role_capabilities} FOR EACH ROW
      BEGIN IF OLD.capability = 'moodle/site:config' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'injected failure'; END IF; END`);
    try {
      const result = await json([
        'run',
        'roles/sync',
        '--from',
        'site',
        '--hosts',
        'other',
        'role=editingteacher',
        '--confirm=1',
      ]);
      expect(result.targets[0]).toMatchObject({ status: 'failed' });
      expect(result.targets[0].message).toContain('ER_SIGNAL_EXCEPTION');
      expect(await caps(onOther, 3)).toEqual(before);
      expect(await onOther.eventsSince(events)).toEqual([]);
    } finally {
      await onOther.rows(`DROP TRIGGER \`${other.name}\`.vmops_fail`);
    }
  });

  it("sync makes the role equal to the source's, logs each change as assign_capability logs it, and deletes only that role's roledefs entry", async () => {
    const S = '5f1e2d3c4b5a69788796a5b4c3d2e1f0';
    const dataroot = join(fx.dataDir, 'other');
    mkdirSync(join(dataroot, 'muc'), { recursive: true });
    writeFileSync(join(dataroot, 'muc', 'config.php'), mucConfigPhp(S));
    // moodle-facts §3.3: core/roledefs has simple keys, K-P with P = md5("1/core/roledefs/".S).
    const entry = (role: number) => {
      const k = `${role}-${createHash('md5').update(`1/core/roledefs/${S}`).digest('hex')}`;
      return join(
        dataroot,
        'cache/cachestore_file/default_application/core_roledefs',
        `${k.slice(0, 3)}-cache`,
        `${k}.cache`,
      );
    };
    for (const path of [entry(3), entry(5)]) {
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, 'a:0:{}');
    }
    const events = await onOther.lastId('logstore_standard_log');
    const before = Math.floor(Date.now() / 1000);
    const result = await json([
      'run',
      'roles/sync',
      '--from',
      'site',
      '--hosts',
      'other',
      'role=editingteacher',
      '--confirm=1',
    ]);
    expect(result.targets[0]).toMatchObject({ status: 'applied', message: '2 capabilities set, 1 removed' });
    expect(await caps(onOther, 3)).toEqual(await caps(onSite, 3));
    const changed = await onOther.rows<{ timemodified: number; modifierid: number }>(
      "SELECT timemodified, modifierid FROM {role_capabilities} WHERE roleid = 3 AND capability IN ('moodle/course:changefullname', 'moodle/course:changesummary')",
    );
    for (const row of changed) {
      expect(Number(row.modifierid)).toBe(2);
      expect(Number(row.timemodified)).toBeGreaterThanOrEqual(before);
    }
    expect((await onOther.eventsSince(events)).sort(byOther)).toEqual(
      [
        capabilityEvent(
          'assigned',
          3,
          '{"capability":"moodle\\/course:changefullname","oldpermission":"-1000","permission":1}',
        ),
        capabilityEvent(
          'assigned',
          3,
          '{"capability":"moodle\\/course:changesummary","oldpermission":0,"permission":1}',
        ),
        capabilityEvent('unassigned', 3, '{"capability":"moodle\\/site:config"}'),
      ].sort(byOther),
    );
    expect([existsSync(entry(3)), existsSync(entry(5))]).toEqual([false, true]);
    expect(await onOther.rows('SELECT * FROM {cache_flags}')).toEqual([]);
    const { comparison } = await json([
      'run',
      'roles/compare',
      '--hosts',
      'site,other',
      'role=editingteacher',
      '--yes',
    ]);
    expect(comparison.differences).toEqual([]);
    expect(
      (await json(['run', 'roles/sync', '--from', 'site', '--hosts', 'other', 'role=editingteacher', '--confirm=1']))
        .targets[0],
    ).toMatchObject({ status: 'already_applied' });
  });

  it("creates a role the target lacks as create_role() does: the next sortorder, the source's context levels and capabilities", async () => {
    await onSite.rows(
      "INSERT INTO {role} (name, shortname, description, sortorder, archetype) VALUES ('Marker', 'marker', 'Marks work', 9, 'teacher')",
    );
    const [{ id: marker }] = (await onSite.rows<{ id: number }>(
      "SELECT id FROM {role} WHERE shortname = 'marker'",
    )) as [{ id: number }];
    await onSite.rows(
      "INSERT INTO {role_capabilities} (contextid, roleid, capability, permission, timemodified, modifierid) VALUES (1, ?, 'mod/assign:grade', 1, 0, 0), (1, ?, 'moodle/grade:edit', -1, 0, 0)",
      [marker, marker],
    );
    await onSite.rows('INSERT INTO {role_context_levels} (roleid, contextlevel) VALUES (?, 50), (?, 70)', [
      marker,
      marker,
    ]);
    await onOther.rows("UPDATE {role} SET sortorder = 12 WHERE shortname = 'frontpage'");

    const result = await json([
      'run',
      'roles/sync',
      '--from',
      'site',
      '--hosts',
      'other',
      'role=marker',
      '--confirm=1',
    ]);
    expect(result.targets[0]).toMatchObject({
      status: 'applied',
      message: 'role created; 2 capabilities set, 0 removed',
    });
    const [created] = await onOther.rows<{
      id: number;
      name: string;
      shortname: string;
      description: string;
      sortorder: number;
      archetype: string;
    }>("SELECT * FROM {role} WHERE shortname = 'marker'");
    expect(created).toMatchObject({
      name: 'Marker',
      shortname: 'marker',
      description: 'Marks work',
      sortorder: 13,
      archetype: 'teacher',
    });
    expect(await caps(onOther, Number(created?.id))).toEqual([
      { capability: 'mod/assign:grade', permission: 1 },
      { capability: 'moodle/grade:edit', permission: -1 },
    ]);
    expect(
      await onOther.rows('SELECT contextlevel FROM {role_context_levels} WHERE roleid = ? ORDER BY contextlevel', [
        created?.id,
      ]),
    ).toEqual([{ contextlevel: 50 }, { contextlevel: 70 }]);
  });

  it('capabilitysync follows role_change_permission(): a PROHIBIT stays, a missing row is assigned, one the source does not set is removed', async () => {
    const permission = async (cap: string) =>
      (
        await onOther.rows<{ permission: number }>(
          'SELECT permission FROM {role_capabilities} WHERE roleid = 3 AND contextid = 1 AND capability = ?',
          [cap],
        )
      )[0]?.permission;
    const sync = (cap: string) =>
      json([
        'run',
        'roles/capabilitysync',
        '--from',
        'site',
        '--hosts',
        'other',
        'role=editingteacher',
        `capability=${cap}`,
        '--yes',
      ]);

    await onOther.rows(
      "UPDATE {role_capabilities} SET permission = -1000 WHERE roleid = 3 AND capability = 'moodle/course:changeidnumber'",
    );
    let events = await onOther.lastId('logstore_standard_log');
    expect((await sync('moodle/course:changeidnumber')).targets[0]).toMatchObject({
      status: 'already_applied',
      message: 'left as it is: role_change_permission() never changes a PROHIBIT (the source has ALLOW)',
    });
    expect(await permission('moodle/course:changeidnumber')).toBe(-1000);
    expect(await onOther.eventsSince(events)).toEqual([]);

    await onOther.rows(
      "DELETE FROM {role_capabilities} WHERE roleid = 3 AND capability = 'moodle/course:changeshortname'",
    );
    events = await onOther.lastId('logstore_standard_log');
    expect((await sync('moodle/course:changeshortname')).targets[0]).toMatchObject({
      status: 'applied',
      old: 'INHERIT',
      new: 'ALLOW',
    });
    expect(await permission('moodle/course:changeshortname')).toBe(1);
    expect(await onOther.eventsSince(events)).toEqual([
      capabilityEvent(
        'assigned',
        3,
        '{"capability":"moodle\\/course:changeshortname","oldpermission":0,"permission":1}',
      ),
    ]);

    await onOther.rows(
      "INSERT INTO {role_capabilities} (contextid, roleid, capability, permission, timemodified, modifierid) VALUES (1, 3, 'moodle/site:config', 1, 0, 0)",
    );
    events = await onOther.lastId('logstore_standard_log');
    expect((await sync('moodle/site:config')).targets[0]).toMatchObject({
      status: 'applied',
      old: 'ALLOW',
      new: 'INHERIT',
    });
    expect(await permission('moodle/site:config')).toBeUndefined();
    expect(await onOther.eventsSince(events)).toEqual([
      capabilityEvent('unassigned', 3, '{"capability":"moodle\\/site:config"}'),
    ]);
  });

  it("allowsync rewrites one role's allow rows to the source's, with the allow page's events; allowcompare shows the pairs that differ", async () => {
    await onOther.rows('DELETE FROM {role_allow_assign} WHERE roleid = 3 AND allowassign = 5');
    await onOther.rows('INSERT INTO {role_allow_assign} (roleid, allowassign) VALUES (3, 6)');
    const { comparison } = await json(['run', 'roles/allowcompare', '--hosts', 'site,other', 'table=assign', '--yes']);
    expect(comparison.differences).toEqual([
      { item: 'editingteacher → guest', majority: '(none)', odd: [{ host: 'other', value: 'allowed' }] },
      { item: 'editingteacher → student', majority: 'allowed', odd: [{ host: 'other', value: '(none)' }] },
    ]);

    const events = await onOther.lastId('logstore_standard_log');
    const result = await json([
      'run',
      'roles/allowsync',
      '--from',
      'site',
      '--hosts',
      'other',
      'table=assign',
      'role=editingteacher',
      '--confirm=1',
    ]);
    expect(result.targets[0]).toMatchObject({
      status: 'applied',
      old: 'guest,teacher',
      new: 'student,teacher',
      message: '1 allowed, 1 no longer allowed',
    });
    expect(
      await onOther.rows('SELECT roleid, allowassign FROM {role_allow_assign} WHERE roleid = 3 ORDER BY allowassign'),
    ).toEqual([
      { roleid: 3, allowassign: 4 },
      { roleid: 3, allowassign: 5 },
    ]);
    const allowEvent = (other: string) => ({
      eventname: '\\core\\event\\role_allow_assign_updated',
      component: 'core',
      action: 'updated',
      target: 'role_allow_assign',
      objecttable: 'role_allow_assign',
      objectid: 3,
      crud: 'u',
      edulevel: 0,
      contextid: 1,
      contextlevel: 10,
      contextinstanceid: 0,
      userid: 2,
      courseid: 0,
      relateduserid: null,
      anonymous: 0,
      other,
      timecreated: expect.any(Number),
      origin: 'web',
      ip: null,
      realuserid: null,
    });
    expect(await onOther.eventsSince(events)).toEqual([
      allowEvent('{"targetroleid":5,"allow":true}'),
      allowEvent('{"targetroleid":6,"allow":false}'),
    ]);
  });
});
