import { UsageError } from '../core/errors.ts';
import type { Step } from '../ops/delivery/state.ts';
import { commandVerb, type CommandVerbArgs } from './plan-verbs.ts';
import { runId } from './run-verbs.ts';
import { defineVerb, type VerbDef } from './verb.ts';

const journalModule = () => import('../ops/delivery/journal.ts');

/** The journal entries a status shows. */
const RECENT = 10;

export const deliveryStatus = defineVerb<Record<string, never>>({
  path: ['deliver', 'status'],
  aliases: ['deliver'],
  role: 'viewer',
  summary:
    "each web node's delivery state (production or delivery, the tree it serves, its last step), the steps it allows, the open session and the latest journal entries",
  examples: ['deliver status', 'deliver'],
  syntax: (cmd) => cmd,
  args: () => ({}),
  run: async (session) => {
    const rt = await session.ops();
    const nodes = await Promise.all(
      rt.config.nodes.map(async (n) => ({ node: n.name, report: await rt.deliveryReport(n.name) })),
    );
    return {
      kind: 'delivery',
      nodes,
      session: await rt.journal.openSession(),
      recent: await rt.journal.recent(RECENT),
    };
  },
});

const text =
  (flag: string, max: number) =>
  (value: unknown): string => {
    if (value === undefined) return '';
    if (typeof value !== 'string' || value.length > max)
      throw new UsageError(`${flag} takes a text of at most ${max} characters`);
    return value;
  };

export const openSession = defineVerb<{ title: string; description: string; impact: string }>({
  path: ['deliver', 'open'],
  aliases: [],
  role: 'operator',
  summary: "open a delivery session (tool_delivery's journal): every step until it is closed is logged into it",
  examples: [
    'deliver open "Moodle 4.5.7" --description "Security release" --impact "5 minutes of maintenance per site"',
  ],
  syntax: (cmd) =>
    cmd
      .argument('<title>', 'what is delivered')
      .option('--description <text>', 'why, and what it contains')
      .option('--impact <text>', 'what users will notice'),
  args: (operands, opts) => {
    const title = text('the title', 255)(operands[0]).trim();
    if (!title) throw new UsageError('a session needs a title');
    return {
      title,
      description: text('--description', 10_000)(opts.description),
      impact: text('--impact', 10_000)(opts.impact),
    };
  },
  run: async (session, fields) => {
    const rt = await session.ops();
    const opened = await rt.journal.open({ ...fields, opened_by: session.actor.id });
    return { kind: 'delivery-session', event: 'opened', session: opened, entries: [], report: undefined };
  },
});

export const closeSession = defineVerb<{ followup: string }>({
  path: ['deliver', 'close'],
  aliases: [],
  role: 'operator',
  summary:
    'close the open delivery session: its report (every step and its outcome per node) is kept and posted in its thread',
  examples: ['deliver close --followup "Check the quiz reports on Monday"'],
  syntax: (cmd) => cmd.option('--followup <text>', 'what remains to be done'),
  args: (_operands, opts) => ({ followup: text('--followup', 10_000)(opts.followup) }),
  run: async (session, { followup }) => {
    const rt = await session.ops();
    const { sessionReport } = await journalModule();
    const closed = await rt.journal.close(session.actor.id, followup, sessionReport);
    return {
      kind: 'delivery-session',
      event: 'closed',
      session: closed.session,
      entries: closed.entries,
      report: closed.session.report ?? '',
    };
  },
});

export const showSession = defineVerb<{ id: number }>({
  path: ['deliver', 'report'],
  aliases: [],
  role: 'viewer',
  summary: "a delivery session's report, open or closed",
  examples: ['deliver report 3'],
  syntax: (cmd) => cmd.argument('<id>', 'the session'),
  args: (operands) => ({ id: runId(operands[0]) }),
  run: async (session, { id }) => {
    const rt = await session.ops();
    const { sessionReport } = await journalModule();
    const found = await rt.journal.getSession(id);
    const entries = await rt.journal.entries(id);
    return {
      kind: 'delivery-session',
      event: 'shown',
      session: found,
      entries,
      report: found.report ?? sessionReport(found, entries),
    };
  },
});

const MASTER = { master: true } as const;

/** Each step as ops type it, planning its delivery command on the fleet's code. */
export const STEP_VERBS: Readonly<Record<Step, VerbDef<CommandVerbArgs>>> = {
  convert: commandVerb(
    ['deliver', 'convert'],
    'delivery/convert',
    'once per node: serve the code through a symlink (destructive)',
    'deliver convert comment="before the first delivery"',
    MASTER,
  ),
  secure: commandVerb(
    ['deliver', 'secure'],
    'delivery/secure',
    'step 1: copy the served code into SAVE on every node',
    'deliver secure supersave=1',
    MASTER,
  ),
  switch: commandVerb(
    ['deliver', 'switch'],
    'delivery/switch',
    'step 2: serve the SAVE copy (destructive)',
    'deliver switch comment="4.5.7"',
    MASTER,
  ),
  update: commandVerb(
    ['deliver', 'update'],
    'delivery/update',
    'step 3: update the version-controlled tree, showing what changed',
    'deliver update ref=v4.5.7',
    MASTER,
  ),
  restore: commandVerb(
    ['deliver', 'restore'],
    'delivery/restore',
    'step 4: serve the updated tree, upgrade each site once, reset the opcode caches (destructive)',
    'deliver restore',
    MASTER,
  ),
  rollback: commandVerb(
    ['deliver', 'rollback'],
    'delivery/rollback',
    'emergency rollback: serve the SAVE copy again (destructive)',
    'deliver rollback',
    MASTER,
  ),
};

const severalSteps = commandVerb(
  ['deliver', 'steps'],
  'delivery/steps',
  'several steps in one run, in order',
  'deliver steps steps=secure,switch,update ref=v4.5.7',
  MASTER,
);

export const DELIVERY_VERBS: readonly VerbDef<never>[] = [
  deliveryStatus,
  openSession,
  closeSession,
  showSession,
  ...Object.values(STEP_VERBS),
  severalSteps,
] as VerbDef<never>[];
