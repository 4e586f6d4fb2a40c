import type { MoodleAccess } from '../moodle/access.ts';
import type { Statements } from '../moodle/statements.ts';
import { MOODLE_TABLES } from '../moodle/tables.ts';
import type { MoodleTarget } from '../moodle/target.ts';
import { EMPTY_CONTENT, pathnameHash } from './filedir.ts';
import type { PortableContext } from './contexts.ts';

/** A `files` row as a copy carries it: what Moodle's create_file_from_pathname() is given, and where it was. */
export interface FileRow {
  id: number;
  contenthash: string;
  contextid: number;
  component: string;
  filearea: string;
  itemid: number;
  filepath: string;
  filename: string;
  filesize: number;
  mimetype: string | null;
  status: number;
  source: string | null;
  author: string | null;
  license: string | null;
  timecreated: number;
  timemodified: number;
  sortorder: number;
  referencefileid: number | null;
}

const COLUMNS =
  'id, contenthash, contextid, component, filearea, itemid, filepath, filename, filesize, mimetype, status, source, author, license, timecreated, timemodified, sortorder, referencefileid';

/** Which files a copy takes from its source: a file by id, or an area (in one context, or in every one). */
export type FileSelection =
  | { fileid: number }
  | { component: string; filearea: string; itemid: number | '*'; contextid: number | '*' };

/** What the source holds of a selection: its files in a stable order (what skipfiles counts), its folders, its aliases. */
export interface SourceFiles {
  files: FileRow[];
  /** Directory rows (`filename` '.'), copied so that an empty folder stays. */
  dirs: FileRow[];
  /** Aliases of files in repositories, never copied: the reference would point at the source's repository. */
  aliases: FileRow[];
  contexts: Map<number, PortableContext>;
}

const numeric = (r: FileRow): FileRow => ({
  ...r,
  id: Number(r.id),
  contextid: Number(r.contextid),
  itemid: Number(r.itemid),
  filesize: Number(r.filesize),
  status: Number(r.status),
  timecreated: Number(r.timecreated),
  timemodified: Number(r.timemodified),
  sortorder: Number(r.sortorder),
  referencefileid: r.referencefileid === null ? null : Number(r.referencefileid),
});

export async function readSelection(
  access: MoodleAccess,
  sql: Statements,
  site: MoodleTarget,
  selection: FileSelection,
): Promise<FileRow[]> {
  const files = access.table(site, MOODLE_TABLES.files);
  if ('fileid' in selection)
    return (await sql.read<FileRow>(`SELECT ${COLUMNS} FROM ${files} WHERE id = ?`, [selection.fileid])).map(numeric);
  const where = ['component = ?', 'filearea = ?'];
  const values: unknown[] = [selection.component, selection.filearea];
  if (selection.itemid !== '*') {
    where.push('itemid = ?');
    values.push(selection.itemid);
  }
  if (selection.contextid !== '*') {
    where.push('contextid = ?');
    values.push(selection.contextid);
  }
  const rows = await sql.read<FileRow>(
    `SELECT ${COLUMNS} FROM ${files} WHERE ${where.join(' AND ')} ORDER BY contextid, itemid, filepath, filename, id`,
    values,
  );
  return rows.map(numeric);
}

export const isDirectory = (f: Pick<FileRow, 'filename'>) => f.filename === '.';

/** Splits what a selection read into files, folders and aliases. */
export function sortSelection(rows: readonly FileRow[], contexts: Map<number, PortableContext>): SourceFiles {
  return {
    files: rows.filter((r) => !isDirectory(r) && r.referencefileid === null),
    dirs: rows.filter(isDirectory),
    aliases: rows.filter((r) => !isDirectory(r) && r.referencefileid !== null),
    contexts,
  };
}

/** A file or folder as it is to be on a target: the source's row, in the target's context. */
export interface PlacedRow {
  row: FileRow;
  contextid: number;
  pathnamehash: string;
}

export const place = (row: FileRow, contextid: number): PlacedRow => ({
  row,
  contextid,
  pathnamehash: pathnameHash({ ...row, contextid }),
});

/** The folders Moodle's create_directory() makes for a path: the path and each parent up to '/'. */
export function folderChain(filepath: string): string[] {
  const chain = [filepath];
  let path = filepath;
  while (path !== '/') {
    const parts = path.replace(/^\/|\/$/g, '').split('/');
    parts.pop();
    path = parts.length === 0 ? '/' : `/${parts.join('/')}/`;
    chain.push(path);
  }
  return chain;
}

/** What a target has at the places the copy writes to, by pathnamehash. */
export async function existingAt(
  access: MoodleAccess,
  sql: Statements,
  site: MoodleTarget,
  hashes: readonly string[],
  lock: boolean,
): Promise<Map<string, { id: number; contenthash: string }>> {
  const found = new Map<string, { id: number; contenthash: string }>();
  const table = access.table(site, MOODLE_TABLES.files);
  for (let i = 0; i < hashes.length; i += 1000) {
    const rows = await sql.read<{ id: number; pathnamehash: string; contenthash: string }>(
      `SELECT id, pathnamehash, contenthash FROM ${table} WHERE pathnamehash IN (?)${lock ? ' FOR UPDATE' : ''}`,
      [hashes.slice(i, i + 1000)],
    );
    for (const r of rows) found.set(r.pathnamehash, { id: Number(r.id), contenthash: r.contenthash });
  }
  return found;
}

/** Who a copy's rows are by on the target: its main admin, as when the admin uploads them there (VMoodle runs as it). */
export interface RowWriter {
  userid: number | null;
  now: number;
}

/**
 * Queues a file row as create_file_from_pathname() writes it, replacing (as VMoodle's import does) a row at the same
 * place, then the folder rows create_directory() adds for its path where there are none.
 */
export function writeFile(
  access: MoodleAccess,
  sql: Statements,
  site: MoodleTarget,
  placed: PlacedRow,
  replaced: number | undefined,
  by: RowWriter,
): void {
  const table = access.table(site, MOODLE_TABLES.files);
  const r = placed.row;
  if (replaced !== undefined) sql.write(`DELETE FROM ${table} WHERE id = ?`, [replaced]);
  sql.write(
    `INSERT INTO ${table} (contenthash, pathnamehash, contextid, component, filearea, itemid, filepath, filename, userid, filesize, mimetype, status, source, author, license, timecreated, timemodified, sortorder, referencefileid)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)`,
    [
      r.contenthash,
      placed.pathnamehash,
      placed.contextid,
      r.component,
      r.filearea,
      r.itemid,
      r.filepath,
      r.filename,
      by.userid,
      r.filesize,
      r.mimetype,
      r.status,
      r.source || null,
      r.author || null,
      r.license || null,
      Math.max(0, r.timecreated),
      Math.max(0, r.timemodified),
      Math.max(0, r.sortorder),
    ],
  );
}

/** A folder row as create_directory() writes it. */
export function writeFolder(
  access: MoodleAccess,
  sql: Statements,
  site: MoodleTarget,
  folder: Omit<PlacedRow, 'row'> & { row: Pick<FileRow, 'component' | 'filearea' | 'itemid' | 'filepath'> },
  by: RowWriter,
): void {
  const r = folder.row;
  sql.write(
    `INSERT INTO ${access.table(site, MOODLE_TABLES.files)} (contenthash, pathnamehash, contextid, component, filearea, itemid, filepath, filename, userid, filesize, mimetype, status, timecreated, timemodified, sortorder)
     VALUES (?, ?, ?, ?, ?, ?, ?, '.', ?, 0, NULL, 0, ?, ?, 0)`,
    [
      EMPTY_CONTENT,
      folder.pathnamehash,
      folder.contextid,
      r.component,
      r.filearea,
      r.itemid,
      r.filepath,
      by.userid,
      by.now,
      by.now,
    ],
  );
}

/** Of these contents, those no row of the site uses any more. */
export async function unusedContents(
  access: MoodleAccess,
  sql: Statements,
  site: MoodleTarget,
  hashes: readonly string[],
): Promise<string[]> {
  if (hashes.length === 0) return [];
  const used = await sql.read<{ contenthash: string }>(
    `SELECT DISTINCT contenthash FROM ${access.table(site, MOODLE_TABLES.files)} WHERE contenthash IN (?)`,
    [hashes],
  );
  const kept = new Set(used.map((u) => u.contenthash));
  return hashes.filter((h) => !kept.has(h));
}
