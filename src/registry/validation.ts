import type { Instance, InstanceFields } from './instance.ts';

export interface FieldError {
  field: keyof InstanceFields;
  message: string;
}

export class ValidationError extends Error {
  constructor(readonly errors: FieldError[]) {
    super(errors.map((e) => `${e.field}: ${e.message}`).join('; '));
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
    return `'${value}' is not a valid URL`;
  }
  if (!url.hostname) return `'${value}' has no host name`;
  if (url.username || url.password) return `'${value}' must not hold credentials`;
  if (url.search || url.hash) return `'${value}' must not hold a query or a fragment`;
  if (value.length > 255) return 'is longer than 255 characters';
  return undefined;
}

const same = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();

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
  if (!/^[A-Za-z0-9._-]{1,74}(:\d{1,5})?$/.test(fields.vdbhost)) fail('vdbhost', `'${fields.vdbhost}' must be a host or host:port`);
  if (!/^\S{1,16}$/.test(fields.vdblogin)) fail('vdblogin', 'must be 1 to 16 characters without spaces');
  if (fields.vdbpass.length > 32) fail('vdbpass', 'is longer than 32 characters');

  if (!fields.vdbname) fail('vdbname', 'is required');
  else if (fields.vdbname.includes('-')) fail('vdbname', `'${fields.vdbname}' must not contain '-'`);
  else if (fields.vdbname.endsWith('_')) fail('vdbname', `'${fields.vdbname}' must not end with '_'`);
  else if (!/^[A-Za-z0-9_$]{1,64}$/.test(fields.vdbname)) fail('vdbname', `'${fields.vdbname}' may hold only letters, digits, _ and $ (64 at most)`);

  if (fields.vdbprefix === 'vmoodle_') fail('vdbprefix', "'vmoodle_' is reserved by VMoodle");
  else if (!/^[a-z_][a-z0-9_]{0,9}$/.test(fields.vdbprefix)) {
    fail('vdbprefix', `'${fields.vdbprefix}' may hold only lower-case letters, digits and _ (10 at most)`);
  }

  if (!fields.vdatapath.startsWith('/')) fail('vdatapath', `'${fields.vdatapath}' must be an absolute path`);
  else if (fields.vdatapath.length > 255) fail('vdatapath', 'is longer than 255 characters');
  else if (fields.enabled) {
    const clash = others.find((o) => o.enabled && o.vdatapath.replace(/\/+$/, '') === fields.vdatapath.replace(/\/+$/, ''));
    if (clash) fail('vdatapath', `'${fields.vdatapath}' is already the data folder of enabled instance ${clash.shortname}`);
  }

  if (!Number.isInteger(fields.mnet) || fields.mnet < -1 || fields.mnet > 32767) {
    fail('mnet', `'${fields.mnet}' must be -1 (MNET off), 0 (no subnet) or a subnet number n > 0`);
  }
  return errors;
}
