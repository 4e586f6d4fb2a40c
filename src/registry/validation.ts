import { OpsError } from '../core/errors.ts';
import { posix } from 'node:path';
import { dbHostKey, type Instance, type InstanceFields } from './instance.ts';

export interface FieldError {
  field: keyof InstanceFields;
  message: string;
}

export class ValidationError extends OpsError {
  constructor(readonly errors: FieldError[]) {
    super('invalid_instance', errors.map((e) => `${e.field}: ${e.message}`).join('; '));
  }
}

export const VDBTYPES = ['mariadb', 'mysqli', 'postgres'] as const;

/** VMoodle strips the trailing slashes of a wwwroot before it stores or compares it. */
export function normaliseWwwroot(value: string): string {
  return value.trim().replace(/\/+$/, '');
}

function wwwrootProblem(value: string): string | undefined {
  if (!/^https?:\/\//i.test(value)) return `'${value}' must start with http:// or https://`;
  if (/\s/.test(value)) return `'${value}' must not contain spaces`;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    // biome-ignore lint/plugin: the answer is the problem with the value
    return `'${value}' is not a valid URL`;
  }
  if (!url.hostname) return `'${value}' has no host name`;
  if (url.username || url.password) return `'${value}' must not hold credentials`;
  if (url.search || url.hash) return `'${value}' must not hold a query or a fragment`;
  if (value.length > 255) return 'is longer than 255 characters';
  return undefined;
}

const same = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();

/** What a short name must not hold: target lists split at commas, globs read `*` and `?`, words split at spaces. */
const SHORTNAME_FORBIDDEN = /[\s,*?]/;

/** Folders whose contents belong to the system: a data folder is never one of them, nor inside the first group. */
const SYSTEM_TREES = [
  '/bin',
  '/boot',
  '/dev',
  '/etc',
  '/lib',
  '/lib32',
  '/lib64',
  '/proc',
  '/run',
  '/sbin',
  '/sys',
  '/usr',
];
const SYSTEM_FOLDERS = [
  '/',
  '/home',
  '/media',
  '/mnt',
  '/opt',
  '/root',
  '/srv',
  '/tmp',
  '/var',
  '/var/lib',
  '/var/tmp',
];

/** A data folder as the file system sees it: `.` and repeated or trailing slashes gone. */
export const resolveDataPath = (path: string) => posix.normalize(`${path}/`).replace(/(.)\/+$/, '$1');

function dataPathProblem(path: string): string | undefined {
  if (!path.startsWith('/')) return `'${path}' must be an absolute path`;
  if (path.length > 255) return 'is longer than 255 characters';
  if (path.split('/').includes('..')) return `'${path}' must not contain '..'`;
  const resolved = resolveDataPath(path);
  if (SYSTEM_FOLDERS.includes(resolved) || SYSTEM_TREES.includes(resolved)) return `'${path}' is a system folder`;
  const tree = SYSTEM_TREES.find((t) => resolved.startsWith(`${t}/`));
  if (tree) return `'${path}' is inside the system folder ${tree}`;
  return undefined;
}

/**
 * Checks a complete set of fields against VMoodle's rules and the other rows (`others` excludes the row being
 * edited). Returns every problem at once so a form or a command line can show them together.
 */
export function validateInstance(fields: InstanceFields, others: readonly Instance[]): FieldError[] {
  const errors: FieldError[] = [];
  const fail = (field: keyof InstanceFields, message: string) => errors.push({ field, message });

  if (!fields.name.trim()) fail('name', 'is required');
  else if (fields.name.length > 255) fail('name', 'is longer than 255 characters');

  if (!fields.shortname) fail('shortname', 'is required');
  else if (/\s/.test(fields.shortname)) fail('shortname', `'${fields.shortname}' must not contain spaces`);
  else if (SHORTNAME_FORBIDDEN.test(fields.shortname))
    fail('shortname', `'${fields.shortname}' must not contain a comma, * or ?`);
  else if (fields.shortname.length > 80) fail('shortname', 'is longer than 80 characters');
  else {
    const clash = others.find((o) => same(o.shortname, fields.shortname));
    if (clash) fail('shortname', `'${fields.shortname}' is already used by ${clash.vhostname}`);
  }

  const problem = wwwrootProblem(fields.vhostname);
  if (problem) fail('vhostname', problem);
  else {
    const clash = others.find((o) => same(normaliseWwwroot(o.vhostname), fields.vhostname));
    if (clash) fail('vhostname', `'${fields.vhostname}' is already registered (instance ${clash.shortname})`);
  }

  if (!(VDBTYPES as readonly string[]).includes(fields.vdbtype)) {
    fail('vdbtype', `'${fields.vdbtype}' must be one of ${VDBTYPES.join(', ')}`);
  }
  if (!/^[A-Za-z0-9._-]{1,74}(:\d{1,5})?$/.test(fields.vdbhost))
    fail('vdbhost', `'${fields.vdbhost}' must be a host or host:port`);
  if (!/^\S{1,16}$/.test(fields.vdblogin)) fail('vdblogin', 'must be 1 to 16 characters without spaces');
  if (fields.vdbpass.length > 32) fail('vdbpass', 'is longer than 32 characters');

  if (!fields.vdbname) fail('vdbname', 'is required');
  else if (fields.vdbname.includes('-')) fail('vdbname', `'${fields.vdbname}' must not contain '-'`);
  else if (fields.vdbname.endsWith('_')) fail('vdbname', `'${fields.vdbname}' must not end with '_'`);
  else if (!/^[A-Za-z0-9_$]{1,64}$/.test(fields.vdbname))
    fail('vdbname', `'${fields.vdbname}' may hold only letters, digits, _ and $ (64 at most)`);

  // As with data folders, a disabled row may keep the tables of the instance that replaced it; two enabled ones never.
  const sameTables =
    fields.enabled &&
    others.find(
      (o) =>
        o.enabled &&
        dbHostKey(o.vdbhost) === dbHostKey(fields.vdbhost) &&
        o.vdbname === fields.vdbname &&
        o.vdbprefix === fields.vdbprefix,
    );
  if (sameTables)
    fail(
      'vdbname',
      `${fields.vdbname} with the prefix ${fields.vdbprefix} holds the tables of enabled instance ${sameTables.shortname}`,
    );

  if (fields.vdbprefix === 'vmoodle_') fail('vdbprefix', "'vmoodle_' is reserved by VMoodle");
  else if (!/^[a-z_][a-z0-9_]{0,9}$/.test(fields.vdbprefix)) {
    fail('vdbprefix', `'${fields.vdbprefix}' may hold only lower-case letters, digits and _ (10 at most)`);
  }

  const pathProblem = dataPathProblem(fields.vdatapath);
  if (pathProblem) fail('vdatapath', pathProblem);
  else if (fields.enabled) {
    const resolved = resolveDataPath(fields.vdatapath);
    const clash = others.find((o) => o.enabled && resolveDataPath(o.vdatapath) === resolved);
    if (clash)
      fail('vdatapath', `'${fields.vdatapath}' is already the data folder of enabled instance ${clash.shortname}`);
  }

  if (!Number.isInteger(fields.mnet) || fields.mnet < -1 || fields.mnet > 32767) {
    fail('mnet', `'${fields.mnet}' must be -1 (MNET off), 0 (no subnet) or a subnet number n > 0`);
  }
  return errors;
}

/** The fields selection and the executor rely on: a row that breaks one of them is never a target. */
const SELECTION_FIELDS: ReadonlyArray<keyof InstanceFields> = [
  'shortname',
  'vhostname',
  'vdbhost',
  'vdbname',
  'vdbprefix',
  'vdatapath',
];

/**
 * Rows another tool wrote may break the rules this product keeps: each such row, with why, so that selection
 * leaves it out and says so. Short names and wwwroots used by two rows make both ambiguous.
 */
export function brokenRows(rows: readonly Instance[]): Map<number, string> {
  const broken = new Map<number, string>();
  const uses = (key: (i: Instance) => string) => {
    const count = new Map<string, number>();
    for (const row of rows) count.set(key(row), (count.get(key(row)) ?? 0) + 1);
    return count;
  };
  const shortnames = uses((i) => i.shortname.toLowerCase());
  const wwwroots = uses((i) => normaliseWwwroot(i.vhostname).toLowerCase());
  for (const row of rows) {
    const problems = validateInstance({ ...row, vhostname: normaliseWwwroot(row.vhostname) }, [])
      .filter((e) => SELECTION_FIELDS.includes(e.field))
      .map((e) => `${e.field}: ${e.message}`);
    const twins = shortnames.get(row.shortname.toLowerCase()) ?? 0;
    if (twins > 1 && row.shortname) problems.push(`shortname: '${row.shortname}' is used by ${twins} rows`);
    const sameRoot = wwwroots.get(normaliseWwwroot(row.vhostname).toLowerCase()) ?? 0;
    if (sameRoot > 1) problems.push(`vhostname: '${row.vhostname}' is used by ${sameRoot} rows`);
    if (problems.length > 0) broken.set(row.id, problems.join('; '));
  }
  return broken;
}
