import type { Command } from 'commander';
import type { NewInstance } from '../registry/registry.ts';
import { instanceJson } from '../registry/status.ts';
import { addFieldOptions, fieldsFrom } from '../verbs/instance-fields.ts';
import type { CliContext } from './context.ts';

/**
 * The registry's maintenance on the command line alone: show, and add, whose password only the command line's
 * environment or a file gives (list, edit, enable and disable are verbs, the same in chat).
 */
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
      const fields = fieldsFrom(opts, ctx.io.env) as NewInstance;
      if (opts.disabled) fields.enabled = false;
      const instance = await (await ctx.app().registry()).add(fields);
      out.data(instanceJson(instance));
      out.line(`added ${instance.shortname} (${instance.vhostname}), id ${instance.id}${instance.enabled ? '' : ', disabled'}`);
    });
}
