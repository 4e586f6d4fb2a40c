import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { errorKind } from '../../core/errors.ts';

/**
 * Moodle's file pool (file_system_filedir): each content once, named by the sha1 of its bytes, under
 * `filedir/<2>/<2>/<hash>`; a content no file row uses any more is moved to `trashdir` under the same path.
 */
export const CONTENT_HASH = /^[0-9a-f]{40}$/;

/** The hash of no bytes, which every directory row (`filename` '.') carries; Moodle keeps it in the pool too. */
export const EMPTY_CONTENT = createHash('sha1').update('').digest('hex');

export class ContentError extends errorKind('target') {}

/** Where a content lives under a pool root (filedir or trashdir); the hash is checked, so no path is built from anything else. */
export function contentPath(root: string, hash: string): string {
  if (!CONTENT_HASH.test(hash)) throw new ContentError(`'${hash}' is not a content hash`);
  return join(root, hash.slice(0, 2), hash.slice(2, 4), hash);
}

/** Moodle's get_pathname_hash(): the sha1 of `/contextid/component/filearea/itemid` then filepath and filename. */
export function pathnameHash(f: {
  contextid: number;
  component: string;
  filearea: string;
  itemid: number;
  filepath: string;
  filename: string;
}): string {
  return createHash('sha1')
    .update(`/${f.contextid}/${f.component}/${f.filearea}/${f.itemid}${f.filepath}${f.filename}`)
    .digest('hex');
}

export interface PoolModes {
  filePermissions: number;
  directoryPermissions: number;
}

/** The size of the pool's copy of a content, or undefined when the pool has none. */
export async function pooledSize(filedir: string, hash: string): Promise<number | undefined> {
  try {
    return (await stat(contentPath(filedir, hash))).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Makes a folder and its missing parents with Moodle's directory mode, whatever the process umask. */
async function makeDirs(dir: string, mode: number): Promise<void> {
  const first = await mkdir(dir, { recursive: true, mode });
  if (first === undefined) return;
  for (let d = dir; d.length >= first.length; d = dirname(d)) await chmod(d, mode);
}

/**
 * Writes a content into a pool as file_system_filedir does: into a temporary file beside its place, renamed there
 * only once its bytes hash to the name it is given, so that a pool never holds a file under a wrong name or half of one.
 */
export async function storeContent(
  filedir: string,
  hash: string,
  chunks: AsyncIterable<Buffer> | Iterable<Buffer>,
  modes: PoolModes,
): Promise<number> {
  const path = contentPath(filedir, hash);
  await makeDirs(dirname(path), modes.directoryPermissions);
  const temp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  const digest = createHash('sha1');
  let size = 0;
  const file = await open(temp, 'wx', modes.filePermissions);
  try {
    try {
      for await (const chunk of chunks) {
        digest.update(chunk);
        size += chunk.length;
        await file.write(chunk);
      }
    } finally {
      await file.close();
    }
    const got = digest.digest('hex');
    if (got !== hash)
      throw new ContentError(`the content received hashes to ${got}, not to its contenthash ${hash}: not stored`);
    await chmod(temp, modes.filePermissions);
    await rename(temp, path);
    return size;
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}

/** A pool file's bytes, in chunks, hashed on the way: the last step throws if they do not match the name. */
export async function* readContent(filedir: string, hash: string): AsyncGenerator<Buffer> {
  const digest = createHash('sha1');
  for await (const chunk of createReadStream(contentPath(filedir, hash))) {
    digest.update(chunk as Buffer);
    yield chunk as Buffer;
  }
  const got = digest.digest('hex');
  if (got !== hash) throw new ContentError(`the source's copy of ${hash} hashes to ${got}: its file pool is damaged`);
}

/** Moves a content no row uses any more into the trash, as file_system_filedir::remove_file() does. */
export async function trashContent(filedir: string, trashdir: string, hash: string, modes: PoolModes): Promise<void> {
  const to = contentPath(trashdir, hash);
  await makeDirs(dirname(to), modes.directoryPermissions);
  try {
    await rename(contentPath(filedir, hash), to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
