import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Connection } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPlan } from '../../src/ops/executor/planner.ts';
import { startRun } from '../../src/ops/executor/run-actions.ts';
import { FINAL_STATES, type TargetRow } from '../../src/ops/executor/run-model.ts';
import { ExecutorWorker } from '../../src/ops/executor/worker.ts';
import { createDatabase, leaseMoodleDatabase, serverConnection, thinInstances } from '../support/databases.ts';
import { fakePhp } from '../support/fake-php.ts';
import { opsFixture, registerInstances, type OpsFixture } from '../support/fleet.ts';
import { testServices } from '../support/services.ts';

const sha1 = (data: Buffer | string) => createHash('sha1').update(data).digest('hex');
const EMPTY = sha1('');

/** A files row as Moodle's file API keys it (file_storage::get_pathname_hash). */
const pathnamehash = (f: {
  contextid: number;
  component: string;
  filearea: string;
  itemid: number;
  filepath: string;
  filename: string;
}) => sha1(`/${f.contextid}/${f.component}/${f.filearea}/${f.itemid}${f.filepath}${f.filename}`);

interface Site {
  db: string;
  prefix: string;
  dataroot: string;
}

interface StoredFile {
  contextid: number;
  component: string;
  filearea: string;
  itemid: number;
  filepath: string;
  filename: string;
  contenthash: string;
  filesize: number;
  mimetype: string | null;
  userid: number | null;
}

describe.runIf(testServices().moodleDump)('file copies between nodes', () => {
  let fx: OpsFixture;
  let conn: Connection;
  let base: string;
  const sites: Record<string, Site> = {};
  const workers: ExecutorWorker[] = [];
  const table = (site: Site, name: string) => `\`${site.db}\`.\`${site.prefix}${name}\``;

  /** Stores a file on a site as create_file_from_string() does: the content in the pool, its row, the folder rows of its path. */
  const storeFile = async (
    site: Site,
    f: {
      contextid: number;
      component: string;
      filearea: string;
      itemid?: number;
      filepath: string;
      filename: string;
      content: Buffer | string;
      hash?: string;
    },
  ) => {
    const content = Buffer.from(f.content);
    const hash = f.hash ?? sha1(content);
    const pool = join(site.dataroot, 'filedir', hash.slice(0, 2), hash.slice(2, 4));
    mkdirSync(pool, { recursive: true });
    writeFileSync(join(pool, hash), content);
    const row = { ...f, itemid: f.itemid ?? 0 };
    const [result] = await conn.query(
      `INSERT INTO ${table(site, 'files')} (contenthash, pathnamehash, contextid, component, filearea, itemid, filepath, filename, userid, filesize, mimetype, status, timecreated, timemodified, sortorder)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, 2, ?, 'application/octet-stream', 0, 1795415096, 1795415096, 0)`,
      [
        hash,
        pathnamehash(row),
        row.contextid,
        row.component,
        row.filearea,
        row.itemid,
        row.filepath,
        row.filename,
        content.length,
      ],
    );
    const parts = row.filepath.split('/').filter(Boolean);
    for (let i = parts.length; i >= 0; i--) {
      const filepath = i === 0 ? '/' : `/${parts.slice(0, i).join('/')}/`;
      await conn.query(
        `INSERT IGNORE INTO ${table(site, 'files')} (contenthash, pathnamehash, contextid, component, filearea, itemid, filepath, filename, userid, filesize, status, timecreated, timemodified, sortorder)
         VALUES (?, ?, ?, ?, ?, ?, ?, '.', 2, 0, 0, 1795415096, 1795415096, 0)`,
        [
          EMPTY,
          pathnamehash({ ...row, filepath, filename: '.' }),
          row.contextid,
          row.component,
          row.filearea,
          row.itemid,
          filepath,
        ],
      );
    }
    return (result as { insertId: number }).insertId;
  };

  const addCourse = async (site: Site, idnumber: string): Promise<{ course: number; context: number }> => {
    const [course] = await conn.query(
      `INSERT INTO ${table(site, 'course')} (category, sortorder, fullname, shortname, idnumber) VALUES (1, 10000 + FLOOR(RAND() * 1000), ?, ?, ?)`,
      [`Course ${idnumber}`, idnumber.toLowerCase(), idnumber],
    );
    const id = (course as { insertId: number }).insertId;
    const [ctx] = await conn.query(
      `INSERT INTO ${table(site, 'context')} (contextlevel, instanceid, path, depth, locked) VALUES (50, ?, '', 3, 0)`,
      [id],
    );
    return { course: id, context: (ctx as { insertId: number }).insertId };
  };

  const addActivity = async (site: Site, course: number, idnumber: string): Promise<number> => {
    const [cm] = await conn.query(
      `INSERT INTO ${table(site, 'course_modules')} (course, module, instance, section, idnumber, added) SELECT ?, id, 1, 0, ?, 0 FROM ${table(site, 'modules')} WHERE name = 'resource'`,
      [course, idnumber],
    );
    const [ctx] = await conn.query(
      `INSERT INTO ${table(site, 'context')} (contextlevel, instanceid, path, depth, locked) VALUES (70, ?, '', 4, 0)`,
      [(cm as { insertId: number }).insertId],
    );
    return (ctx as { insertId: number }).insertId;
  };

  const filesOf = async (site: Site, component: string, filearea: string): Promise<StoredFile[]> => {
    const [rows] = await conn.query(
      `SELECT contextid, component, filearea, itemid, filepath, filename, contenthash, pathnamehash, filesize, mimetype, userid FROM ${table(site, 'files')}
       WHERE component = ? AND filearea = ? ORDER BY contextid, filepath, filename`,
      [component, filearea],
    );
    return (rows as Array<StoredFile & { pathnamehash: string }>).map((r) => {
      expect(r.pathnamehash).toBe(pathnamehash(r));
      const { pathnamehash: _, ...rest } = r;
      return {
        ...rest,
        contextid: Number(r.contextid),
        itemid: Number(r.itemid),
        filesize: Number(r.filesize),
        userid: r.userid === null ? null : Number(r.userid),
      };
    });
  };

  const pooled = (site: Site, hash: string) => {
    const path = join(site.dataroot, 'filedir', hash.slice(0, 2), hash.slice(2, 4), hash);
    return existsSync(path) ? sha1(readFileSync(path)) : undefined;
  };

  const run = async (command: string, params: Record<string, string>, tohosts: string[]) => {
    const planned = await createPlan(fx.rt, {
      command,
      params,
      selector: { tohosts },
      requestedBy: 'alice',
      via: 'cli',
    });
    await startRun(fx.rt, planned.run.id, 'alice', planned.run.plan_hash);
    await fx.rt.progress.follow(
      planned.run.id,
      () => undefined,
      (e) => e.type === 'state' && FINAL_STATES.includes(e.state),
    );
    const targets = await fx.rt.store.getTargets(planned.run.id);
    return {
      run: await fx.rt.store.getRun(planned.run.id),
      by: Object.fromEntries(targets.map((t) => [t.shortname, t])) as Record<string, TargetRow>,
      planned,
    };
  };

  const transferKeys = () => fx.rt.redis.keys(`${fx.rt.keys.prefix}:x:transfer:*`);
  let course: Record<string, { course: number; context: number }>;
  let activity: Record<string, number>;
  const logo = randomBytes(2_500_000);

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'vmops-files-'));
    const php = fakePhp();
    const node = (name: string, transfer: boolean) =>
      `${name}:\n  code_root: ${php.codeRoot}\n  dataroots: [${join(base, name)}]\n  php: ${php.php}\n${transfer ? `  transfer_dir: ${join(base, 'transfer')}\n` : ''}`;
    writeFileSync(join(base, 'nodes.yml'), node('web1', true) + node('web2', true) + node('web3', false));
    const master = await leaseMoodleDatabase();
    fx = await opsFixture('files', master, {
      VMOODLE_NODES: join(base, 'nodes.yml'),
      VMOODLE_MASTER_DATAROOT: join(base, 'web1', 'master'),
    });
    conn = await serverConnection();
    afterAll(() => conn.end());
    sites.master = { db: master.name, prefix: 'mdl_', dataroot: join(base, 'web1', 'master') };
    const db = await createDatabase('files');
    const tables = ['files', 'context', 'course', 'course_modules', 'modules', 'course_categories', 'config', 'user'];
    const prefixes = await thinInstances(db.name, 3, { tables, rowsOf: tables.filter((t) => t !== 'course_modules') });
    const placement = { a: 'web1', b: 'web2', c: 'web3' } as const;
    await registerInstances(
      fx,
      Object.entries(placement).map(([shortname, n], i) => {
        sites[shortname] = { db: db.name, prefix: prefixes[i] as string, dataroot: join(base, n, shortname) };
        return { shortname, database: db.name, prefix: prefixes[i] as string, dataroot: join(base, n, shortname) };
      }),
    );
    // Course ids differ from site to site: a copy must find the course by its idnumber, never by its id.
    await addCourse(sites.a as Site, 'OTHER');
    course = {
      master: await addCourse(sites.master as Site, 'PHYS101'),
      a: await addCourse(sites.a as Site, 'PHYS101'),
      b: await addCourse(sites.b as Site, 'PHYS101'),
    };
    activity = {
      master: await addActivity(sites.master as Site, course.master?.course as number, 'SYLLABUS'),
      a: await addActivity(sites.a as Site, course.a?.course as number, 'SYLLABUS'),
    };
    await storeFile(sites.master as Site, {
      contextid: 1,
      component: 'core_admin',
      filearea: 'logo',
      filepath: '/',
      filename: 'logo.png',
      content: logo,
    });
    await storeFile(sites.master as Site, {
      contextid: 1,
      component: 'core_admin',
      filearea: 'logo',
      filepath: '/brand/',
      filename: 'mark.svg',
      content: '<svg/>',
    });
    for (const name of ['web1', 'web2', 'web3']) {
      const worker = new ExecutorWorker(fx.rt, { node: name });
      workers.push(worker);
      afterAll(() => worker.close());
      await worker.waitUntilReady();
    }
  });

  it('copies a system file area with its folders to a node of its own, through the transfer folder and through Redis; a second run changes nothing', async () => {
    const first = await run('generic/copyfilearea', { fileareaid: 'core_admin/logo/0' }, ['a', 'b', 'c']);
    expect(first.run.state).toBe('succeeded');
    expect(first.by.a?.message).toMatch(
      /^Files sent: copied 2, unchanged 0, failed 0; 2 folders made; 2 contents came from this node/,
    );
    expect(first.by.b?.message).toMatch(/2 contents came through the transfer folder/);
    expect(first.by.c?.message).toMatch(/2 contents came through Redis/);
    const expected = (await filesOf(sites.master as Site, 'core_admin', 'logo')).map((f) => ({ ...f, contextid: 1 }));
    for (const name of ['a', 'b', 'c']) {
      const site = sites[name] as Site;
      // The rows Moodle's file API would have written: same names and contents, folders '/' and '/brand/', by the target's admin.
      expect(await filesOf(site, 'core_admin', 'logo')).toEqual(
        expected.map((f) => (f.filename === '.' ? { ...f, mimetype: null } : f)),
      );
      expect(pooled(site, sha1(logo))).toBe(sha1(logo));
      expect(pooled(site, sha1('<svg/>'))).toBe(sha1('<svg/>'));
      expect(pooled(site, EMPTY)).toBe(EMPTY);
    }
    expect(JSON.parse(first.by.c?.returned_value as string)).toEqual({
      copied: 2,
      unchanged: 0,
      failed: 0,
      skipped: 0,
      unplaced: 0,
    });
    expect(readdirSync(join(base, 'transfer'))).toEqual([]);
    expect(await transferKeys()).toEqual([]);

    const again = await run('generic/copyfilearea', { fileareaid: 'core_admin/logo:0' }, ['a', 'b', 'c']);
    expect(Object.values(again.by).map((t) => [t.status, t.message])).toEqual(
      ['a', 'b', 'c'].map(() => ['already_applied', 'Files sent: copied 0, unchanged 2, failed 0']),
    );
    for (const name of ['a', 'b', 'c'])
      expect(await filesOf(sites[name] as Site, 'core_admin', 'logo')).toHaveLength(4);
  });

  it("places course and activity files in each target's own course and activity, found by idnumber, and reports those with no counterpart", async () => {
    await storeFile(sites.master as Site, {
      contextid: course.master?.context as number,
      component: 'course',
      filearea: 'overviewfiles',
      filepath: '/',
      filename: 'cover.jpg',
      content: 'cover',
    });
    await storeFile(sites.master as Site, {
      contextid: activity.master as number,
      component: 'mod_resource',
      filearea: 'content',
      filepath: '/',
      filename: 'syllabus.pdf',
      content: 'syllabus',
    });

    const covers = await run(
      'generic/copyfilearea',
      { fileareaid: 'course/overviewfiles/0', context: 'course:PHYS101' },
      ['a', 'b', 'c'],
    );
    expect(covers.planned.targets.find((t) => t.shortname === 'c')?.preview_note).toMatch(
      /^0 files to copy \(0\.0 MB\); 0 unchanged; 1 file of course PHYS101 not placed: no course has idnumber PHYS101 here/,
    );
    expect(
      (await filesOf(sites.a as Site, 'course', 'overviewfiles'))
        .filter((f) => f.filename === 'cover.jpg')
        .map((f) => f.contextid),
    ).toEqual([course.a?.context]);
    expect(
      (await filesOf(sites.b as Site, 'course', 'overviewfiles'))
        .filter((f) => f.filename === 'cover.jpg')
        .map((f) => f.contextid),
    ).toEqual([course.b?.context]);
    expect(covers.by.c?.status).toBe('already_applied');
    expect(covers.by.c?.message).toBe(
      'Files sent: copied 0, unchanged 0, failed 0; 1 file of course PHYS101 not placed: no course has idnumber PHYS101 here',
    );
    expect(await filesOf(sites.c as Site, 'course', 'overviewfiles')).toEqual([]);

    const syllabus = await run('generic/copyfilearea', { fileareaid: 'mod_resource/content', context: '*' }, [
      'a',
      'b',
    ]);
    expect(
      (await filesOf(sites.a as Site, 'mod_resource', 'content'))
        .filter((f) => f.filename === 'syllabus.pdf')
        .map((f) => f.contextid),
    ).toEqual([activity.a]);
    expect(syllabus.by.b?.message).toMatch(
      /1 file of resource SYLLABUS in course PHYS101 not placed: course PHYS101 has no activity SYLLABUS here$/,
    );
    expect(await filesOf(sites.b as Site, 'mod_resource', 'content')).toEqual([]);
  });

  it('leaves out the first files with skipfiles, replaces a file whose content changed (the old one to the trash), and copies one file by id', async () => {
    const ids: number[] = [];
    for (const name of ['1.png', '2.png', '3.png'])
      ids.push(
        await storeFile(sites.master as Site, {
          contextid: 1,
          component: 'core_admin',
          filearea: 'logocompact',
          filepath: '/',
          filename: name,
          content: `compact ${name}`,
        }),
      );
    const skipped = await run('generic/copyfilearea', { fileareaid: 'core_admin/logocompact/0', skipfiles: '1' }, [
      'b',
    ]);
    expect(skipped.by.b?.message).toMatch(/^Files sent: copied 2, unchanged 0, failed 0; 1 skipped by skipfiles/);
    expect((await filesOf(sites.b as Site, 'core_admin', 'logocompact')).map((f) => f.filename)).toEqual([
      '.',
      '2.png',
      '3.png',
    ]);

    const changed = Buffer.from('compact 3.png, second edition');
    await conn.query(`UPDATE ${table(sites.master as Site, 'files')} SET contenthash = ?, filesize = ? WHERE id = ?`, [
      sha1(changed),
      changed.length,
      ids[2],
    ]);
    const pool = join((sites.master as Site).dataroot, 'filedir', sha1(changed).slice(0, 2), sha1(changed).slice(2, 4));
    mkdirSync(pool, { recursive: true });
    writeFileSync(join(pool, sha1(changed)), changed);
    const replaced = await run('generic/copyfilearea', { fileareaid: 'core_admin/logocompact/0', skipfiles: '1' }, [
      'b',
    ]);
    expect(replaced.by.b?.message).toMatch(/^Files sent: copied 1, unchanged 1, failed 0/);
    expect(
      (await filesOf(sites.b as Site, 'core_admin', 'logocompact')).find((f) => f.filename === '3.png')?.contenthash,
    ).toBe(sha1(changed));
    const old = sha1('compact 3.png');
    expect(pooled(sites.b as Site, old)).toBeUndefined();
    expect(existsSync(join((sites.b as Site).dataroot, 'trashdir', old.slice(0, 2), old.slice(2, 4), old))).toBe(true);

    const one = await run('generic/copyfile', { fileid: String(ids[0]) }, ['b']);
    expect(one.by.b?.message).toMatch(/^Files sent: copied 1, unchanged 0, failed 0/);
    expect((await filesOf(sites.b as Site, 'core_admin', 'logocompact')).map((f) => f.filename)).toEqual([
      '.',
      '1.png',
      '2.png',
      '3.png',
    ]);
  });

  it('refuses a content that does not match its contenthash and still copies the others', async () => {
    await storeFile(sites.master as Site, {
      contextid: 1,
      component: 'core_admin',
      filearea: 'favicon',
      filepath: '/',
      filename: 'good.ico',
      content: 'good',
    });
    await storeFile(sites.master as Site, {
      contextid: 1,
      component: 'core_admin',
      filearea: 'favicon',
      filepath: '/',
      filename: 'bad.ico',
      content: 'tampered',
      hash: sha1('original'),
    });
    const result = await run('generic/copyfilearea', { fileareaid: 'core_admin/favicon/0' }, ['a', 'c']);
    for (const name of ['a', 'c']) {
      expect(result.by[name]?.status).toBe('failed');
      expect(result.by[name]?.message).toMatch(
        new RegExp(
          `^Files sent: copied 1, unchanged 0, failed 1.*Failed: /bad.ico: the source's copy of ${sha1('original')} hashes to ${sha1('tampered')}`,
        ),
      );
      expect((await filesOf(sites[name] as Site, 'core_admin', 'favicon')).map((f) => f.filename)).toEqual([
        '.',
        'good.ico',
      ]);
      expect(pooled(sites[name] as Site, sha1('original'))).toBeUndefined();
    }
    expect(await transferKeys()).toEqual([]);
  });

  it('names what is wrong with a file area, a context or a file id, and plans nothing', async () => {
    const plan = (command: string, params: Record<string, string>) =>
      createPlan(fx.rt, { command, params, selector: { tohosts: ['a'] }, requestedBy: 'alice', via: 'cli' });
    await expect(plan('generic/copyfilearea', { fileareaid: 'core_admin' })).rejects.toThrow(
      "'core_admin' is not component/filearea/itemid (e.g. mod_h5p/libraries/0)",
    );
    await expect(plan('generic/copyfilearea', { fileareaid: 'core_admin/logo/0', context: 'course:' })).rejects.toThrow(
      "'course:' is not system, site, category:<idnumber>",
    );
    await expect(
      plan('generic/copyfilearea', { fileareaid: 'course/overviewfiles/0', context: 'course:NOPE' }),
    ).rejects.toThrow('the source host has no course NOPE context: no course has idnumber NOPE there');
    await expect(plan('generic/copyfilearea', { fileareaid: 'core_admin/nothing/0' })).rejects.toThrow(
      'the source host has no files in core_admin/nothing/0 (system)',
    );
    await expect(plan('generic/copyfile', { fileid: '999999' })).rejects.toThrow(
      'the source host has no files in file 999999',
    );
    await expect(plan('generic/copyfilearea', { fileareaid: 'core_admin/logo/0', skipfiles: '-1' })).rejects.toThrow();
  });

  it("copies the source's language customisations asked for, from its node, and moves langrev on", async () => {
    const langRoot = join((sites.master as Site).dataroot, 'lang');
    mkdirSync(join(langRoot, 'fr_local'), { recursive: true });
    mkdirSync(join(langRoot, 'de_local'), { recursive: true });
    writeFileSync(join(langRoot, 'fr_local', 'moodle.php'), "<?php\n$string['login'] = 'Connexion au campus';\n");
    writeFileSync(join(langRoot, 'fr_local', 'forum.php'), "<?php\n$string['forum'] = 'Agora';\n");
    writeFileSync(join(langRoot, 'de_local', 'moodle.php'), "<?php\n$string['login'] = 'Anmelden';\n");
    const langrev = async () => {
      const [rows] = await conn.query(`SELECT value FROM ${table(sites.b as Site, 'config')} WHERE name = 'langrev'`);
      return Number((rows as Array<{ value: string }>)[0]?.value);
    };
    const before = await langrev();
    const synced = await run('generic/synclangcustomisation', { components: 'core', langs: 'fr' }, ['b']);
    expect(synced.by.b?.message).toBe('1 written (fr_local/moodle.php), 0 unchanged');
    expect(readdirSync(join((sites.b as Site).dataroot, 'lang'))).toEqual(['fr_local']);
    expect(readFileSync(join((sites.b as Site).dataroot, 'lang', 'fr_local', 'moodle.php'), 'utf8')).toContain(
      'Connexion au campus',
    );
    expect(await langrev()).toBeGreaterThan(before);

    const all = await run('generic/synclangcustomisation', {}, ['b']);
    expect(all.by.b?.message).toBe('2 written (de_local/moodle.php, fr_local/forum.php), 1 unchanged');
    const again = await run('generic/synclangcustomisation', {}, ['b']);
    expect(again.by.b?.status).toBe('already_applied');
  });
});
