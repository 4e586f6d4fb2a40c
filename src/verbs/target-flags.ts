import { Command as LineParser } from 'commander';
import parseArgs from 'string-argv';
import type { Selector } from '../registry/selector.ts';
import { UsageError } from '../core/errors.ts';

/** The target flags of VMoodle's run_command.php, plus the short aliases and the web picker's filters. */
export function addTargetOptions(cmd: LineParser): LineParser {
  return cmd
    .option('-t, --tohosts <names>', "instances by wwwroot or short name, comma separated, or '*' for all")
    .option('--hosts <names>', 'same as --tohosts')
    .option(
      '-m, --tohostsmatch <globs>',
      "globs over the whole wwwroot, comma separated ('*' any run, '?' one character)",
    )
    .option('--match <globs>', 'same as --tohostsmatch')
    .option('-e, --exclude <globs>', 'globs of wwwroots to leave out, comma separated')
    .option('-f, --fromhost <name>', 'the source host of copy commands, never a target (default: the master)')
    .option('--from <name>', 'same as --fromhost')
    .option('--include-disabled', 'also target disabled instances')
    .option('--contains <text>', 'keep hosts whose name, short name or wwwroot contains the text')
    .option('--not-contains <text>', 'keep hosts whose name, short name and wwwroot do not contain the text')
    .option('--regex </pattern/flags>', 'keep hosts a name of which matches; the extra flag n negates')
    .option('--master', 'the master alone (it has no registry row)');
}

type TargetFlags = Record<string, string | boolean | undefined>;

function either(opts: TargetFlags, long: string, alias: string): string | undefined {
  const a = opts[long] as string | undefined;
  const b = opts[alias] as string | undefined;
  if (a !== undefined && b !== undefined) throw new UsageError(`give --${alias} or its long form, not both`);
  return a ?? b;
}

export function selectorFrom(opts: TargetFlags): Selector {
  const tohosts = either(opts, 'tohosts', 'hosts');
  return {
    tohosts: tohosts === undefined ? undefined : tohosts.trim() === '*' ? '*' : tohosts.split(','),
    tohostsmatch: either(opts, 'tohostsmatch', 'match'),
    exclude: opts.exclude as string | undefined,
    fromhost: either(opts, 'fromhost', 'from'),
    includeDisabled: opts.includeDisabled === true,
    contains: opts.contains as string | undefined,
    notContains: opts.notContains as string | undefined,
    regex: opts.regex as string | undefined,
    ...(opts.master === true ? { master: true } : {}),
  };
}

/** A selector as the flags that select the same hosts, quoted for a chat line (what a "run on these" button carries). */
export function selectorFlags(selector: Selector): string {
  const q = (s: string) => `'${s.replaceAll("'", '')}'`;
  return [
    selector.tohosts ? `--hosts ${q(selector.tohosts === '*' ? '*' : selector.tohosts.join(','))}` : '',
    selector.tohostsmatch ? `--match ${q(selector.tohostsmatch)}` : '',
    selector.exclude ? `--exclude ${q(selector.exclude)}` : '',
    selector.fromhost ? `--from ${q(selector.fromhost)}` : '',
    selector.includeDisabled ? '--include-disabled' : '',
    selector.contains ? `--contains ${q(selector.contains)}` : '',
    selector.notContains ? `--not-contains ${q(selector.notContains)}` : '',
    selector.regex ? `--regex ${q(selector.regex)}` : '',
    selector.master ? '--master' : '',
  ]
    .filter(Boolean)
    .join(' ');
}

/** Target flags carried as text (a preview's button) back into a selector, with the same parser the verbs use. */
export function parseSelectorFlags(flags: string): Selector {
  const cmd = addTargetOptions(new LineParser('targets'))
    .exitOverride()
    .configureOutput({ writeOut: () => undefined, writeErr: () => undefined })
    .allowExcessArguments(false);
  cmd.parse(parseArgs(flags), { from: 'user' });
  return selectorFrom(cmd.opts());
}
