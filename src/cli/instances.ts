import type { Command as LineParser } from 'commander';
import { EXIT_USAGE, UsageError } from '../core/errors.ts';
import type { NewInstance } from '../registry/registry.ts';
import { instanceJson } from '../registry/status.ts';
import { dbHostKey, type Instance } from '../registry/instance.ts';
import { parseMysqlUrl } from '../core/db/mysql-url.ts';
import type { Backend } from '../verbs/backend.ts';
import { addFieldOptions, fieldsFrom } from '../verbs/instance-fields.ts';
import type { CliContext } from './context.ts';

/** Says so when a row reaches its database with the master's own login, which can read the master's registry. */
function sharedLoginWarning(
  app: Backend,
  rows: ReadonlyArray<Pick<Instance, 'shortname' | 'vdbhost' | 'vdblogin'>>,
): string | undefined {
  const master = parseMysqlUrl(app.urls.mysqlUrl);
  const shared = rows
    .filter((r) => r.vdblogin === master.user && dbHostKey(r.vdbhost) === dbHostKey(`${master.host}:${master.port}`))
    .map((r) => r.shortname);
  if (shared.length === 0) return undefined;
  return `Warning: ${shared.join(', ')} ${shared.length === 1 ? 'uses' : 'use'} the master's database login (${master.user}): SQL run there can read the master's registry and every other database it can; give ${shared.length === 1 ? 'it a login' : 'each a login'} of its own (docs/security.md, hardening)`;
}

/**
 * The registry's maintenance on the command line alone: show; add, whose password only the command line's
 * environment or a file gives; register, which reads files on this machine (list, edit, enable and disable are
 * verbs, the same in chat).
 */
export function registerInstances(program: LineParser, ctx: CliContext): void {
  const instances = program
    .command('instances')
    .description('the registry of Moodle instances (VMoodle local_vmoodle)');

  instances
    .command('show <name>')
    .description('one instance, by id, short name or wwwroot (the database password is never shown)')
    .addHelpText('after', '\nExample:\n  vmoodle instances show physics')
    .action(async (name: string, _opts, cmd: LineParser) => {
      const out = ctx.output(cmd);
      const instance = await (await ctx.app().registry()).get(name);
      const view = instanceJson(instance);
      out.data(view);
      out.table(
        ['FIELD', 'VALUE'],
        Object.entries(view).map(([k, v]) => [k, String(v)]),
      );
    });

  addFieldOptions(instances.command('add').description('register an instance'), true)
    .addHelpText(
      'after',
      '\nExample:\n  vmoodle instances add --vhostname=https://law.example.org --shortname=law --name=Law \\\n    --vdbname=moodle_law --vdatapath=/var/moodledata/law --vdbpass-env=LAW_DB_PASSWORD',
    )
    .action(async (opts, cmd: LineParser) => {
      const out = ctx.output(cmd);
      const fields = fieldsFrom(opts, ctx.io.env) as NewInstance;
      if (opts.disabled) fields.enabled = false;
      const instance = await (await ctx.app().registry()).add(fields);
      out.data(instanceJson(instance));
      out.line(
        `added ${instance.shortname} (${instance.vhostname}), id ${instance.id}${instance.enabled ? '' : ', disabled'}`,
      );
      const warning = sharedLoginWarning(ctx.app(), [instance]);
      if (warning) out.line(warning);
    });

  instances
    .command('register <config...>')
    .description(
      "register existing Moodles from their config.php files on this machine, read as text, never run (VMoodle's integrate_vmoodles.php)",
    )
    .option('-l, --lint', 'read every file and report each problem; register nothing')
    .addHelpText(
      'after',
      '\nExample:\n  vmoodle instances register /srv/law/moodle/config.php /srv/art/moodle/config.php --lint',
    )
    .action(async (files: string[], opts: { lint?: boolean }, cmd: LineParser) => {
      const out = ctx.output(cmd);
      const registry = await ctx.app().registry();
      const { readRegistrations } = await import('../ops/lifecycle/register.ts');
      const { registrations, problems } = await readRegistrations(
        files,
        await registry.loadAll(),
        ctx.app().config.master.wwwroot,
      );
      if (problems.length) {
        out.data({ problems, registered: [] });
        out.table(
          ['FILE', 'PROBLEM'],
          problems.map((p) => [p.file, p.message]),
        );
        out.line(`${problems.length} problem${problems.length === 1 ? '' : 's'}, nothing registered`);
        ctx.exitCode = EXIT_USAGE;
        return;
      }
      const rows = registrations.map((r) => [
        r.fields.shortname,
        r.fields.vhostname,
        r.fields.name,
        `${r.fields.vdbhost}/${r.fields.vdbname} ${r.fields.vdbprefix}`,
        r.fields.vdatapath,
        r.vmoodleBoot ? 'VMoodle master' : '',
      ]);
      if (opts.lint) {
        out.data({
          lint: true,
          instances: registrations.map((r) => ({
            ...r.fields,
            vdbpass: r.fields.vdbpass ? 'set' : 'not set',
            file: r.file,
            vmoodleBoot: r.vmoodleBoot,
          })),
        });
        out.table(['SHORTNAME', 'WWWROOT', 'NAME', 'DATABASE', 'DATAROOT', 'NOTE'], rows);
        out.line(
          `${registrations.length} file${registrations.length === 1 ? '' : 's'} can be registered; nothing registered (--lint)`,
        );
        return;
      }
      const added = [];
      for (const r of registrations) added.push(await registry.add(r.fields));
      out.data({ registered: added.map(instanceJson) });
      out.table(['SHORTNAME', 'WWWROOT', 'NAME', 'DATABASE', 'DATAROOT', 'NOTE'], rows);
      out.line(`registered ${added.length}: ${added.map((i) => `${i.shortname} (id ${i.id})`).join(', ')}`);
      const warning = sharedLoginWarning(ctx.app(), added);
      if (warning) out.line(warning);
    });

  instances
    .command('own-login <names...>')
    .description(
      "give instances a database login of their own (vmi_…, Moodle's rights on their own database only), made by their server's provisioning account",
    )
    .addHelpText('after', '\nExample:\n  vmoodle instances own-login law arts')
    .action(async (names: string[], _opts, cmd: LineParser) => {
      const out = ctx.output(cmd);
      const app = ctx.app();
      const [rt, registry] = [await app.ops(), await app.registry()];
      const { giveOwnLogin } = await import('../ops/lifecycle/own-login.ts');
      const moved: Array<{ shortname: string; login: string }> = [];
      for (const name of names) {
        const instance = await registry.get(name);
        const login = await giveOwnLogin(rt.moodle, instance, (server) => rt.provisioning(server));
        await registry.edit(instance.shortname, { vdblogin: login.user, vdbpass: login.password });
        moved.push({ shortname: instance.shortname, login: login.user });
      }
      out.data({ moved });
      out.table(
        ['SHORTNAME', 'LOGIN'],
        moved.map((m) => [m.shortname, m.login]),
      );
      out.line(
        `${moved.length} instance${moved.length === 1 ? '' : 's'} moved to a login of ${moved.length === 1 ? 'its' : 'their'} own; the old login is left as it was`,
      );
    });

  instances
    .command('generateconfigs [names...]')
    .description(
      "write a standalone config.php for each instance (all enabled ones by default) into a folder, to run it without VMoodle (VMoodle's generateconfigs)",
    )
    .requiredOption('--out <folder>', 'the folder the config-<shortname>.php files go to (created, mode 0750)')
    .option('--include-disabled', 'also the disabled instances')
    .option('--replace', 'overwrite files already in the folder')
    .addHelpText('after', '\nExample:\n  vmoodle instances generateconfigs --out /root/standalone-configs law arts')
    .action(
      async (names: string[], opts: { out: string; includeDisabled?: boolean; replace?: boolean }, cmd: LineParser) => {
        const out = ctx.output(cmd);
        const registry = await ctx.app().registry();
        const all = names.length
          ? await Promise.all(names.map((n) => registry.get(n)))
          : (await registry.loadAll()).filter((i) => opts.includeDisabled || i.enabled);
        if (all.length === 0) throw new UsageError('no instance to write a config.php for');
        const { writeStandaloneConfigs } = await import('../ops/lifecycle/standalone-config.ts');
        // The registry is where the fleet keeps each instance's database password, as the executor reads it.
        const written = await writeStandaloneConfigs(
          opts.out,
          all.map((instance) => ({ instance, password: instance.vdbpass })),
          opts.replace === true,
        );
        out.data({ written: written.map((path, i) => ({ shortname: all[i]?.shortname, path })) });
        out.table(
          ['SHORTNAME', 'FILE'],
          written.map((path, i) => [all[i]?.shortname ?? '', path]),
        );
        out.line(
          `wrote ${written.length} config.php file${written.length === 1 ? '' : 's'} (mode 0640) into ${opts.out}`,
        );
      },
    );
}
