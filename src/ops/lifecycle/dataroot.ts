import { cp, lstat, readdir, realpath, rm } from 'node:fs/promises';
import { join, relative, resolve, sep } from 'node:path';

/** What a snapshot leaves out of a dataroot: caches, sessions and scratch space, which Moodle makes again. */
export const TRANSIENT_FOLDERS: readonly string[] = ['cache', 'localcache', 'sessions', 'temp', 'trashdir'];

/** Folders a new instance starts without, since they carry the old site's identity (moodle-facts §1.7, §3.3). */
export const IDENTITY_FOLDERS: readonly string[] = ['cache', 'localcache'];

/** The folders an instance's dataroot must not be, hold, or lie in: the master's, the other instances', the templates. */
export interface DatarootGuard {
  /** The configured folder dataroots are made and removed under. */
  root: string | undefined;
  keep: ReadonlyArray<{ path: string; what: string }>;
}

const inside = (parent: string, child: string) => child === parent || child.startsWith(parent.endsWith(sep) ? parent : parent + sep);

/**
 * Why a dataroot may not be made or removed, or undefined. It must be an absolute, plain path strictly under the
 * allowed root, and neither the same as, nor a folder above or below, any folder the guard keeps.
 */
export function datarootProblem(path: string, guard: DatarootGuard): string | undefined {
  if (!guard.root) return 'no folder is allowed for instance dataroots: set VMOODLE_DATAROOT_ROOT (lifecycle.dataroot_root)';
  if (path.startsWith('/') && resolve(path) === '/') return `'${path}' is never an instance's dataroot`;
  if (!path.startsWith('/') || resolve(path) !== path.replace(/\/+$/, '')) return `'${path}' is not an absolute path without '..', '.' or '//'`;
  const clean = resolve(path);
  if (!inside(guard.root, clean) || clean === guard.root) return `${clean} is not under the allowed dataroot folder ${guard.root}`;
  for (const kept of guard.keep) {
    const other = resolve(kept.path);
    if (inside(clean, other) || inside(other, clean)) return `${clean} ${clean === other ? 'is' : inside(clean, other) ? 'holds' : 'lies in'} ${kept.what} (${other})`;
  }
  return undefined;
}

/**
 * The same check on the folder a path leads to once links are followed, for a dataroot about to be removed: a link
 * inside the allowed root must not lead the removal elsewhere. A missing folder has nothing to remove.
 */
export async function realDatarootProblem(path: string, guard: DatarootGuard): Promise<string | undefined | 'missing'> {
  const plain = datarootProblem(path, guard);
  if (plain) return plain;
  let real: string;
  try {
    real = await realpath(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    throw err;
  }
  const root = await realpath(guard.root as string).catch(() => guard.root as string);
  return real === path ? undefined : datarootProblem(real, { ...guard, root });
}

export const exists = (path: string) => lstat(path).then(() => true, (err: NodeJS.ErrnoException) => {
  if (err.code === 'ENOENT') return false;
  throw err;
});

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
