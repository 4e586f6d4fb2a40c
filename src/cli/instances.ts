import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { publicView, type Instance, type InstanceFields } from '../registry/instance.ts';
import type { InstanceChanges, NewInstance } from '../registry/registry.ts';
import { cronLate, instanceState } from '../registry/status.ts';
import { UsageError } from '../errors.ts';
import type { CliContext } from './context.ts';
import type { CliIO } from './output.ts';

const int = (flag: string) => (value: string) => {
  if (!/^-?\d+$/.test(value)) throw new InvalidArgumentError(`${flag} takes a whole number`);
  return Number(value);
};

const mnetValue = (value: string): number | 'new' => {
  if (value.toUpperCase() === 'NEW') return 'new';
  return int('--mnet')(value);
};

const bool = (flag: string) => (value: string) => {
  if (!['0', '1', 'true', 'false', 'yes', 'no'].includes(value.toLowerCase())) throw new InvalidArgumentError(`${flag} takes 0 or 1`);
  return ['1', 'true', 'yes'].includes(value.toLowerCase());
};

/** The registry fields an operator may set, named as VMoodle's nodelist.csv names them. */
function addFieldOptions(cmd: Command, forAdd: boolean): Command {
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
    .option('--vdbpass-env <variable>', 'read the database password from this environment variable')
    .option('--vdbpass-file <path>', 'read the database password from the first line of this file')
    .addOption(new Option('--vdbname <name>', "database name (no '-', not ending with '_')").makeOptionMandatory(forAdd))
    .option('--vdbprefix <prefix>', 'table prefix (default mdl_)')
    .option('--vdbpersist <0|1>', 'persistent connections', bool('--vdbpersist'))
    .addOption(new Option('--vdatapath <path>', 'moodledata folder (absolute path)').makeOptionMandatory(forAdd))
    .option('--mnet <n>', '-1 MNET off, 0 no subnet, n a subnet, NEW the next free subnet', mnetValue);
}

/** Passwords never come from the command line, where any user of the machine can read them. */
function readPassword(opts: Record<string, unknown>, io: CliIO): string | undefined {
  if (opts.vdbpassEnv && opts.vdbpassFile) throw new UsageError('give --vdbpass-env or --vdbpass-file, not both');
  if (typeof opts.vdbpassEnv === 'string') {
    const value = io.env[opts.vdbpassEnv];
    if (value === undefined) throw new UsageError(`--vdbpass-env: the variable ${opts.vdbpassEnv} is not set`);
    return value;
  }
  if (typeof opts.vdbpassFile === 'string') {
    try {
      return readFileSync(opts.vdbpassFile, 'utf8').split('\n')[0] ?? '';
    } catch (err) {
      throw new UsageError(`--vdbpass-file: cannot read ${opts.vdbpassFile} (${(err as NodeJS.ErrnoException).code})`);
    }
  }
  return undefined;
}

function fieldsFrom(opts: Record<string, unknown>, io: CliIO): Partial<InstanceFields> & { mnet?: number | 'new' } {
  const fields: Record<string, unknown> = {};
  for (const key of ['name', 'description', 'vdbtype', 'vdbhost', 'vdblogin', 'vdbname', 'vdbprefix', 'vdbpersist', 'vdatapath', 'mnet', 'shortname', 'vhostname']) {
    if (opts[key] !== undefined) fields[key] = opts[key];
  }
  const password = readPassword(opts, io);
  if (password !== undefined) fields.vdbpass = password;
  return fields;
}

/** An instance as the command line shows it: never its password. */
export function instanceJson(instance: Instance) {
  return { ...publicView(instance), state: instanceState(instance), cronLate: cronLate(instance) };
}

/** The registry's maintenance (the listing is the verb `instances list`). */
export function registerInstances(program: Command, ctx: CliContext): void {
  const instances = program.command('instances').description('the registry of Moodle instances (VMoodle local_vmoodle)');

  instances
    .command('show <name>')
    .description('one instance, by id, short name or wwwroot (the database password is never shown)')
    .addHelpText('after', '\nExample:\n  vmoodle instances show physics')
    .action(async (name: string, _opts, cmd: Command) => {
      const out = ctx.output(cmd);
      const instance = await (await ctx.app().registry()).get(name);
      const view = instanceJson(instance);
      out.data(view);
      out.table(['FIELD', 'VALUE'], Object.entries(view).map(([k, v]) => [k, String(v)]));
    });

  addFieldOptions(instances.command('add').description('register an instance'), true)
    .addHelpText('after', '\nExample:\n  vmoodle instances add --vhostname=https://law.example.org --shortname=law --name=Law \\\n    --vdbname=moodle_law --vdatapath=/var/moodledata/law --vdbpass-env=LAW_DB_PASSWORD')
    .action(async (opts, cmd: Command) => {
      const out = ctx.output(cmd);
      const fields = fieldsFrom(opts, ctx.io) as NewInstance;
      if (opts.disabled) fields.enabled = false;
      const instance = await (await ctx.app().registry()).add(fields);
      out.data(instanceJson(instance));
      out.line(`added ${instance.shortname} (${instance.vhostname}), id ${instance.id}${instance.enabled ? '' : ', disabled'}`);
    });

  addFieldOptions(instances.command('edit <name>').description('change registry fields of an instance (not its short name or wwwroot)'), false)
    .addHelpText('after', '\nExample:\n  vmoodle instances edit law --vdbhost=db2.example.org:3306 --mnet=NEW')
    .action(async (name: string, opts, cmd: Command) => {
      const out = ctx.output(cmd);
      const registry = await ctx.app().registry();
      const changes = fieldsFrom(opts, ctx.io);
      if (Object.keys(changes).length === 0) throw new UsageError('nothing to change: give at least one field option (see --help)');
      const instance = await registry.edit(name, changes as InstanceChanges);
      out.data(instanceJson(instance));
      out.line(`updated ${instance.shortname}: ${Object.keys(changes).join(', ')}`);
    });

  for (const [verb, enabled] of [['enable', true], ['disable', false]] as const) {
    instances
      .command(`${verb} <names...>`)
      .description(`${verb} instances, by id, short name or wwwroot`)
      .addHelpText('after', `\nExample:\n  vmoodle instances ${verb} physics chemistry`)
      .action(async (names: string[], _opts, cmd: Command) => {
        const out = ctx.output(cmd);
        const changed = await (await ctx.app().registry()).setEnabled(names, enabled);
        out.data({ changed: changed.map((i) => i.shortname) });
        const already = names.length - changed.length;
        out.line(`${verb}d ${changed.length}${changed.length ? `: ${changed.map((i) => i.shortname).join(', ')}` : ''}${already > 0 ? ` (${already} already ${verb}d)` : ''}`);
      });
  }
}
