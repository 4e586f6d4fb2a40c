import { defineCommand, type CommandDef } from './command.ts';
import type { InstanceChanges } from '../../registry/registry.ts';
import { ParamError } from './params.ts';
import { WHERE_FIELDS, type WhereField } from '../../registry/instance.ts';

const given = (p: Readonly<Record<string, string | undefined>>) => WHERE_FIELDS.filter((f) => (p[f] ?? '') !== '');

/**
 * An edit of where an instance's database and dataroot are, as a run: planned with its old → new values, approved by
 * a second person, and audited, since a row pointed elsewhere hands the instance's login, or another's files, to
 * whatever is there. Only admins plan it; the password is never among its parameters (the command line sets it).
 */
export const registryEdit = defineCommand({
  name: 'registry/edit',
  category: 'registry',
  summary: "Change where an instance's database and dataroot are, old → new (admins only; a second person approves)",
  params: WHERE_FIELDS.map((name) => ({ name, type: 'text', default: '', label: name, help: 'empty: left as it is' })),
  role: 'admin',
  destructive: true,
  reversible: false,
  idempotent: true,
  needsSource: false,
  writes: true,
  runsOn: 'any',
  async check(_ctx, p) {
    if (given(p).length === 0) throw new ParamError(`registry/edit: give at least one of ${WHERE_FIELDS.join(', ')}`);
  },
  async preview(ctx, target, p) {
    const instance = await ctx.lifecycle.registry.get(String(target.host.id));
    const fields = given(p);
    return {
      old: fields.map((f) => `${f}=${instance[f]}`).join(', '),
      new: fields.map((f) => `${f}=${p[f]}`).join(', '),
    };
  },
  async apply(ctx, target, p) {
    const instance = await ctx.lifecycle.registry.get(String(target.host.id));
    const fields = given(p);
    const changing = fields.filter((f) => String(instance[f]) !== p[f]);
    const old = fields.map((f) => `${f}=${instance[f]}`).join(', ');
    if (changing.length === 0) return { status: 'already_applied', old, new: old };
    await ctx.lifecycle.registry.edit(
      String(instance.id),
      Object.fromEntries(changing.map((f: WhereField) => [f, p[f]])) as InstanceChanges,
    );
    return { status: 'applied', old, new: fields.map((f) => `${f}=${p[f]}`).join(', ') };
  },
});

export const REGISTRY_COMMANDS: readonly CommandDef[] = [registryEdit];
