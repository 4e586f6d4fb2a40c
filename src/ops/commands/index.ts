import { errorKind } from '../../core/errors.ts';
import { closest } from 'fastest-levenshtein';
import type { CommandDef } from './command.ts';
import { COURSE_COMMANDS } from './courses.ts';
import { CRON_COMMANDS } from './cron.ts';
import { DELIVERY_COMMANDS } from './delivery.ts';
import { FILE_COMMANDS } from './files.ts';
import { GENERIC_COMMANDS } from './generic.ts';
import { LIFECYCLE_COMMANDS } from './lifecycle.ts';
import { MNET_COMMANDS } from './mnet.ts';
import { PLUGIN_COMMANDS } from './plugins.ts';
import { ROLE_COMMANDS } from './roles.ts';
import { SQL_COMMANDS } from './sql.ts';
import { UPGRADE_COMMANDS } from './upgrade.ts';
import { REGISTRY_COMMANDS } from './registry.ts';

/** Every command, by name. Adding a command is adding its definition to a category module. */
export const CATALOG: ReadonlyMap<string, CommandDef> = new Map(
  [
    ...GENERIC_COMMANDS,
    ...FILE_COMMANDS,
    ...SQL_COMMANDS,
    ...PLUGIN_COMMANDS,
    ...ROLE_COMMANDS,
    ...COURSE_COMMANDS,
    ...MNET_COMMANDS,
    ...CRON_COMMANDS,
    ...LIFECYCLE_COMMANDS,
    ...DELIVERY_COMMANDS,
    ...UPGRADE_COMMANDS,
    ...REGISTRY_COMMANDS,
  ].map((c) => [c.name, c]),
);

export class UnknownCommandError extends errorKind('unknown_command') {}

/** The nearest command name; a bare name (VMoodle operators often type one) is compared with the part after the category. */
function nearest(name: string): string {
  const names = [...CATALOG.keys()];
  if (name.includes('/')) return closest(name, names);
  const bare = new Map(names.map((n) => [n.slice(n.indexOf('/') + 1), n]));
  return bare.get(closest(name, [...bare.keys()])) as string;
}

export function findCommand(name: string): CommandDef {
  const command = CATALOG.get(name.toLowerCase());
  if (command) return command;
  throw new UnknownCommandError(`unknown command '${name}' (did you mean '${nearest(name.toLowerCase())}'?)`);
}
