import type { Command } from 'commander';
import { CATALOG, findCommand } from '../ops/catalog/index.ts';
import type { CommandDef } from '../ops/command.ts';
import type { CliContext } from './context.ts';
import type { Output } from './output.ts';

function describeCommand(out: Output, command: CommandDef): void {
  const traits = [
    typeof command.destructive === 'function' ? 'destructive unless a single SELECT' : command.destructive ? 'destructive' : '',
    command.reversible ? 'reversible (vmoodle runs revert)' : '',
    command.needsSource ? 'reads from the source host (--fromhost, default the master)' : '',
  ].filter(Boolean);
  out.line(`${command.name}: ${command.summary}`);
  if (traits.length) out.line(traits.join('; '));
  out.line();
  out.table(['PARAMETER', 'TYPE', 'DEFAULT', 'MEANING'], command.params.map((p) => [
    p.name, p.choices ? `${p.type}: ${p.choices.join('|')}` : p.type, p.default ?? (p.type === 'boolean' ? '0' : '(required)'), p.help ? `${p.label}; ${p.help}` : p.label,
  ]));
  const example = command.params.filter((p) => p.default === undefined && p.type !== 'boolean').map((p) => `${p.name}=…`).join(' ');
  out.line(`\nExample:\n  vmoodle run ${command.name} --match '*.example.org' ${example}`.trimEnd());
}

/** `vmoodle help` lists the verbs and every command of the catalogue; `vmoodle help <name>` explains one. */
export function registerHelp(program: Command, ctx: CliContext): void {
  program.helpCommand(false);
  program
    .command('help [name]')
    .description('the commands that can be run, or one command or verb explained')
    .action((name: string | undefined, _opts, cmd: Command) => {
      const out = ctx.output(cmd);
      if (name && name.includes('/')) {
        const command = findCommand(name);
        out.data({ ...command, destructive: typeof command.destructive === 'function' ? 'unless a single SELECT' : command.destructive });
        describeCommand(out, command);
        return;
      }
      if (name) {
        const verb = program.commands.find((c) => c.name() === name);
        if (!verb) {
          findCommand(name);
          return;
        }
        verb.outputHelp();
        return;
      }
      out.data([...CATALOG.values()].map((c) => ({ name: c.name, summary: c.summary })));
      if (out.json) return;
      program.outputHelp();
      out.line('\nCommands to run (vmoodle help <name> for one):');
      out.table(['COMMAND', 'WHAT IT DOES'], [...CATALOG.values()].map((c) => [c.name, c.summary]));
    });
}
