import { Command as LineParser, CommanderError } from 'commander';
import { closest } from 'fastest-levenshtein';
import { UsageError } from '../core/errors.ts';
import { DELIVERY_VERBS } from './delivery-verbs.ts';
import { INFO_VERBS } from './info-verbs.ts';
import { commandRefusal, PLAN_VERBS } from './plan-verbs.ts';
import { NODELIST_VERBS } from './nodelist-verbs.ts';
import { REGISTRY_VERBS } from './registry-verbs.ts';
import { RUN_VERBS } from './run-verbs.ts';
import { TEMPLATE_VERBS } from './template-verbs.ts';
import { defineVerb, type Session, type VerbDef, type View } from './verb.ts';

export const help = defineVerb<{ name?: string }>({
  path: ['help'],
  aliases: [],
  role: 'viewer',
  summary: 'the verbs and commands you may use, or one of them explained',
  examples: ['help', 'help generic/setconfig', 'help cancel'],
  syntax: (cmd) => cmd.argument('[name]', 'a command (category/name) or a verb'),
  args: (operands) => (typeof operands[0] === 'string' ? { name: operands[0] } : {}),
  run: async (session, { name }) => {
    const { CATALOG, findCommand } = await import('../ops/commands/index.ts');
    const verbs = VERBS.filter((v) => !session.refusal(v));
    const commands = [...CATALOG.values()].filter((c) => !commandRefusal(session, c));
    if (name?.includes('/')) return { kind: 'help', verbs, commands, command: findCommand(name) };
    if (name) return { kind: 'help', verbs, commands, verb: findVerb(name.split(/\s+/)).verb };
    return { kind: 'help', verbs, commands };
  },
});

/** Every control verb, for the command line, the terminal chat and Slack alike. */
export const VERBS: readonly VerbDef<never>[] = [
  ...PLAN_VERBS,
  ...RUN_VERBS,
  ...INFO_VERBS,
  ...REGISTRY_VERBS,
  ...TEMPLATE_VERBS,
  ...NODELIST_VERBS,
  ...DELIVERY_VERBS,
  help as VerbDef<never>,
];

/** The groups the command line nests verbs under (`vmoodle runs cancel`); chat takes both forms. */
const GROUPS = new Set(VERBS.filter((v) => v.path.length > 1).map((v) => v.path[0] as string));

/**
 * The verb a line's first words name, and how many words that took: a full path (`runs cancel`), a one-word verb
 * (`run`) or a short form (`cancel`, `status`).
 */
export function findVerb(words: readonly string[]): { verb: VerbDef<never>; used: number } {
  const [first = 'help', second] = words.map((w) => w.toLowerCase());
  const full = VERBS.find((v) => v.path.length === 2 && v.path[0] === first && v.path[1] === second);
  if (full) return { verb: full, used: 2 };
  const one = VERBS.find((v) => (v.path.length === 1 && v.path[0] === first) || v.aliases.includes(first));
  if (one) return { verb: one, used: 1 };
  const names = VERBS.flatMap((v) => [v.path.join(' '), ...v.aliases]);
  const typed = GROUPS.has(first) && second ? `${first} ${second}` : first;
  throw new UsageError(`unknown verb '${typed}' (did you mean '${closest(typed, names)}'?)`, 'help lists the verbs');
}

/** A parser for one verb: the verb's own syntax, its errors and its help thrown rather than printed. */
function verbParser(verb: VerbDef<never>): { cmd: LineParser; output: () => string } {
  let output = '';
  const cmd = verb
    .syntax(new LineParser(verb.path.join(' ')).description(verb.summary))
    .exitOverride()
    .configureOutput({ writeOut: (text) => void (output += text), writeErr: () => undefined })
    .allowExcessArguments(false);
  cmd.addHelpText('after', `\nExamples:\n${verb.examples.map((e) => `  ${e}`).join('\n')}`);
  return { cmd, output: () => output };
}

/** A chat line's verb and typed arguments, or its help text when it asked for `--help`. */
export type ParsedLine = { verb: VerbDef<never>; args: never } | { help: string };

export function parseLine(words: readonly string[]): ParsedLine {
  const { verb, used } = findVerb(words);
  const { cmd, output } = verbParser(verb);
  try {
    cmd.parse(words.slice(used) as string[], { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError && err.code === 'commander.helpDisplayed') return { help: output() };
    throw err;
  }
  return { verb, args: verb.args(cmd.processedArgs, cmd.opts()) as never };
}

/** Runs a verb for a session: access first, then the verb. Every front end comes through here. */
export async function invoke<A>(session: Session, verb: VerbDef<A>, args: A): Promise<View> {
  session.authorize(verb);
  return verb.run(session, args);
}
