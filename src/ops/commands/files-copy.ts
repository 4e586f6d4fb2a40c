import { errorKind } from '../../core/errors.ts';
import type { ApplyOutcome, CommandContext, TargetPreview } from './command.ts';
import { invalidateCaches } from '../moodle/cache.ts';
import { sitePaths } from '../moodle/code-config.ts';
import { adminOf, adminRead } from '../moodle/config.ts';
import type { Statements } from '../moodle/statements.ts';
import type { MoodleTarget } from '../moodle/target.ts';
import { ParamError } from './params.ts';
import { onceForSource } from './source-reads.ts';
import {
  contextLabel,
  describeContexts,
  mapContexts,
  type MappedContext,
  type PortableContext,
} from '../files/contexts.ts';
import {
  existingAt,
  folderChain,
  place,
  readSelection,
  sortSelection,
  unusedContents,
  writeFile,
  writeFolder,
  type FileRow,
  type FileSelection,
  type PlacedRow,
  type SourceFiles,
} from '../files/file-area.ts';
import { EMPTY_CONTENT, pathnameHash, storeContent, trashContent } from '../files/filedir.ts';

export class FileCopyError extends errorKind('target') {}

/** What a copy takes: the selection, and how many of its files (in their stable order) to leave out first. */
export interface CopyRequest {
  /** The selection as the operator gave it, resolved on the source when read. */
  selection:
    | FileSelection
    | { area: Omit<Extract<FileSelection, { component: string }>, 'contextid'>; context: PortableContext | '*' };
  skip: number;
  /** How the selection is named in messages. */
  label: string;
}

/** Failures named in a result at most; the count says how many there were. */
const NAMED_FAILURES = 5;

/** The source's side of a copy: read once per run, however many targets receive it. */
export function sourceFiles(ctx: CommandContext, req: CopyRequest): Promise<SourceFiles> {
  return onceForSource(ctx, `files:${JSON.stringify(req.selection)}`, () =>
    ctx.moodle.withStatements(
      ctx.source,
      async (sql) => {
        let selection: FileSelection;
        if ('area' in req.selection) {
          const { area, context } = req.selection;
          let contextid: number | '*' = '*';
          if (context !== '*') {
            const found = (await mapContexts(ctx.moodle, sql, ctx.source, [context])).get(context) as MappedContext;
            if ('missing' in found)
              throw new ParamError(
                `the source host has no ${contextLabel(context)} context: ${found.missing.replace(/ here$/, ' there')}`,
              );
            contextid = found.id;
          }
          selection = { ...area, contextid };
        } else {
          selection = req.selection;
        }
        const rows = await readSelection(ctx.moodle, sql, ctx.source, selection);
        if (rows.length === 0) throw new ParamError(`the source host has no files in ${req.label}`);
        if ('fileid' in selection && rows[0]?.filename === '.')
          throw new ParamError(`file ${selection.fileid} of the source host is a folder, not a file`);
        const src = sortSelection(
          rows,
          await describeContexts(
            ctx.moodle,
            sql,
            ctx.source,
            rows.map((r) => r.contextid),
          ),
        );
        if ('fileid' in selection && src.aliases.length > 0)
          throw new ParamError(
            `file ${selection.fileid} of the source host is an alias of a file in a repository, which is never copied`,
          );
        return src;
      },
      false,
    ),
  );
}

/** Where the source's files go on one target, and what is there already. */
interface CopyPlan {
  /** Files to write, with the id of the row they replace. */
  writes: Array<{ placed: PlacedRow; replaces?: { id: number; contenthash: string } }>;
  unchanged: number;
  /** Folder rows missing at the places written to. */
  folders: Array<Omit<PlacedRow, 'row'> & { row: Pick<FileRow, 'component' | 'filearea' | 'itemid' | 'filepath'> }>;
  /** Files whose context has no counterpart here, by that context's label, with the reason. */
  unplaced: Map<string, { files: number; why: string }>;
  skipped: number;
  aliases: number;
}

/** Reads, on the caller's connection, where the files go on the target; `lock` holds those places for the writes that follow. */
async function planCopy(
  ctx: CommandContext,
  sql: Statements,
  target: MoodleTarget,
  src: SourceFiles,
  skip: number,
  lock: boolean,
): Promise<CopyPlan> {
  const files = src.files.slice(skip);
  const wanted = [...new Set([...files, ...src.dirs].map((f) => src.contexts.get(f.contextid) as PortableContext))];
  const mapped = await mapContexts(ctx.moodle, sql, target, wanted);
  const unplaced = new Map<string, { files: number; why: string }>();
  const where = (f: FileRow): number | undefined => {
    const found = mapped.get(src.contexts.get(f.contextid) as PortableContext) as MappedContext;
    if ('id' in found) return found.id;
    if (f.filename !== '.') {
      const label = contextLabel(src.contexts.get(f.contextid) as PortableContext);
      unplaced.set(label, { files: (unplaced.get(label)?.files ?? 0) + 1, why: found.missing });
    }
    return undefined;
  };
  const placedFiles = files.flatMap((f) => {
    const contextid = where(f);
    return contextid === undefined ? [] : [place(f, contextid)];
  });
  const folders = new Map<string, CopyPlan['folders'][number]>();
  const addFolders = (row: Pick<FileRow, 'component' | 'filearea' | 'itemid' | 'filepath'>, contextid: number) => {
    for (const filepath of folderChain(row.filepath)) {
      const hash = pathnameHash({ ...row, filepath, filename: '.', contextid });
      if (!folders.has(hash)) folders.set(hash, { row: { ...row, filepath }, contextid, pathnamehash: hash });
    }
  };
  for (const p of placedFiles) addFolders(p.row, p.contextid);
  for (const d of src.dirs) {
    const contextid = where(d);
    if (contextid !== undefined) addFolders(d, contextid);
  }
  const existing = await existingAt(
    ctx.moodle,
    sql,
    target,
    [...placedFiles.map((p) => p.pathnamehash), ...folders.keys()],
    lock,
  );
  const writes = placedFiles.flatMap((placed) => {
    const there = existing.get(placed.pathnamehash);
    return there?.contenthash === placed.row.contenthash ? [] : [{ placed, ...(there ? { replaces: there } : {}) }];
  });
  return {
    writes,
    unchanged: placedFiles.length - writes.length,
    folders: [...folders.values()].filter((f) => !existing.has(f.pathnamehash)),
    unplaced,
    skipped: Math.min(skip, src.files.length),
    aliases: src.aliases.length,
  };
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** Files of contexts with no counterpart, told as a result says them. */
const unplacedText = (unplaced: CopyPlan['unplaced']) =>
  [...unplaced].map(([label, u]) => `${plural(u.files, 'file')} of ${label} not placed: ${u.why}`);

export async function previewCopy(ctx: CommandContext, target: MoodleTarget, req: CopyRequest): Promise<TargetPreview> {
  const src = await sourceFiles(ctx, req);
  const plan = await ctx.moodle.withStatements(
    target,
    (sql) => planCopy(ctx, sql, target, src, req.skip, false),
    false,
  );
  const bytes = plan.writes.reduce((sum, w) => sum + w.placed.row.filesize, 0);
  const replaced = plan.writes.filter((w) => w.replaces).length;
  const notes = [
    `${plural(plan.writes.length, 'file')} to copy (${(bytes / 1024 / 1024).toFixed(1)} MB${replaced ? `, ${replaced} replacing a different file` : ''})`,
    `${plan.unchanged} unchanged`,
    ...(plan.skipped ? [`${plan.skipped} skipped by skipfiles`] : []),
    ...(plan.aliases ? [`${plural(plan.aliases, 'alias', 'aliases')} to repositories not copied`] : []),
    ...unplacedText(plan.unplaced),
  ];
  return { note: notes.join('; ') };
}

/**
 * Copies the source's files to one target as Moodle's file API stores them: contents into the target's pool first,
 * each checked against its hash, then in one transaction the rows, in the target's own contexts, replacing a file of
 * another content at the same place, with the folder rows create_directory() makes. A content no row uses any more
 * goes to the trash, as Moodle's own deletion does. Files that failed leave the others copied, and are named.
 */
export async function applyCopy(ctx: CommandContext, target: MoodleTarget, req: CopyRequest): Promise<ApplyOutcome> {
  if (!target.dataroot)
    throw new FileCopyError("the target's dataroot is not known, so its file pool cannot be written");
  const src = await sourceFiles(ctx, req);
  const paths = await sitePaths(ctx.codeRoot(target), target.dataroot);
  const planned = await ctx.moodle.withStatements(
    target,
    (sql) => planCopy(ctx, sql, target, src, req.skip, false),
    false,
  );
  const wanted = new Map(planned.writes.map((w) => [w.placed.row.contenthash, w.placed.row.filesize]));
  if (wanted.size > 0) ctx.step(`copying ${plural(wanted.size, 'content')}`);
  const fetched = await ctx.contents.fetch(
    ctx.source,
    target,
    { ...paths },
    [...wanted].map(([hash, size]) => ({ hash, size })),
  );
  if (planned.folders.length > 0) await storeContent(paths.filedir, EMPTY_CONTENT, [Buffer.alloc(0)], paths);

  const done = await ctx.moodle.withStatements(target, async (sql) => {
    // Planned again, locking the places in the transaction that writes them: a concurrent change to them is seen, and nothing is written twice.
    const plan = await planCopy(ctx, sql, target, src, req.skip, true);
    const by = {
      userid: adminOf(await sql.read<{ id: string }>(...adminRead(ctx.moodle, target))).userid || null,
      now: Math.floor(Date.now() / 1000),
    };
    const writes = plan.writes.filter((w) => fetched.stored.has(w.placed.row.contenthash));
    for (const w of writes) writeFile(ctx.moodle, sql, target, w.placed, w.replaces?.id, by);
    for (const f of plan.folders) writeFolder(ctx.moodle, sql, target, f, by);
    await sql.flush();
    const replaced = [...new Set(writes.flatMap((w) => (w.replaces ? [w.replaces.contenthash] : [])))];
    return { plan, writes, unused: await unusedContents(ctx.moodle, sql, target, replaced) };
  });
  for (const hash of done.unused) await trashContent(paths.filedir, paths.trashdir, hash, paths);

  const failed = done.plan.writes.filter((w) => !fetched.stored.has(w.placed.row.contenthash));
  const counts = {
    copied: done.writes.length,
    unchanged: done.plan.unchanged,
    failed: failed.length,
    skipped: done.plan.skipped,
    unplaced: [...done.plan.unplaced.values()].reduce((n, u) => n + u.files, 0),
  };
  const parts = [
    `Files sent: copied ${counts.copied}, unchanged ${counts.unchanged}, failed ${counts.failed}`,
    ...(counts.skipped ? [`${counts.skipped} skipped by skipfiles`] : []),
    ...(done.plan.aliases ? [`${plural(done.plan.aliases, 'alias', 'aliases')} to repositories not copied`] : []),
    ...(done.plan.folders.length ? [`${plural(done.plan.folders.length, 'folder')} made`] : []),
    ...(fetched.moved > 0
      ? [
          `${plural(fetched.moved, 'content')} came ${fetched.via === 'this node' ? 'from this node' : `through ${fetched.via}`}`,
        ]
      : []),
    ...unplacedText(done.plan.unplaced),
  ];
  if (failed.length > 0) {
    const named = failed
      .slice(0, NAMED_FAILURES)
      .map(
        (w) =>
          `${w.placed.row.filepath}${w.placed.row.filename}: ${fetched.failed.get(w.placed.row.contenthash) ?? 'not fetched'}`,
      );
    throw new FileCopyError(
      `${parts.join('; ')}. Failed: ${named.join('; ')}${failed.length > NAMED_FAILURES ? `; and ${failed.length - NAMED_FAILURES} more` : ''}`,
    );
  }
  const changed = counts.copied > 0 || done.plan.folders.length > 0;
  const cache =
    changed && src.files.some((f) => f.component === 'course' && f.filearea === 'overviewfiles')
      ? await invalidateCaches(ctx, target, [{ definition: 'core/course_image', purge: true }])
      : {};
  return {
    status: changed ? 'applied' : 'already_applied',
    message: parts.join('; '),
    value: JSON.stringify(counts),
    ...cache,
  };
}
