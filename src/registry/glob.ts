import { errorKind } from '../core/errors.ts';
/**
 * Host globs, as operators expect them and unlike VMoodle's: the whole wwwroot must match, letters match
 * regardless of case, `*` is any run of characters, `?` exactly one, and every other character is itself
 * (a `.` or `/` is just that character).
 */
export interface HostGlob {
  readonly source: string;
  test(value: string): boolean;
}

export class GlobError extends errorKind('bad_selection') {}

const escapeRegExp = (s: string) => s.replace(/[\\^$.|+()[\]{}]/g, '\\$&');

export function compileGlob(source: string, flag: string): HostGlob {
  if (source === '') throw new GlobError(`${flag}: an empty pattern matches nothing; remove the extra comma`);
  if (/\s/.test(source)) throw new GlobError(`${flag}: pattern '${source}' contains a space; host names never do`);
  if (/[[\]{}]/.test(source)) {
    throw new GlobError(
      `${flag}: pattern '${source}' uses [ ] or { }, which are not supported; use * and ? (e.g. '*.example.org')`,
    );
  }
  const body = [...source].map((ch) => (ch === '*' ? '.*' : ch === '?' ? '.' : escapeRegExp(ch))).join('');
  const re = new RegExp(`^${body}$`, 'is');
  return { source, test: (value: string) => re.test(value) };
}

/** A comma-separated list of globs, as `--tohostsmatch` and `--exclude` take. */
export function compileGlobList(list: string, flag: string): HostGlob[] {
  return list.split(',').map((part) => compileGlob(part.trim(), flag));
}
