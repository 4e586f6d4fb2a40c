import { cp, lstat, readdir, rm } from 'node:fs/promises';
import { join, relative, resolve, sep } from 'node:path';
import { confinementProblem, type KeptFolder } from '../../core/paths.ts';

/** What a snapshot leaves out of a dataroot: caches, sessions and scratch space, which Moodle makes again. */
export const TRANSIENT_FOLDERS: readonly string[] = ['cache', 'localcache', 'sessions', 'temp', 'trashdir'];

/** Folders a new instance starts without, since they carry the old site's identity (moodle-facts §1.7, §3.3). */
export const IDENTITY_FOLDERS: readonly string[] = ['cache', 'localcache'];

/** The folders an instance's dataroot must not be, hold, or lie in: the master's, the other instances', the templates. */
export interface DatarootGuard {
  /** The configured folder dataroots are made and removed under. */
  root: string | undefined;
  keep: readonly KeptFolder[];
}

/**
 * Why a dataroot may not be made or removed, or undefined: it must lead, links followed, strictly under the
 * allowed root, and neither be, hold, nor lie in any folder the guard keeps (see paths.ts).
 */
export async function datarootProblem(path: string, guard: DatarootGuard): Promise<string | undefined> {
  if (!guard.root)
    return 'no folder is allowed for instance dataroots: set VMOODLE_DATAROOT_ROOT (lifecycle.dataroot_root)';
  if (path.startsWith('/') && resolve(path) === '/') return `'${path}' is never an instance's dataroot`;
  return confinementProblem(path, {
    root: { path: guard.root, what: 'the allowed dataroot folder' },
    keep: guard.keep,
  });
}

/** The same check for a dataroot about to be removed; a missing folder has nothing to remove. */
export async function realDatarootProblem(path: string, guard: DatarootGuard): Promise<string | undefined | 'missing'> {
  const problem = await datarootProblem(path, guard);
  if (problem) return problem;
  return (await exists(path)) ? undefined : 'missing';
}

export const exists = (path: string) =>
  lstat(path).then(
    () => true,
    (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return false;
      throw err;
    },
  );

/** Copies a folder, the named top-level folders left out; links are copied as links, never followed. */
export async function copyTree(from: string, to: string, leaveOut: readonly string[] = []): Promise<void> {
  await cp(from, to, {
    recursive: true,
    errorOnExist: true,
    force: false,
    preserveTimestamps: true,
    verbatimSymlinks: true,
    filter: (source) => {
      const top = relative(from, source).split(sep)[0] as string;
      return !leaveOut.includes(top);
    },
  });
}

/** Bytes of the files under a folder (links not followed). */
export async function treeBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) total += await treeBytes(path);
    else if (entry.isFile()) total += (await lstat(path)).size;
  }
  return total;
}

/** Removes a folder and everything in it. */
export const removeTree = (path: string) => rm(path, { recursive: true, force: true });
