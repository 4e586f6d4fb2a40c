import type { Command as LineParser } from 'commander';
import { OpsError, UsageError } from '../core/errors.ts';
import { accessCategory, type CommandDef } from '../ops/commands/command.ts';
import { needsApproval } from '../ops/executor/approval-policy.ts';
import type { Plan } from '../ops/executor/planner.ts';
import { mergeParameters, parseAssignments, parseAttributes } from '../ops/commands/param-words.ts';
import { resolveTargets, type Selector } from '../registry/selector.ts';
import { addTargetOptions, selectorFlags, selectorFrom } from './target-flags.ts';
import { defineVerb, type Session, type VerbDef, type View } from './verb.ts';

/**
 * A new plan as a view. In chat, one that needs a second person asks for one at once; on the command line the
 * front end asks after its own confirmation (and only with `approval.cli: require`).
 */
export async function afterPlan(session: Session, plan: Plan): Promise<View> {
  if (session.via === 'cli' || !needsApproval(plan.run, plan.command.writes, session.policy))
    return { kind: 'plan', plan };
  const { confirmationText, requestApproval } = await import('../ops/executor/approvals.ts');
  const rt = await session.ops();
  await requestApproval(rt, plan.run.id, session.actor.id);
  const run = await rt.store.getRun(plan.run.id);
  return {
    kind: 'plan',
    plan: { ...plan, run },
    approval: { expected: await confirmationText(rt, run), ttlMinutes: Math.round(session.policy.ttlMs / 60_000) },
  };
}

export const wholeNumber =
  (flag: string) =>
  (value: unknown): number | undefined => {
    if (value === undefined) return undefined;
    if (typeof value !== 'string' || !/^\d+$/.test(value))
      throw new UsageError(`${flag} takes a whole number, got '${String(value)}'`);
    return Number(value);
  };

async function selection(session: Session, selector: Selector): Promise<View> {
  const fleet = await session.backend.fleet();
  return { kind: 'selection', selection: resolveTargets(fleet, selector), flags: selectorFlags(selector) };
}

export interface PlanArgs {
  command: string;
  params: Record<string, string>;
  selector: Selector;
  canary?: number;
  maxFailures?: string;
  byValue?: string;
  /** Only list the targets (run_command.php's --test, or the command `showtargets`). */
  test: boolean;
}

export const plan = defineVerb<PlanArgs>({
  path: ['run'],
  aliases: ['plan'],
  role: 'operator',
  summary: "plan a command on the selected hosts: the targets frozen, each one's preview read; it runs once started",
  examples: [
    "run generic/setconfig --match '*.example.org' key=maintenance_enabled value=1",
    "run --command=generic/setconfig --tohostsmatch='*.example.org' --attributes='key=maintenance_enabled&value=1'",
    'run sql/multisql --hosts physics sql="UPDATE {course} SET visible=0 WHERE id=:id" id=5',
  ],
  plans: true,
  syntax: (cmd) =>
    addTargetOptions(cmd)
      .argument('[command]', 'the command, category/name (help lists them)')
      .argument('[params...]', 'its parameters as name=value')
      .option('-c, --command <name>', 'the command, as run_command.php takes it; showtargets lists the targets only')
      .option('-a, --attributes <query>', 'parameters as a URL query string, e.g. key=maintenance_enabled&value=1')
      .option('-T, --test', 'resolve and list the targets only')
      .option('--by-value <sql>', 'keep only targets where this SELECT returns a non-empty row')
      .option('--canary <n>', 'run this many targets first, then wait for a go')
      .option(
        '--max-failures <n|n%>',
        'stop starting targets once more than this many failed (default 10%, at least 1)',
      ),
  args: (operands, opts) => {
    const [positional, words] = operands as [string | undefined, string[] | undefined];
    const flag = opts.command as string | undefined;
    if (positional !== undefined && flag !== undefined && positional !== flag)
      throw new UsageError(`two commands given: '${positional}' and --command '${flag}'`);
    const command = flag ?? positional;
    if (command === undefined)
      throw new UsageError('missing command: run <category/name> [name=value ...] (help lists them)');
    return {
      command,
      params: mergeParameters(
        typeof opts.attributes === 'string' ? parseAttributes(opts.attributes) : {},
        parseAssignments(words ?? []),
      ),
      selector: selectorFrom(opts as Record<string, string | boolean | undefined>),
      canary: wholeNumber('--canary')(opts.canary),
      maxFailures: opts.maxFailures as string | undefined,
      byValue: opts.byValue as string | undefined,
      test: opts.test === true || command === 'showtargets',
    };
  },
  run: async (session, args) => (args.test ? selection(session, args.selector) : planCommand(session, args)),
});

/**
 * The caller's right to plan a command (a new plan, a retry, a revert): its RBAC category, the least role it names
 * itself, and for SQL on the master an admin, whatever the RBAC says, since the master's database holds the
 * registry and the product's records.
 */
export function authorizeCommand(session: Session, command: CommandDef, onMaster: boolean): void {
  const why = commandRefusal(session, command);
  if (why) throw new OpsError('access_denied', why);
  if (accessCategory(command) === 'sql' && onMaster) session.authorize({ label: 'SQL on the master', role: 'admin' });
}

/** Why the caller may not plan a command at all (its category, or the least role it names), or undefined. */
export const commandRefusal = (session: Session, command: CommandDef): string | undefined =>
  session.refusal(plan, accessCategory(command)) ??
  (command.role ? session.refusal({ label: command.name, role: command.role }) : undefined);

/** Plans a command as `run` does: the caller's right to it checked against the command's category. */
async function planCommand(session: Session, args: Omit<PlanArgs, 'test'>): Promise<View> {
  // Loaded when a plan is made, not when the command line starts (see run-verbs.ts).
  const [{ findCommand }, { createPlan }] = await Promise.all([
    import('../ops/commands/index.ts'),
    import('../ops/executor/planner.ts'),
  ]);
  const command = findCommand(args.command);
  authorizeCommand(
    session,
    command,
    resolveTargets(await session.backend.fleet(), args.selector).targets.some((t) => t.kind === 'master'),
  );
  const planned = await createPlan(await session.ops(), {
    command: command.name,
    params: args.params,
    selector: args.selector,
    requestedBy: session.actor.id,
    via: session.via,
    canary: args.canary,
    maxFailures: args.maxFailures,
    byValue: args.byValue,
  });
  return afterPlan(session, planned);
}

/**
 * A verb that plans one command, for the words ops type for it (`mnet renew --hosts law` is `run mnet/renew --hosts
 * law`): the same target flags and name=value parameters, the same plan, preview and approval.
 */
export type CommandVerbArgs = Omit<PlanArgs, 'test'>;

export function commandVerb(
  path: [string, string],
  command: string,
  summary: string,
  example: string,
  fixed: Selector = {},
): VerbDef<CommandVerbArgs> {
  // The master alone takes no other target flag.
  const targets = (cmd: LineParser) => (fixed.master ? cmd : addTargetOptions(cmd));
  return defineVerb<CommandVerbArgs>({
    path,
    aliases: [],
    role: 'operator',
    summary: `${summary} (run ${command})`,
    examples: [example],
    plans: true,
    syntax: (cmd) =>
      targets(cmd)
        .argument('[params...]', 'its parameters as name=value')
        .option('--canary <n>', 'run this many targets first, then wait for a go')
        .option(
          '--max-failures <n|n%>',
          'stop starting targets once more than this many failed (default 10%, at least 1)',
        ),
    args: (operands, opts) => ({
      command,
      params: parseAssignments((operands[0] as string[] | undefined) ?? []),
      selector: { ...selectorFrom(opts as Record<string, string | boolean | undefined>), ...fixed },
      canary: wholeNumber('--canary')(opts.canary),
      maxFailures: opts.maxFailures as string | undefined,
    }),
    run: planCommand,
  });
}

/** The MNET and cron verbs ops type, each planning its command. */
const COMMAND_VERBS = [
  commandVerb(
    ['mnet', 'status'],
    'mnet/status',
    "each host's MNET key: expiry, state and the peers holding a stale copy",
    "mnet status --match '*.campus.example.org'",
  ),
  commandVerb(
    ['mnet', 'renew'],
    'mnet/renew',
    'new key pairs for the hosts, and every copy their peers hold',
    'mnet renew --hosts law,physics',
  ),
  commandVerb(
    ['mnet', 'renewall'],
    'mnet/renewall',
    "renew every selected host's pair at once (destructive: needs a second person)",
    "mnet renewall --tohosts '*' --include-disabled",
  ),
  commandVerb(['mnet', 'init'], 'mnet/init', 'MNET on (strict) with a key pair', 'mnet init --hosts law'),
  commandVerb(
    ['mnet', 'bind'],
    'mnet/bind',
    'peers and services as the registry subnets say, on both sides',
    "mnet bind --match '*.campus.example.org'",
  ),
  commandVerb(
    ['cron', 'run'],
    'cron/run',
    "the hosts' Moodle cron now, as a tick runs it",
    'cron run --hosts law via=php',
  ),
  commandVerb(
    ['lifecycle', 'snapshot'],
    'lifecycle/snapshot',
    'snapshot hosts (or --master) into templates',
    'lifecycle snapshot --hosts law template=law-before-upgrade',
  ),
  commandVerb(
    ['lifecycle', 'create'],
    'lifecycle/create',
    'a new instance from a template, beside the master',
    'lifecycle create template=law-before-upgrade shortname=law2 name="Law 2" vhostname=https://law2.example.org vdbname=moodle_law2 vdatapath=/srv/moodledata/law2 mnet=0',
    { master: true },
  ),
  commandVerb(
    ['lifecycle', 'destroy'],
    'lifecycle/destroy',
    'destroy disabled instances after a checked final snapshot (destructive)',
    'lifecycle destroy --hosts law2',
    { includeDisabled: true },
  ),
];

export const showTargets = defineVerb<Selector>({
  path: ['showtargets'],
  aliases: [],
  role: 'viewer',
  summary: 'list the hosts a command would run on, without running anything',
  examples: ["showtargets --tohostsmatch='*.example.org' --exclude='*test*'"],
  syntax: (cmd) => addTargetOptions(cmd),
  args: (_operands, opts) => selectorFrom(opts as Record<string, string | boolean | undefined>),
  run: (session, selector) => selection(session, selector),
});

export const PLAN_VERBS: readonly VerbDef<never>[] = [plan, showTargets, ...COMMAND_VERBS] as VerbDef<never>[];
