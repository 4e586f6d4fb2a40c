import type { Command } from 'commander';
import { mergeParameters, parseAssignments, parseAttributes } from '../ops/attributes.ts';
import { UsageError, type CliContext } from './context.ts';
import { hostJson, printSelection, selectTargets } from './showtargets.ts';
import { addTargetOptions, selectorFrom } from './target-options.ts';

const COMMAND_NAME = /^[a-z]+\/[a-z][a-z0-9_]*$/i;

export function registerRun(program: Command, ctx: CliContext): void {
  addTargetOptions(
    program
      .command('run [command] [params...]')
      .description("plan a command on the selected hosts (VMoodle's run_command.php flags work as they are)")
      .option('-c, --command <name>', 'the command, category/name (showtargets lists the targets only)')
      .option('-a, --attributes <query>', 'parameters as a URL query string, e.g. key=maintenance_enabled&value=1')
      .option('-T, --test', 'resolve and print the targets only'),
  )
    .addHelpText('after', "\nExamples:\n  vmoodle run generic/setconfig --match '*.example.org' key=maintenance_enabled value=1\n  vmoodle run --command=generic/setconfig --tohostsmatch='*.example.org' --attributes='key=maintenance_enabled&value=1'")
    .action(async (positional: string | undefined, words: string[], opts, cmd: Command) => {
      const out = ctx.output(cmd);
      if (positional !== undefined && opts.command !== undefined && positional !== opts.command) {
        throw new UsageError(`two commands given: '${positional}' and --command '${opts.command}'`);
      }
      const name: string | undefined = opts.command ?? positional;
      if (name === undefined) throw new UsageError('missing command: vmoodle run <category/name> [name=value ...] (see vmoodle run --help)');
      if (name !== 'showtargets' && !COMMAND_NAME.test(name)) {
        throw new UsageError(`'${name}' is not a command name: expected category/name, e.g. generic/setconfig`);
      }
      const params = mergeParameters(opts.attributes !== undefined ? parseAttributes(opts.attributes) : {}, parseAssignments(words));
      const selection = await selectTargets(ctx, selectorFrom(opts));
      const listOnly = name === 'showtargets' || opts.test === true;
      out.data({
        command: listOnly ? undefined : name,
        parameters: listOnly ? undefined : params,
        planned: !listOnly,
        source: hostJson(selection.source),
        targets: selection.targets.map(hostJson),
        counts: selection.counts,
      });
      if (!listOnly) {
        out.line(`Plan: ${name}`);
        for (const [key, value] of Object.entries(params)) out.line(`  ${key} = ${value}`);
        out.line(`Source: ${selection.source.shortname}${selection.source.wwwroot ? ` (${selection.source.wwwroot})` : ''}`);
      }
      printSelection(out, selection);
      if (!listOnly) out.line('Nothing was run: this build plans commands but has no executor yet.');
    });
}
