import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import type { MoodleAccess } from '../moodle/access.ts';
import { dumpSite } from '../moodle/dump-writer.ts';
import { MOODLE_TABLES } from '../moodle/tables.ts';
import type { MoodleTarget } from '../moodle/target.ts';
import { TemplateError, type TemplateManifest, type TemplateStore } from '../../registry/templates.ts';
import { copyTree, exists, TRANSIENT_FOLDERS, treeBytes } from '../moodle/dataroot.ts';

/**
 * Tables whose rows no snapshot keeps: the registry (it holds every instance's database password) and sessions (the
 * logged-in users of the old site). Their structure is kept, so a copy is a whole Moodle.
 */
export const ROWS_NEVER_COPIED: readonly string[] = ['local_vmoodle', 'sessions'];

export interface SnapshotOptions {
  kind: TemplateManifest['source']['kind'];
  /** Told each tenth of the tables dumped, and when the dataroot copy starts. */
  onStep?(message: string): void;
}

/** The source's Moodle version and release, as its config holds them. */
async function moodleVersion(
  access: MoodleAccess,
  target: MoodleTarget,
): Promise<{ version: string; release: string }> {
  return access.withConnection(target, async (conn) => {
    const [rows] = await conn.query(
      `SELECT name, value FROM ${access.table(target, MOODLE_TABLES.config)} WHERE name IN ('version', 'release')`,
    );
    const found = new Map((rows as Array<{ name: string; value: string }>).map((r) => [r.name, r.value]));
    if (!found.has('version'))
      throw new TemplateError(
        `${target.host.shortname}: its config has no Moodle version: is ${target.db.database}.${target.db.prefix}config a Moodle's?`,
      );
    return { version: found.get('version') as string, release: found.get('release') ?? '' };
  });
}

/**
 * Snapshots a site into a template: its tables dumped in one consistent read, its dataroot copied without the
 * transient folders, and a manifest of where it came from. All of it is made under `<name>.partial` and renamed
 * once whole; a snapshot that fails leaves nothing behind.
 */
export async function takeSnapshot(
  access: MoodleAccess,
  target: MoodleTarget,
  store: TemplateStore,
  name: string,
  opts: SnapshotOptions,
): Promise<TemplateManifest> {
  const paths = store.paths(name);
  if (await store.exists(name))
    throw new TemplateError(
      `a template '${name}' exists already: choose another name, or delete it first (templates delete ${name})`,
    );
  const dataroot = target.dataroot;
  if (!dataroot)
    throw new TemplateError(
      `${target.host.shortname} has no dataroot in the registry${target.host.kind === 'master' ? ' (set VMOODLE_MASTER_DATAROOT)' : ''}: a template needs one`,
    );
  if (!(await exists(dataroot)))
    throw new TemplateError(`${target.host.shortname}'s dataroot ${dataroot} is not on this node`);
  const partial = `${paths.folder}.partial`;
  const inPartial = {
    dump: `${partial}/database.sql.gz`,
    dataroot: `${partial}/dataroot`,
    manifest: `${partial}/manifest.json`,
  };
  await rm(partial, { recursive: true, force: true });
  await mkdir(partial, { recursive: true, mode: 0o700 });
  try {
    const { version, release } = await moodleVersion(access, target);
    let told = 0;
    const stats = await dumpSite(access, target, inPartial.dump, {
      rowsLeftOut: ROWS_NEVER_COPIED,
      onTable: (done, total) => {
        if (done * 10 < (told + 1) * total && done !== total) return;
        told = Math.floor((done * 10) / total);
        opts.onStep?.(`dumped ${done}/${total} tables`);
      },
    });
    opts.onStep?.('copying the dataroot');
    await copyTree(dataroot, inPartial.dataroot, TRANSIENT_FOLDERS);
    const manifest: TemplateManifest = {
      name,
      source: { kind: opts.kind, shortname: target.host.shortname, wwwroot: target.host.wwwroot, dataroot },
      prefix: target.db.prefix,
      version,
      release,
      createdAt: Date.now(),
      tables: stats.tables,
      rows: stats.rows,
      dumpBytes: (await stat(inPartial.dump)).size,
      datarootBytes: await treeBytes(inPartial.dataroot),
    };
    await writeFile(inPartial.manifest, `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o600 });
    await rename(partial, paths.folder);
    return manifest;
  } catch (err) {
    await rm(partial, { recursive: true, force: true });
    throw err;
  }
}
