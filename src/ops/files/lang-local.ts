import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errorKind } from '../../core/errors.ts';
import type { PoolModes } from './filedir.ts';

/**
 * Local language customisations (tool_customlang's "save to the language pack"): one PHP file of strings per
 * component under `$CFG->langlocalroot/<lang>_local/`, read by Moodle's string manager over the language pack's.
 */
export class LangLocalError extends errorKind('target') {}

/** A language code as Moodle names its packs: `fr`, `pt_br`, `en_us_k12`. */
export const LANG_CODE = /^[a-z]{2,3}(_[a-z0-9]+)*$/;

/** A frankenstyle component: `core`, `core_admin`, `mod_forum`, `block_html`. */
export const COMPONENT = /^[a-z][a-z0-9]*(_[a-z][a-z0-9_]*)?$/;

const LOCAL_SUFFIX = '_local';
const STRING_FILE = /^([a-z][a-z0-9_]*)\.php$/;

/** What a sync reads from its source: all, or only these languages and components. */
export interface LangRequest {
  langs: string[] | 'all';
  components: string[] | 'all';
}

export interface LangFile {
  lang: string;
  /** Its file name in `<lang>_local`. */
  file: string;
  content: string;
}

/** Customisations are a few kilobytes each: more than this from one source is not a language pack. */
const MAX_BYTES = 16 * 1024 * 1024;

/**
 * The strings file a component's customisations are saved in, as Moodle names it: core's in `moodle.php`, a core
 * subsystem's and an activity module's under its bare name (`admin.php`, `forum.php`), any other plugin's under its
 * full name (`block_html.php`).
 */
export function stringFile(component: string): string {
  if (component === 'core') return 'moodle.php';
  const [type, name] = component.split(/_(.*)/s) as [string, string | undefined];
  if (name === undefined) return `${component}.php`;
  return type === 'core' || type === 'mod' ? `${name}.php` : `${component}.php`;
}

async function list(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** The customisations a source holds, of the languages and components asked for. */
export async function readLangLocal(root: string, req: LangRequest): Promise<LangFile[]> {
  const wantedFiles = req.components === 'all' ? undefined : new Set(req.components.map(stringFile));
  const langs = (await list(root))
    .filter((d) => d.endsWith(LOCAL_SUFFIX))
    .map((d) => d.slice(0, -LOCAL_SUFFIX.length))
    .filter((l) => LANG_CODE.test(l) && (req.langs === 'all' || req.langs.includes(l)));
  const files: LangFile[] = [];
  let bytes = 0;
  for (const lang of langs.sort()) {
    for (const file of (await list(join(root, `${lang}${LOCAL_SUFFIX}`))).sort()) {
      if (!STRING_FILE.test(file) || (wantedFiles && !wantedFiles.has(file))) continue;
      const content = await readFile(join(root, `${lang}${LOCAL_SUFFIX}`, file), 'utf8');
      bytes += Buffer.byteLength(content);
      if (bytes > MAX_BYTES)
        throw new LangLocalError(
          `the source's customisations pass ${MAX_BYTES / 1024 / 1024} MiB: choose fewer languages or components`,
        );
      files.push({ lang, file, content });
    }
  }
  return files;
}

/** Writes customisations into a site's local packs, each file whole or not at all; says which changed. */
export async function writeLangLocal(
  root: string,
  files: readonly LangFile[],
  modes: PoolModes,
): Promise<{ written: string[]; unchanged: number }> {
  const written: string[] = [];
  let unchanged = 0;
  for (const f of files) {
    if (!LANG_CODE.test(f.lang) || !STRING_FILE.test(f.file))
      throw new LangLocalError(`'${f.lang}/${f.file}' is not a language customisation file`);
    const dir = join(root, `${f.lang}${LOCAL_SUFFIX}`);
    const path = join(dir, f.file);
    const current = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    if (current === f.content) {
      unchanged++;
      continue;
    }
    for (const d of [root, dir]) {
      if ((await mkdir(d, { recursive: true, mode: modes.directoryPermissions })) !== undefined)
        await chmod(d, modes.directoryPermissions);
    }
    const temp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      await writeFile(temp, f.content, { mode: modes.filePermissions, flag: 'wx' });
      await chmod(temp, modes.filePermissions);
      await rename(temp, path);
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
    written.push(`${f.lang}_local/${f.file}`);
  }
  return { written, unchanged };
}
