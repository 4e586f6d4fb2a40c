import { defineCommand, type CommandContext, type CommandDef } from './command.ts';
import { invalidateCaches, PURGE_THROUGH_MOODLE } from '../moodle/cache.ts';
import { sitePaths } from '../moodle/code-config.ts';
import { type MoodleTarget, TargetError } from '../moodle/target.ts';
import type { PortableContext } from '../files/contexts.ts';
import { applyCopy, previewCopy, sourceFiles, type CopyRequest } from './files-copy.ts';
import { sourceSide } from '../files/transfer.ts';
import {
  COMPONENT,
  LANG_CODE,
  readLangLocal,
  writeLangLocal,
  type LangFile,
  type LangRequest,
} from '../files/lang-local.ts';
import { MOODLE_TABLES } from '../moodle/tables.ts';
import { hostKey } from '../moodle/site-upgrade.ts';
import { onceForSource } from './source-reads.ts';

/**
 * A file area as VMoodle's CopyFileArea names it: `component/filearea/itemid`, or with `:` before the item
 * (`mod_h5p/libraries:0`, its documentation's form); no item, or `*`, is every item.
 */
const FILE_AREA = /^([a-z][a-z0-9_]*)\/([a-z0-9_-]+)(?:[/:](\d{1,18}|\*))?$/i;

function fileArea(text: string): { component: string; filearea: string; itemid: number | '*' } | undefined {
  const m = FILE_AREA.exec(text.trim());
  if (!m) return undefined;
  return {
    component: m[1] as string,
    filearea: m[2] as string,
    itemid: m[3] === undefined || m[3] === '*' ? '*' : Number(m[3]),
  };
}

/** An idnumber as an operator types it in a context word: anything but what separates the words. */
const IDNUMBER = /^[^\s/:]{1,100}$/;

/** The context a file area is in: `system`, `site`, `category:<idnumber>`, `course:<idnumber>`, `module:<course>/<activity>`, or `*`. */
function contextWord(text: string): PortableContext | '*' | undefined {
  const t = text.trim();
  if (t === '*') return '*';
  if (t === 'system' || t === 'site') return { level: t };
  const [level, rest] = [t.slice(0, t.indexOf(':')), t.slice(t.indexOf(':') + 1)];
  if ((level === 'category' || level === 'course') && IDNUMBER.test(rest)) return { level, idnumber: rest };
  const [course, idnumber] = rest.split('/');
  if (
    level === 'module' &&
    course &&
    idnumber &&
    IDNUMBER.test(course) &&
    IDNUMBER.test(idnumber) &&
    rest.split('/').length === 2
  )
    return { level: 'module', course, idnumber };
  return undefined;
}

/**
 * Copies of files: destructive (a file at the same place with another content is replaced), repeatable (a file
 * already there is left alone), run on the node that mounts the target's dataroot.
 */
const FILE_COPY = {
  destructive: true,
  reversible: false,
  idempotent: true,
  needsSource: true,
  writes: true,
  runsOn: 'node',
  phpScripts: PURGE_THROUGH_MOODLE,
} as const;

const skipParam = {
  name: 'skipfiles',
  type: 'int',
  label: 'Files of the source to leave out first, in their order (to resume a copy)',
  default: '0',
  validate: (v: string) => (Number(v) >= 0 ? undefined : 'skipfiles counts files, from 0'),
} as const;

function areaRequest(p: { fileareaid: string; context: string; skipfiles: string }): CopyRequest {
  const area = fileArea(p.fileareaid) as NonNullable<ReturnType<typeof fileArea>>;
  const context = contextWord(p.context) as PortableContext | '*';
  return {
    selection: { area, context },
    skip: Number(p.skipfiles),
    label: `${p.fileareaid} (${p.context === '*' ? 'every context' : p.context})`,
  };
}

export const copyFileArea = defineCommand({
  name: 'generic/copyfilearea',
  category: 'generic',
  summary: "Copy a file area's files (rows and contents) from the source host, in each target's matching context",
  params: [
    {
      name: 'fileareaid',
      type: 'text',
      label: 'File area: component/filearea/itemid (itemid * or left out: every item)',
      validate: (v) => (fileArea(v) ? undefined : `'${v}' is not component/filearea/itemid (e.g. mod_h5p/libraries/0)`),
    },
    {
      name: 'context',
      type: 'text',
      default: 'system',
      label:
        'Its context: system, site, category:<idnumber>, course:<idnumber>, module:<course idnumber>/<activity idnumber>, or * for every one',
      validate: (v) =>
        contextWord(v)
          ? undefined
          : `'${v}' is not system, site, category:<idnumber>, course:<idnumber>, module:<course>/<activity> or *`,
    },
    skipParam,
  ],
  ...FILE_COPY,
  async check(ctx, p) {
    await sourceFiles(ctx, areaRequest(p));
  },
  preview: (ctx, target, p) => previewCopy(ctx, target, areaRequest(p)),
  apply: (ctx, target, p) => applyCopy(ctx, target, areaRequest(p)),
});

const fileRequest = (p: { fileid: string }): CopyRequest => ({
  selection: { fileid: Number(p.fileid) },
  skip: 0,
  label: `file ${p.fileid}`,
});

export const copyFile = defineCommand({
  name: 'generic/copyfile',
  category: 'generic',
  summary:
    "Copy one file (its row and content) from the source host, by its id there, in each target's matching context",
  params: [
    {
      name: 'fileid',
      type: 'int',
      label: "The file's id in the source host's files table",
      validate: (v) => (Number(v) > 0 ? undefined : 'a file id is a positive number'),
    },
  ],
  ...FILE_COPY,
  async check(ctx, p) {
    await sourceFiles(ctx, fileRequest(p));
  },
  preview: (ctx, target, p) => previewCopy(ctx, target, fileRequest(p)),
  apply: (ctx, target, p) => applyCopy(ctx, target, fileRequest(p)),
});

/** `all`, or a comma-separated list each item of which matches. */
function listOf(text: string, item: RegExp): string[] | 'all' | undefined {
  if (text.trim() === 'all') return 'all';
  const items = text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  return items.length > 0 && items.every((i) => item.test(i)) ? items : undefined;
}

const langRequest = (p: { components: string; langs: string }): LangRequest => ({
  components: listOf(p.components, COMPONENT) as LangRequest['components'],
  langs: listOf(p.langs, LANG_CODE) as LangRequest['langs'],
});

/** The source's customisations: read where its dataroot is, on this node or by its own node's worker. */
function sourceLang(ctx: CommandContext, target: MoodleTarget, req: LangRequest): Promise<LangFile[]> {
  const side = sourceSide(ctx.delivery.nodes, ctx.source, target, 'language customisations');
  return onceForSource(ctx, `lang:${side.local ? 'here' : side.from.name}:${JSON.stringify(req)}`, async () => {
    if (!side.local) return ctx.onNode(side.from.name, 'lang-read', { ...req, host: hostKey(ctx.source) });
    return readLangLocal((await sitePaths(ctx.codeRoot(ctx.source), ctx.source.dataroot as string)).langlocalroot, req);
  });
}

export const syncLangCustomisation = defineCommand({
  name: 'generic/synclangcustomisation',
  category: 'generic',
  summary: "Copy the source host's local language customisations (<lang>_local files) to the targets",
  params: [
    {
      name: 'components',
      type: 'text',
      label: 'Components (frankenstyle: core, core_admin, mod_forum…, comma-separated), or all',
      default: 'all',
      validate: (v) =>
        listOf(v, COMPONENT) ? undefined : `'${v}' is not all or a list of components such as core,mod_forum`,
    },
    {
      name: 'langs',
      type: 'text',
      label: 'Languages (fr, pt_br…, comma-separated), or all',
      default: 'all',
      validate: (v) =>
        listOf(v, LANG_CODE) ? undefined : `'${v}' is not all or a list of language codes such as fr,de`,
    },
  ],
  destructive: false,
  reversible: false,
  idempotent: true,
  needsSource: true,
  writes: true,
  runsOn: 'node',
  phpScripts: PURGE_THROUGH_MOODLE,
  preview: async (ctx, _target, p) => ({
    note: `customisations of ${p.components === 'all' ? 'every component' : p.components} in ${p.langs === 'all' ? 'every language' : p.langs} from ${ctx.source.host.shortname}`,
  }),
  async apply(ctx, target, p) {
    if (!target.dataroot)
      throw new TargetError("the target's dataroot is not known, so its language packs cannot be written");
    const files = await sourceLang(ctx, target, langRequest(p));
    if (files.length === 0)
      return {
        status: 'already_applied',
        message: `the source host has no customisations of ${p.components} in ${p.langs}`,
      };
    const paths = await sitePaths(ctx.codeRoot(target), target.dataroot);
    const { written, unchanged } = await writeLangLocal(paths.langlocalroot, files, paths);
    if (written.length === 0)
      return { status: 'already_applied', message: `${unchanged} customisation files, all already the source's` };
    // As the string manager's reset_caches(): its caches purged and langrev moved on, so browsers fetch the new strings.
    const cache = await invalidateCaches(ctx, target, [
      { definition: 'core/string', purge: true },
      { definition: 'core/langmenu', purge: true },
    ]);
    await ctx.moodle.withConnection(target, (conn) =>
      conn.query(
        `UPDATE ${ctx.moodle.table(target, MOODLE_TABLES.config)} SET value = GREATEST(CAST(value AS UNSIGNED) + 1, UNIX_TIMESTAMP()) WHERE name = 'langrev'`,
      ),
    );
    const config = await invalidateCaches(ctx, target, [{ definition: 'core/config', keys: ['core'] }]);
    return {
      status: 'applied',
      message: `${written.length} written (${written.slice(0, 5).join(', ')}${written.length > 5 ? ', …' : ''}), ${unchanged} unchanged`,
      cachePurged: Boolean(cache.cachePurged && config.cachePurged),
      ...(cache.cacheNote || config.cacheNote ? { cacheNote: cache.cacheNote ?? config.cacheNote } : {}),
    };
  },
});

export const FILE_COMMANDS: readonly CommandDef[] = [copyFile, copyFileArea, syncLangCustomisation];
