import { closest } from 'fastest-levenshtein';
import type { CommandDef } from '../command.ts';
import { GENERIC_COMMANDS } from './generic.ts';
import { SQL_COMMANDS } from './sql.ts';

/** Every command, by name. Adding a command is adding its definition to a category module. */
export const CATALOG: ReadonlyMap<string, CommandDef> = new Map([...GENERIC_COMMANDS, ...SQL_COMMANDS].map((c) => [c.name, c]));

export class UnknownCommandError extends Error {}

export function findCommand(name: string): CommandDef {
  const command = CATALOG.get(name.toLowerCase());
  if (command) return command;
  const near = closest(name.toLowerCase(), [...CATALOG.keys()]);
  throw new UnknownCommandError(`unknown command '${name}' (did you mean '${near}'?); vmoodle help lists them`);
}
