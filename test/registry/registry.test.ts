import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/core/db/knex.ts';
import { Registry, RegistryError } from '../../src/registry/registry.ts';
import { cronLate, instanceState } from '../../src/registry/status.ts';
import { RegistryTableError } from '../../src/registry/table.ts';
import { ValidationError } from '../../src/registry/validation.ts';
import { createDatabase } from '../support/databases.ts';
import { MASTER } from '../support/instances.ts';

/** The table exactly as Moodle's installer creates it from local_vmoodle's db/install.xml on MariaDB. */
const VMOODLE_DDL = `CREATE TABLE mdl_local_vmoodle (
    id BIGINT(10) NOT NULL auto_increment,
    name VARCHAR(255) COLLATE utf8mb4_unicode_ci,
    shortname VARCHAR(80) COLLATE utf8mb4_unicode_ci,
    description LONGTEXT COLLATE utf8mb4_unicode_ci,
    vhostname VARCHAR(255) COLLATE utf8mb4_unicode_ci,
    vdbtype VARCHAR(16) COLLATE utf8mb4_unicode_ci NOT NULL DEFAULT 'mysqli',
    vdbhost VARCHAR(80) COLLATE utf8mb4_unicode_ci NOT NULL DEFAULT 'localhost',
    vdblogin VARCHAR(16) COLLATE utf8mb4_unicode_ci NOT NULL DEFAULT 'root',
    vdbpass VARCHAR(32) COLLATE utf8mb4_unicode_ci,
    vdbname VARCHAR(64) COLLATE utf8mb4_unicode_ci,
    vdbprefix VARCHAR(10) COLLATE utf8mb4_unicode_ci NOT NULL DEFAULT 'mdl_',
    vdbpersist TINYINT(1) NOT NULL DEFAULT 0,
    vdatapath VARCHAR(255) COLLATE utf8mb4_unicode_ci,
    mnet SMALLINT(3) NOT NULL DEFAULT 0,
    enabled TINYINT(1) NOT NULL DEFAULT 1,
    timecreated BIGINT(10) NOT NULL DEFAULT 0,
    lastcron BIGINT(11) NOT NULL DEFAULT 0,
    lastcrongap BIGINT(11) NOT NULL DEFAULT 0,
    croncount BIGINT(11) NOT NULL DEFAULT 0,
    metadata LONGTEXT COLLATE utf8mb4_unicode_ci,
CONSTRAINT  PRIMARY KEY (id)
) ENGINE = InnoDB ROW_FORMAT=Compressed DEFAULT COLLATE = utf8mb4_unicode_ci COMMENT='Default comment for vmoodle, please edit me'`;

const dataroot = mkdtempSync(join(tmpdir(), 'vmops-registry-'));

const base = {
  name: 'Law faculty',
  shortname: 'law',
  vhostname: 'https://law.example.org',
  vdbname: 'moodle_law',
  vdatapath: dataroot,
};

async function showCreate(db: Knex, table: string): Promise<string> {
  const [[row]] = await db.raw(`SHOW CREATE TABLE \`${table}\``);
  // The next id moves with every insert; the definition is what must not change.
  return row['Create Table'].replace(/ AUTO_INCREMENT=\d+/, '');
}

describe('registry on an existing VMoodle master', () => {
  let db: Knex;
  let registry: Registry;
  let before: string;

  beforeAll(async () => {
    db = openDatabase((await createDatabase('vmoodle')).url);
    await db.raw(VMOODLE_DDL);
    // Rows as VMoodle's own forms leave them: NULL description and metadata, vdbtype mysqli, counters set by vcron.
    await db.raw(
      `INSERT INTO mdl_local_vmoodle (name, shortname, description, vhostname, vdbhost, vdblogin, vdbpass, vdbname,
        vdbprefix, vdatapath, mnet, enabled, timecreated, lastcron, lastcrongap, croncount)
      VALUES ('Physics', 'physics', NULL, 'https://physics.example.org', 'db1:3306', 'moodle', 's3cret', 'vmdl_physics',
        'mdl_', ?, 1, 1, 1700000000, UNIX_TIMESTAMP() - 120, 4140, 600),
      ('Old site', 'old', NULL, 'https://old.example.org', 'localhost', 'root', NULL, 'vmdl_old', 'mdl_', '/nonexistent/old', -1, 0, 0, 0, 0, 0)`,
      [dataroot],
    );
    before = await showCreate(db, 'mdl_local_vmoodle');
    registry = new Registry(db, 'mdl_', MASTER);
    expect(await registry.ensureTable()).toBe('existing');
  });
  afterAll(() => db.destroy());

  it('reads the rows VMoodle wrote', async () => {
    const physics = await registry.get('physics');
    expect(physics).toMatchObject({
      vhostname: 'https://physics.example.org',
      vdbtype: 'mysqli',
      mnet: 1,
      croncount: 600,
      description: '',
    });
    expect(instanceState(physics)).toBe('enabled');
    expect(instanceState(await registry.get('old'))).toBe('broken');
  });

  it('adds, edits, disables and enables rows without changing the table definition', async () => {
    const added = await registry.add({ ...base, vdatapath: '/var/moodledata/law', mnet: 'new' });
    expect(added.mnet).toBe(2);
    expect(added.timecreated).toBeGreaterThan(1_700_000_000);
    await registry.edit('law', { vdbhost: 'db2.example.org:3307', description: 'Law' });
    expect((await registry.get('https://law.example.org/')).vdbhost).toBe('db2.example.org:3307');
    expect((await registry.setEnabled(['law', 'physics'], false)).map((i) => i.shortname)).toEqual(['law', 'physics']);
    expect((await registry.setEnabled(['physics'], true)).map((i) => i.enabled)).toEqual([true]);
    const [[raw]] = await db.raw("SELECT vdbtype, enabled, vdbpersist FROM mdl_local_vmoodle WHERE shortname = 'law'");
    expect(raw).toEqual({ vdbtype: 'mariadb', enabled: 0, vdbpersist: 0 });
    expect(await showCreate(db, 'mdl_local_vmoodle')).toBe(before);
  });
});

describe('registry on a new master', () => {
  let db: Knex;
  let registry: Registry;

  beforeAll(async () => {
    db = openDatabase((await createDatabase('newmaster')).url);
    registry = new Registry(db, 'mdl_', MASTER);
    expect(await registry.ensureTable()).toBe('created');
    expect(await registry.ensureTable()).toBe('existing');
  });
  afterAll(() => db.destroy());

  it("creates VMoodle's 20 columns with VMoodle's types and defaults", async () => {
    const [columns] = await db.raw(
      `SELECT COLUMN_NAME AS name, COLUMN_TYPE AS type, IS_NULLABLE AS nullable, COLUMN_DEFAULT AS def
         FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'mdl_local_vmoodle' ORDER BY ORDINAL_POSITION`,
    );
    const summary = columns.map(
      (c: Record<string, string | null>) => `${c.name} ${c.type} ${c.nullable === 'YES' ? 'null' : 'notnull'} ${c.def}`,
    );
    expect(summary).toEqual([
      'id bigint(10) notnull null',
      'name varchar(255) null NULL',
      'shortname varchar(80) null NULL',
      'description longtext null NULL',
      'vhostname varchar(255) null NULL',
      "vdbtype varchar(16) notnull 'mysqli'",
      "vdbhost varchar(80) notnull 'localhost'",
      "vdblogin varchar(16) notnull 'root'",
      'vdbpass varchar(32) null NULL',
      'vdbname varchar(64) null NULL',
      "vdbprefix varchar(10) notnull 'mdl_'",
      'vdbpersist tinyint(1) notnull 0',
      'vdatapath varchar(255) null NULL',
      'mnet smallint(3) notnull 0',
      'enabled tinyint(1) notnull 1',
      'timecreated bigint(10) notnull 0',
      'lastcron bigint(11) notnull 0',
      'lastcrongap bigint(11) notnull 0',
      'croncount bigint(11) notnull 0',
      'metadata longtext null NULL',
    ]);
  });

  it('refuses invalid rows with every problem named, and writes nothing', async () => {
    const error = await registry
      .add({
        name: '',
        shortname: 'my site',
        vhostname: 'ftp://x.example.org',
        vdbname: 'moodle-x_',
        vdatapath: 'data',
        vdbprefix: 'vmoodle_',
        mnet: -2,
        vdbtype: 'oracle',
      })
      .catch((e) => e);
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).errors.map((e) => e.field).sort()).toEqual([
      'mnet',
      'name',
      'shortname',
      'vdatapath',
      'vdbname',
      'vdbprefix',
      'vdbtype',
      'vhostname',
    ]);
    expect(error.message).toContain("vhostname: 'ftp://x.example.org' must start with http:// or https://");
    expect(error.message).toContain("vdbname: 'moodle-x_' must not contain '-'");
    expect(error.message).toContain("vdbprefix: 'vmoodle_' is reserved by VMoodle");
    expect((await registry.list()).total).toBe(0);
  });

  it("applies VMoodle's database-name rules", async () => {
    await expect(registry.add({ ...base, vdbname: 'moodle_' })).rejects.toThrow(
      "vdbname: 'moodle_' must not end with '_'",
    );
    await expect(registry.add({ ...base, vdbname: 'moodle law' })).rejects.toThrow(
      /vdbname: 'moodle law' may hold only/,
    );
  });

  it('strips a trailing slash from the wwwroot and keeps wwwroots and short names unique', async () => {
    const law = await registry.add({ ...base, vhostname: 'https://law.example.org/' });
    expect(law.vhostname).toBe('https://law.example.org');
    await expect(registry.add({ ...base, shortname: 'law2', vdatapath: '/srv/law2' })).rejects.toThrow(
      "vhostname: 'https://law.example.org' is already registered (instance law)",
    );
    await expect(
      registry.add({ ...base, vhostname: 'https://LAW2.example.org', shortname: 'LAW', vdatapath: '/srv/law2' }),
    ).rejects.toThrow("shortname: 'LAW' is already used by https://law.example.org");
  });

  it('keeps data folders unique among enabled instances only', async () => {
    const clash = { ...base, vhostname: 'https://law-copy.example.org', shortname: 'lawcopy' };
    await expect(registry.add(clash)).rejects.toThrow(
      /vdatapath: '.*' is already the data folder of enabled instance law/,
    );
    await registry.add({ ...clash, enabled: false });
    await expect(registry.setEnabled(['lawcopy'], true)).rejects.toThrow(
      /cannot enable: lawcopy: .* enabled instance law/,
    );
    await registry.setEnabled(['law'], false);
    expect((await registry.setEnabled(['lawcopy'], true)).map((i) => i.shortname)).toEqual(['lawcopy']);
  });

  it('lets two writers racing on the same wwwroot register it once', async () => {
    const race = { ...base, vhostname: 'https://race.example.org', vdatapath: '/srv/race', enabled: false };
    const results = await Promise.allSettled([
      registry.add({ ...race, shortname: 'race1' }),
      registry.add({ ...race, shortname: 'race2' }),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect((await registry.list({ filter: 'race' })).total).toBe(1);
  });

  it('refuses to edit identity fields and names unknown instances with a hint', async () => {
    await expect(registry.edit('law', { shortname: 'x' } as never)).rejects.toThrow(/shortname cannot be edited/);
    await expect(registry.get('lwa')).rejects.toThrow(
      new RegistryError("no instance named 'lwa' (did you mean 'law'?)"),
    );
  });

  it('lists with a filter and pages, ordered by name', async () => {
    for (let i = 1; i <= 7; i++) {
      await registry.add({
        name: `Campus ${i}`,
        shortname: `c${i}`,
        vhostname: `https://c${i}.campus.example.org`,
        vdbname: `m_c${i}`,
        vdatapath: `/srv/c${i}`,
      });
    }
    const page2 = await registry.list({ filter: 'campus', perPage: 3, page: 2 });
    expect(page2).toMatchObject({ total: 7, pages: 3, page: 2 });
    expect(page2.items.map((i) => i.shortname)).toEqual(['c4', 'c5', 'c6']);
    expect((await registry.list({ filter: '100%' })).total).toBe(0);
    expect((await registry.list({ state: 'disabled' })).items.map((i) => i.shortname)).toEqual(['law', 'race1']);
  });
});

describe('registry safety', () => {
  it('refuses a same-named table that is not VMoodle’s, and leaves it alone', async () => {
    const db = openDatabase((await createDatabase('foreign')).url);
    await db.raw('CREATE TABLE mdl_local_vmoodle (id BIGINT PRIMARY KEY, something TEXT)');
    await expect(new Registry(db, 'mdl_', MASTER).ensureTable()).rejects.toThrow(RegistryTableError);
    const [cols] = await db.raw(
      "SELECT COUNT(*) AS n FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'mdl_local_vmoodle'",
    );
    expect(Number(cols[0].n)).toBe(2);
    await db.destroy();
  });

  it('refuses a table prefix that could inject SQL', () => {
    expect(() => new Registry({} as Knex, 'mdl_; DROP TABLE x; --', MASTER)).toThrow(/table prefix/);
  });
});

describe('cron gap flag', () => {
  const now = 1_800_000_000;
  const row = (lastcron: number, lastcrongap: number) => ({ lastcron, lastcrongap }) as never;
  it('flags a gap of more than a day between the last two runs', () => {
    expect(cronLate(row(now - 60, 86_401), now)).toBe(true);
    expect(cronLate(row(now - 60, 4_140), now)).toBe(false);
  });
  it('flags a cron that stopped more than a day ago', () => {
    expect(cronLate(row(now - 90_000, 60), now)).toBe(true);
    expect(cronLate(row(0, 0), now)).toBe(false);
  });
});
