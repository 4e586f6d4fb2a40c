import type { Command } from 'commander';
import type { Host } from '../registry/fleet.ts';
import { leftOutLine, resolveTargets, type Selection, type Selector } from '../registry/selector.ts';
import type { CliContext } from './context.ts';
import type { Output } from './output.ts';
import { addTargetOptions, selectorFrom } from '../verbs/target-flags.ts';

export async function selectTargets(ctx: CliContext, selector: Selector): Promise<Selection> {
  const fleet = await (await ctx.app().registry()).loadFleet();
  return resolveTargets(fleet, selector);
}

export const hostJson = (h: Host) => ({ id: h.id, kind: h.kind, shortname: h.shortname, name: h.name, wwwroot: h.wwwroot, enabled: h.enabled });

export function printSelection(out: Output, selection: Selection): void {
  const { counts } = selection;
  const notes = [
    `matched ${counts.matched}`,
    counts.excluded ? `excluded ${counts.excluded}` : '',
    counts.disabledLeftOut ? `disabled left out ${counts.disabledLeftOut}` : '',
    counts.sourceLeftOut ? 'source left out' : '',
    counts.filteredOut ? `filtered out ${counts.filteredOut}` : '',
  ].filter(Boolean);
  out.line(`${counts.targets} target${counts.targets === 1 ? '' : 's'} (${notes.join(', ')}; ${counts.registry} instances in the registry)`);
  out.table(
    ['SHORTNAME', 'NAME', 'WWWROOT', 'STATE'],
    selection.targets.map((h) => [h.shortname, h.name, h.wwwroot, h.kind === 'master' ? 'master' : h.enabled ? 'enabled' : 'disabled']),
  );
  for (const left of selection.leftOut) out.line(`Warning: ${leftOutLine(left)}`);
}

export function registerShowTargets(program: Command, ctx: CliContext): void {
  addTargetOptions(
    program
      .command('showtargets')
      .description('list the hosts a command would run on, without running anything')
      .addHelpText('after', "\nExample:\n  vmoodle showtargets --tohostsmatch='*.example.org' --exclude='*test*'"),
  ).action(async (opts, cmd: Command) => {
    const out = ctx.output(cmd);
    const selection = await selectTargets(ctx, selectorFrom(opts));
    out.data({ targets: selection.targets.map(hostJson), source: hostJson(selection.source), counts: selection.counts, leftOut: selection.leftOut.map(leftOutLine) });
    printSelection(out, selection);
  });
}
