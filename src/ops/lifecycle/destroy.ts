import { randomBytes } from 'node:crypto';
import { quoteId } from '../../core/db/identifiers.ts';
import type { Instance } from '../../registry/instance.ts';
import type { TemplateManifest, TemplateStore } from '../../registry/templates.ts';
import type { MoodleAccess } from '../moodle/access.ts';
import { describeError } from '../../core/db/db-errors.ts';
import { dropLogin, isInstanceLogin } from '../moodle/db-logins.ts';
import { readDump, restoreSql, runSqlIn } from '../moodle/dump.ts';
import { siteTables } from '../moodle/site-tables.ts';
import { MOODLE_TABLES } from '../moodle/tables.ts';
import { serverKey, type MoodleTarget } from '../moodle/target.ts';
import { dropTables, LifecycleError } from './create.ts';
import { realDatarootProblem, removeTree, type DatarootGuard } from '../moodle/dataroot.ts';
import { takeSnapshot } from './snapshot.ts';

export const DESTROY_STEPS = ['check', 'snapshot', 'verify', 'database', 'dataroot', 'peers', 'unregister'] as const;
export type DestroyStep = (typeof DESTROY_STEPS)[number];

/** Another site's database, which a destroy must never drop. */
export interface KeptDatabase {
  target: MoodleTarget;
  what: string;
}

export interface DestroyDeps {
  access: MoodleAccess;
  templates: TemplateStore;
  guard: DatarootGuard;
  /** The master and the other instances: their databases are kept, and their MNET rows for this one removed. */
  others: readonly KeptDatabase[];
  /** Take (and check) a final snapshot first; only an explicit skip leaves it out. */
  finalSnapshot: boolean;
  unregister(instance: Instance): Promise<void>;
  onStep?(step: DestroyStep, detail?: string): void;
  /**
   * The instance's database reached with its server's provisioning account, which checks the final snapshot in a
   * scratch database and drops the instance's own login; without one, its own login checks and nothing is dropped.
   */
  provisioning?: MoodleTarget;
}

export interface Destroyed {
  snapshot: TemplateManifest | undefined;
  /** The whole database, or only its tables of this prefix (a database shared with other sites). */
  dropped: 'database' | 'tables';
  datarootRemoved: boolean;
  /** Its login of its own, dropped (a login it shared with others, or one made by hand, stays). */
  loginDropped: boolean;
  peersCleaned: string[];
  peersFailed: string[];
}

/** A final snapshot's name: the instance's short name as a template name allows, and when it was taken. */
export const finalSnapshotName = (shortname: string, now = new Date()) =>
  `${shortname.replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '') || 'instance'}-final-${now.toISOString().replace(/[-:]/g, '').slice(0, 15)}`;

const sameDatabase = (a: MoodleTarget, b: MoodleTarget) =>
  serverKey(a.db) === serverKey(b.db) && a.db.database === b.db.database;

/**
 * Restores a snapshot's dump into a scratch database on the instance's own server and counts its tables: a snapshot
 * that does not come back whole stops the destroy before anything is dropped. The scratch database is always dropped.
 */
async function verifySnapshot(
  access: MoodleAccess,
  target: MoodleTarget,
  templates: TemplateStore,
  manifest: TemplateManifest,
): Promise<void> {
  const scratch = `vmops_check_${randomBytes(6).toString('hex')}`;
  try {
    const dump = await readDump(templates.paths(manifest.name).dump, manifest.prefix);
    await runSqlIn(await access.connectionOptions(target), scratch, restoreSql(dump));
    const restored = await access.withConnection(target, (conn) => siteTables(conn, scratch, manifest.prefix));
    if (restored.length !== manifest.tables) {
      throw new LifecycleError(
        `the final snapshot ${manifest.name} restored ${restored.length} tables, not the ${manifest.tables} it dumped: nothing was dropped`,
      );
    }
  } finally {
    await access.withConnection(target, (conn) => conn.query(`DROP DATABASE IF EXISTS ${quoteId(scratch)}`));
  }
}

/**
 * A peer forgets the instance as Moodle's peer deletion does, and further: its service links go, and its mnet_host
 * row too unless users who came from the instance still name it (then it is marked deleted, as Moodle marks it).
 */
async function forgetPeer(access: MoodleAccess, peer: MoodleTarget, wwwroot: string): Promise<boolean> {
  const t = (name: string) => access.table(peer, name);
  return access.withTransaction(peer, async (conn) => {
    const [rows] = await conn.query(`SELECT id FROM ${t(MOODLE_TABLES.mnetHost)} WHERE wwwroot = ? FOR UPDATE`, [
      wwwroot,
    ]);
    const ids = (rows as Array<{ id: number }>).map((r) => Number(r.id));
    if (ids.length === 0) return false;
    await conn.query(`DELETE FROM ${t(MOODLE_TABLES.mnetHost2service)} WHERE hostid IN (?)`, [ids]);
    const [used] = await conn.query(
      `SELECT DISTINCT mnethostid AS id FROM ${t(MOODLE_TABLES.user)} WHERE mnethostid IN (?)`,
      [ids],
    );
    const kept = (used as Array<{ id: number }>).map((r) => Number(r.id));
    const unused = ids.filter((id) => !kept.includes(id));
    if (unused.length) await conn.query(`DELETE FROM ${t(MOODLE_TABLES.mnetHost)} WHERE id IN (?)`, [unused]);
    if (kept.length) await conn.query(`UPDATE ${t(MOODLE_TABLES.mnetHost)} SET deleted = 1 WHERE id IN (?)`, [kept]);
    return true;
  });
}

/**
 * The second step of the user guide's disable → destroy: a disabled instance's database dropped through its own
 * server, its dataroot removed (only under the allowed root, never a folder another site uses), its rows in its
 * peers' MNET tables removed, its registry row deleted; a checked final snapshot first unless skipped.
 */
export async function destroyInstance(deps: DestroyDeps, target: MoodleTarget, instance: Instance): Promise<Destroyed> {
  const { access } = deps;
  const step = (name: DestroyStep, detail?: string) => deps.onStep?.(name, detail);

  step('check');
  if (instance.enabled)
    throw new LifecycleError(
      `${instance.shortname} is enabled: only a disabled instance can be destroyed (disable it first: instances disable ${instance.shortname})`,
    );
  const same = deps.others.find((o) => sameDatabase(o.target, target) && o.target.db.prefix === target.db.prefix);
  if (same)
    throw new LifecycleError(
      `${instance.shortname}'s tables are ${same.what}'s (${target.db.database}, prefix ${target.db.prefix}): nothing was dropped`,
    );
  const dataroot = instance.vdatapath;
  const problem = dataroot ? await realDatarootProblem(dataroot, deps.guard) : 'missing';
  if (problem && problem !== 'missing')
    throw new LifecycleError(`${instance.shortname}'s dataroot cannot be removed: ${problem}`);
  const shared =
    deps.others.some((o) => sameDatabase(o.target, target)) ||
    (await access.withConnection(target, async (conn) => {
      const [rows] = await conn.query('SELECT COUNT(*) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?', [
        target.db.database,
      ]);
      return (
        Number((rows as Array<{ n: number }>)[0]?.n) >
        (await siteTables(conn, target.db.database, target.db.prefix)).length
      );
    }));

  let snapshot: TemplateManifest | undefined;
  if (deps.finalSnapshot) {
    step('snapshot');
    snapshot = await takeSnapshot(access, target, deps.templates, finalSnapshotName(instance.shortname), {
      kind: 'instance',
      onStep: (message) => step('snapshot', message),
    });
    step('verify');
    await verifySnapshot(access, deps.provisioning ?? target, deps.templates, snapshot);
  }

  step('database');
  if (shared) await dropTables(access, target);
  else await access.withConnection(target, (conn) => conn.query(`DROP DATABASE ${quoteId(target.db.database)}`));

  const ownLogin =
    deps.provisioning &&
    isInstanceLogin(instance.vdblogin) &&
    !deps.others.some((o) => serverKey(o.target.db) === serverKey(target.db) && o.target.db.user === instance.vdblogin);
  if (ownLogin)
    await access.withConnection(deps.provisioning as MoodleTarget, (conn) => dropLogin(conn, instance.vdblogin));

  step('dataroot');
  if (problem !== 'missing') await removeTree(dataroot);

  step('peers');
  const peersCleaned: string[] = [];
  const peersFailed: string[] = [];
  await Promise.all(
    deps.others.map(async ({ target: peer }) => {
      try {
        if (await forgetPeer(access, peer, instance.vhostname)) peersCleaned.push(peer.host.shortname);
      } catch (err) {
        peersFailed.push(`${peer.host.shortname} (${describeError(err)})`);
      }
    }),
  );

  step('unregister');
  await deps.unregister(instance);
  return {
    snapshot,
    dropped: shared ? 'tables' : 'database',
    datarootRemoved: problem !== 'missing',
    loginDropped: Boolean(ownLogin),
    peersCleaned: peersCleaned.sort(),
    peersFailed,
  };
}
