import { UsageError } from '../core/errors.ts';
import { WHERE_FIELDS, type Instance } from '../registry/instance.ts';
import type { InstanceChanges } from '../registry/registry.ts';
import { instanceJson } from '../registry/status.ts';
import { addFieldOptions, fieldsFrom } from './instance-fields.ts';
import { defineVerb, type Session, type VerbDef, type View } from './verb.ts';
import { afterPlan } from './plan-verbs.ts';

/**
 * The fields that decide where a login is sent and which folders are the instance's: only an admin changes them
 * (docs/security.md), since a row pointed elsewhere hands the instance's password, or another's files, to whoever is there.
 */
const ADMIN_FIELDS = [...WHERE_FIELDS, 'vdbpass'];

/** In chat, an admin's edit of where an instance is becomes a plan of registry/edit, old → new, for a second person. */
async function planWhereEdit(
  session: Session,
  name: string,
  changes: Readonly<Record<string, unknown>>,
): Promise<View> {
  const others = Object.keys(changes).filter((f) => !(WHERE_FIELDS as readonly string[]).includes(f));
  if (others.length)
    throw new UsageError(
      `edit ${others.join(', ')} on its own: where the database and dataroot are is planned and approved apart`,
    );
  const { createPlan } = await import('../ops/executor/planner.ts');
  const params = Object.fromEntries(Object.entries(changes).map(([f, v]) => [f, String(v)]));
  const planned = await createPlan(await session.ops(), {
    command: 'registry/edit',
    params,
    selector: { tohosts: [name], includeDisabled: true },
    requestedBy: session.actor.id,
    via: session.via,
  });
  return afterPlan(session, planned);
}

/**
 * Edits a registry row. Short name and wwwroot are the instance's identity and stay (VMoodle's edit form shows them
 * read-only); a password comes only from the command line's environment or a file.
 */
export const editInstance = defineVerb<{ name: string; opts: Readonly<Record<string, unknown>> }>({
  path: ['instances', 'edit'],
  aliases: [],
  role: 'operator',
  summary: 'change registry fields of an instance (not its short name or wwwroot)',
  examples: ['instances edit law --vdbhost=db2.example.org:3306 --mnet=NEW'],
  syntax: (cmd) => addFieldOptions(cmd.argument('<name>', 'the instance, by id, short name or wwwroot'), false),
  args: (operands, opts) => ({ name: String(operands[0]), opts }),
  run: async (session, { name, opts }) => {
    const changes = fieldsFrom(opts, session.passwordSource);
    if (Object.keys(changes).length === 0)
      throw new UsageError('nothing to change: give at least one field option (see --help)');
    const guarded = Object.keys(changes).filter((field) => ADMIN_FIELDS.includes(field));
    if (guarded.length > 0) {
      session.authorize({ label: `instances edit of ${guarded.join(', ')}`, role: 'admin' });
      // The command line is the break-glass path and edits at once; a chat plans the edit for a second person.
      if (session.via !== 'cli') return planWhereEdit(session, name, changes);
    }
    const instance = await (await session.backend.registry()).edit(name, changes as InstanceChanges);
    return {
      kind: 'registry',
      data: instanceJson(instance),
      summary: `updated ${instance.shortname}: ${Object.keys(changes).join(', ')}`,
    };
  },
});

/** Enable and disable, the first half of the user guide's disable → destroy. */
const stateVerb = (verb: 'enable' | 'disable') =>
  defineVerb<{ names: string[] }>({
    path: ['instances', verb],
    aliases: [],
    role: 'operator',
    summary: `${verb} instances, by id, short name or wwwroot`,
    examples: [`instances ${verb} physics chemistry`],
    syntax: (cmd) => cmd.argument('<names...>', 'the instances'),
    args: (operands) => ({ names: (operands[0] as string[]).map(String) }),
    run: async (session, { names }) => {
      const changed: Instance[] = await (await session.backend.registry()).setEnabled(names, verb === 'enable');
      const already = names.length - changed.length;
      const summary = `${verb}d ${changed.length}${changed.length ? `: ${changed.map((i) => i.shortname).join(', ')}` : ''}${already > 0 ? ` (${already} already ${verb}d)` : ''}`;
      return { kind: 'registry', data: { changed: changed.map((i) => i.shortname) }, summary };
    },
  });

export const REGISTRY_VERBS: readonly VerbDef<never>[] = [
  editInstance,
  stateVerb('enable'),
  stateVerb('disable'),
] as VerbDef<never>[];
