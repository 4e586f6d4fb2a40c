import type { Command } from 'commander';
import { mergeParameters, parseAssignments, parseAttributes } from '../ops/param-words.ts';
import { createPlan } from '../ops/executor/planner.ts';
import { UsageError } from '../errors.ts';
import type { CliContext } from './context.ts';
import { cliActor, executePlan, printPlan } from './execute.ts';
import { hostJson, printSelection, selectTargets } from './showtargets.ts';
import { leftOutLine } from '../registry/selector.ts';
import { addTargetOptions, selectorFrom } from '../verbs/target-flags.ts';

const wholeNumber = (flag: string) => (value: string) => {
  if (!/^\d+$/.test(value)) throw new UsageError(`${flag} takes a whole number`);
  return Number(value);
};

export function registerRun(program: Command, ctx: CliContext): void {
  addTargetOptions(
    program
      .command('run [command] [params...]')
      .description("run a command on the selected hosts (VMoodle's run_command.php flags work as they are)")
      .option('-c, --command <name>', 'the command, category/name (see vmoodle help); showtargets lists the targets only')
      .option('-a, --attributes <query>', 'parameters as a URL query string, e.g. key=maintenance_enabled&value=1')
      .option('-T, --test', 'resolve and print the targets only')
      .option('--by-value <sql>', 'keep only targets where this SELECT returns a non-empty row')
      .option('--canary <n>', 'run this many targets first, then wait for `vmoodle runs go <id>`', wholeNumber('--canary'))
      .option('--max-failures <n|n%>', 'stop starting targets once more than this many failed (default 10%)')
      .option('-y, --yes', 'run without asking')
      .option('--confirm <count>', 'for a destructive command: the number of targets, typed to confirm')
      .option('--detach', 'start the run and return; follow it with vmoodle runs show <id>'),
  )
    .addHelpText('after', "\nExamples:\n  vmoodle run generic/setconfig --match '*.example.org' key=maintenance_enabled value=1 --yes\n  vmoodle run --command=generic/setconfig --tohostsmatch='*.example.org' --attributes='key=maintenance_enabled&value=1' -y\n  vmoodle run sql/multisql --hosts physics --confirm=1 sql=\"UPDATE {course} SET visible=0 WHERE id=:id\" id=5")
    .action(async (positional: string | undefined, words: string[], opts, cmd: Command) => {
      const out = ctx.output(cmd);
      if (positional !== undefined && opts.command !== undefined && positional !== opts.command) {
        throw new UsageError(`two commands given: '${positional}' and --command '${opts.command}'`);
      }
      const name: string | undefined = opts.command ?? positional;
      if (name === undefined) throw new UsageError('missing command: vmoodle run <category/name> [name=value ...] (see vmoodle help)');
      const params = mergeParameters(opts.attributes !== undefined ? parseAttributes(opts.attributes) : {}, parseAssignments(words));
      const selector = selectorFrom(opts);
      if (name === 'showtargets' || opts.test === true) {
        const selection = await selectTargets(ctx, selector);
        out.data({ source: hostJson(selection.source), targets: selection.targets.map(hostJson), counts: selection.counts, leftOut: selection.leftOut.map(leftOutLine) });
        printSelection(out, selection);
        return;
      }
      const rt = await ctx.app().ops();
      const plan = await createPlan(rt, {
        command: name, params, selector, requestedBy: cliActor(), via: 'cli', canary: opts.canary, maxFailures: opts.maxFailures, byValue: opts.byValue,
      });
      printPlan(out, plan);
      await executePlan(ctx, out, rt, plan, opts);
    });
}
