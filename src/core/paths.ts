import { randomBytes } from 'node:crypto';
import { chmod, link, lstat, open, readdir, realpath, rename, rm, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { errorKind } from './errors.ts';

/**
 * Every filesystem path the product decides (dataroots, cache folders, templates, generated files) is checked here:
 * where it really leads once links are followed, whether that is inside the root it belongs to and outside every
 * folder it must not touch, and it is written and emptied without following a link (docs/security.md, "Paths never
 * leave their root").
 */
export class PathError extends errorKind('bad_parameter') {}

/** A folder a path must stay out of, and what to call it in a refusal (the master's dataroot, instance law's dataroot). */
export interface KeptFolder {
  path: string;
  what: string;
}

export const isInside = (parent: string, child: string) =>
  child === parent || child.startsWith(parent.endsWith(sep) ? parent : parent + sep);

const missing = (err: unknown) =>
  (err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR';

/**
 * Where a path leads: the real path of its deepest existing folder, with the part that does not exist yet added.
 * A link anywhere above the path is followed, as the kernel would follow it when the path is used.
 */
export async function realPathOf(path: string): Promise<string> {
  const absolute = resolve(path);
  const rest: string[] = [];
  for (let at = absolute; ; at = dirname(at)) {
    try {
      return join(await realpath(at), ...rest.reverse());
    } catch (err) {
      if (!missing(err) || at === dirname(at)) throw err;
      rest.push(basename(at));
    }
  }
}

/** Whether the path itself is a symbolic link (a missing path is not). */
export async function isLink(path: string): Promise<boolean> {
  try {
    return (await lstat(path)).isSymbolicLink();
  } catch (err) {
    if (missing(err)) return false;
    throw err;
  }
}

/**
 * Why a path may not be used, or undefined: it must lead (links followed) inside `root` (not be the root itself
 * unless `rootItself`), and neither be, hold, nor lie in a kept folder (also compared where they really lead).
 */
export async function confinementProblem(
  path: string,
  place: { root?: KeptFolder; keep: readonly KeptFolder[]; rootItself?: boolean },
): Promise<string | undefined> {
  if (!path.startsWith('/') || resolve(path) !== path.replace(/(.)\/+$/, '$1'))
    return `'${path}' is not an absolute path without '..', '.' or '//'`;
  const real = await realPathOf(path);
  const shown = real === resolve(path) ? real : `${resolve(path)} (which leads to ${real})`;
  if (place.root) {
    const root = await realPathOf(place.root.path);
    if (!isInside(root, real) || (real === root && !place.rootItself))
      return `${shown} is not under ${place.root.what} ${place.root.path}`;
  }
  for (const kept of place.keep) {
    const other = await realPathOf(kept.path);
    if (isInside(real, other) || isInside(other, real))
      return `${shown} ${real === other ? 'is' : isInside(real, other) ? 'holds' : 'lies in'} ${kept.what} (${kept.path})`;
  }
  return undefined;
}

/** confinementProblem as a refusal. */
export async function assertConfined(path: string, place: Parameters<typeof confinementProblem>[1]): Promise<string> {
  const problem = await confinementProblem(path, place);
  if (problem) throw new PathError(problem);
  return path;
}

/**
 * Empties a folder without following links: a folder that is itself a link is refused (its target is never
 * touched), and links inside it are removed as links. A missing folder is empty.
 */
export async function emptyFolder(path: string): Promise<'done' | { refused: string }> {
  if (await isLink(path)) return { refused: `${path} is a link` };
  let entries: string[];
  try {
    entries = await readdir(path);
  } catch (err) {
    if (missing(err)) return 'done';
    throw err;
  }
  // rm removes a link as a link; recursion never descends through one.
  await Promise.all(entries.map((e) => rm(join(path, e), { recursive: true, force: true })));
  return 'done';
}

/**
 * Writes a file without following a link at its place: the content goes to a new file beside it (created
 * exclusively, so no planted link is written through), which then replaces the place by rename (a link there is
 * replaced, never followed) or, unless `replace`, is linked there only if nothing is there yet.
 */
export async function writeFileSafely(
  path: string,
  content: string | Uint8Array,
  mode: number,
  replace: boolean,
): Promise<void> {
  const temporary = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const file = await open(temporary, 'wx', mode);
  try {
    await file.writeFile(content);
  } finally {
    await file.close();
  }
  try {
    await chmod(temporary, mode);
    if (replace) await rename(temporary, path);
    else {
      await link(temporary, path);
      await unlink(temporary);
    }
  } catch (err) {
    await rm(temporary, { force: true });
    if ((err as NodeJS.ErrnoException).code === 'EEXIST')
      throw new PathError(`${path} exists already: nothing written there`);
    throw err;
  }
}
