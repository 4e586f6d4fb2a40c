import { defineVerb, type VerbDef } from './verb.ts';

const nameArg = (operands: readonly unknown[]) => ({ name: String(operands[0]) });

export const listTemplates = defineVerb<Record<string, never>>({
  path: ['templates', 'list'],
  aliases: ['templates'],
  role: 'viewer',
  summary: 'the templates (snapshots of instances and the master), the newest first',
  examples: ['templates list'],
  syntax: (cmd) => cmd,
  args: () => ({}),
  run: async (session) => ({ kind: 'templates', templates: await (await session.ops()).templates.list() }),
});

export const showTemplate = defineVerb<{ name: string }>({
  path: ['templates', 'show'],
  aliases: [],
  role: 'viewer',
  summary: "one template's manifest: where it came from, its Moodle version, its size",
  examples: ['templates show law-20261201T1030'],
  syntax: (cmd) => cmd.argument('<name>', 'the template'),
  args: nameArg,
  run: async (session, { name }) => ({
    kind: 'template',
    template: await (await session.ops()).templates.get(name),
    deleted: false,
  }),
});

export const deleteTemplate = defineVerb<{ name: string }>({
  path: ['templates', 'delete'],
  aliases: [],
  role: 'operator',
  summary: 'delete a template: its dump and dataroot copy',
  examples: ['templates delete law-20261201T1030'],
  syntax: (cmd) => cmd.argument('<name>', 'the template'),
  args: nameArg,
  run: async (session, { name }) => ({
    kind: 'template',
    template: await (await session.ops()).templates.remove(name),
    deleted: true,
  }),
});

export const TEMPLATE_VERBS: readonly VerbDef<never>[] = [
  listTemplates,
  showTemplate,
  deleteTemplate,
] as VerbDef<never>[];
