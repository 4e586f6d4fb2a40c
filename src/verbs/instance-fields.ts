import { readFileSync } from 'node:fs';
import { InvalidArgumentError, Option, type Command as LineParser } from 'commander';
import { UsageError } from '../core/errors.ts';
import type { InstanceFields } from '../registry/instance.ts';

const int = (flag: string) => (value: string) => {
  if (!/^-?\d+$/.test(value)) throw new InvalidArgumentError(`${flag} takes a whole number`);
  return Number(value);
};

const mnetValue = (value: string): number | 'new' => {
  if (value.toUpperCase() === 'NEW') return 'new';
  return int('--mnet')(value);
};

const bool = (flag: string) => (value: string) => {
  if (!['0', '1', 'true', 'false', 'yes', 'no'].includes(value.toLowerCase()))
    throw new InvalidArgumentError(`${flag} takes 0 or 1`);
  return ['1', 'true', 'yes'].includes(value.toLowerCase());
};

/** The registry fields an operator may set, named as VMoodle's nodelist.csv names them. */
export function addFieldOptions(cmd: LineParser, forAdd: boolean): LineParser {
  if (forAdd) {
    cmd
      .requiredOption('--vhostname <url>', 'the wwwroot, http(s)://host[/path]')
      .requiredOption('--shortname <name>', 'a short name without spaces')
      .option('--disabled', 'register the instance disabled');
  }
  return cmd
    .addOption(new Option('--name <name>', 'display name').makeOptionMandatory(forAdd))
    .option('--description <text>', 'description')
    .addOption(new Option('--vdbtype <type>', 'database type').choices(['mariadb', 'mysqli', 'postgres']))
    .option('--vdbhost <host[:port]>', 'database server (default localhost)')
    .option('--vdblogin <user>', 'database user (default root)')
    .option('--vdbpass-env <variable>', 'read the database password from this environment variable (command line only)')
    .option('--vdbpass-file <path>', 'read the database password from the first line of this file (command line only)')
    .addOption(
      new Option('--vdbname <name>', "database name (no '-', not ending with '_')").makeOptionMandatory(forAdd),
    )
    .option('--vdbprefix <prefix>', 'table prefix (default mdl_)')
    .option('--vdbpersist <0|1>', 'persistent connections', bool('--vdbpersist'))
    .addOption(new Option('--vdatapath <path>', 'moodledata folder (absolute path)').makeOptionMandatory(forAdd))
    .option('--mnet <n>', '-1 MNET off, 0 no subnet, n a subnet, NEW the next free subnet', mnetValue);
}

/**
 * Passwords never come from the command line's arguments, where any user of the machine can read them, nor from
 * chat: only the command line's environment or a file it can read (`env` undefined: a chat, which has neither).
 */
function readPassword(
  opts: Readonly<Record<string, unknown>>,
  env: Readonly<Record<string, string | undefined>> | undefined,
): string | undefined {
  if (opts.vdbpassEnv === undefined && opts.vdbpassFile === undefined) return undefined;
  if (!env)
    throw new UsageError(
      'a database password is never given in chat: set it with vmoodle instances edit on the command line (--vdbpass-env or --vdbpass-file)',
    );
  if (opts.vdbpassEnv && opts.vdbpassFile) throw new UsageError('give --vdbpass-env or --vdbpass-file, not both');
  if (typeof opts.vdbpassEnv === 'string') {
    const value = env[opts.vdbpassEnv];
    if (value === undefined) throw new UsageError(`--vdbpass-env: the variable ${opts.vdbpassEnv} is not set`);
    return value;
  }
  try {
    return readFileSync(opts.vdbpassFile as string, 'utf8').split('\n')[0] ?? '';
  } catch (err) {
    throw new UsageError(
      `--vdbpass-file: cannot read ${String(opts.vdbpassFile)} (${(err as NodeJS.ErrnoException).code})`,
    );
  }
}

/** The fields the options set, the password read where a password may come from. */
export function fieldsFrom(
  opts: Readonly<Record<string, unknown>>,
  env: Readonly<Record<string, string | undefined>> | undefined,
): Partial<InstanceFields> & { mnet?: number | 'new' } {
  const fields: Record<string, unknown> = {};
  for (const key of [
    'name',
    'description',
    'vdbtype',
    'vdbhost',
    'vdblogin',
    'vdbname',
    'vdbprefix',
    'vdbpersist',
    'vdatapath',
    'mnet',
    'shortname',
    'vhostname',
  ]) {
    if (opts[key] !== undefined) fields[key] = opts[key];
  }
  const password = readPassword(opts, env);
  if (password !== undefined) fields.vdbpass = password;
  return fields;
}
