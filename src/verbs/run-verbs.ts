import type { Command as LineParser } from 'commander';
import { OpsError, UsageError } from '../core/errors.ts';
import { scheduleText } from '../ops/executor/run-model.ts';
import { parseAssignments } from '../ops/commands/param-words.ts';
import { afterPlan, authorizeCommand } from './plan-verbs.ts';
import { defineVerb, type Session, type VerbDef } from './verb.ts';

// The command line builds every verb's syntax when it starts; what a verb does (the queue, the databases) is
// loaded when it runs, so that `vmoodle --help` or a malformed line answers at once.
const actions = () => import('../ops/executor/run-actions.ts');
const approvals = () => import('../ops/executor/approvals.ts');

/** A run id as typed. */
export function runId(value: unknown): number {
  if (typeof value !== 'string' || !/^\d{1,15}$/.test(value))
    throw new UsageError(`'${String(value ?? '')}' is not a run id: give its number, e.g. 12`);
  return Number(value);
}

const byId = (operands: readonly unknown[]) => ({ runId: runId(operands[0]) });

/** A retry or a revert plans the run's command again: the caller needs the same rights as for a new plan of it. */
async function authorizeRerun(session: Session, id: number): Promise<void> {
  const rt = await session.ops();
  const [{ findCommand }, run] = await Promise.all([import('../ops/commands/index.ts'), rt.store.getRun(id)]);
  authorizeCommand(
    session,
    findCommand(run.command),
    (await rt.store.getTargets(id)).some((t) => t.host_kind === 'master'),
  );
}

/** The syntax of a verb that takes one run and nothing else. */
const ONE_RUN = { syntax: (cmd: LineParser) => cmd.argument('<id>', 'the run'), args: byId };

export const listRuns = defineVerb<{ limit: number }>({
  path: ['runs', 'list'],
  aliases: ['runs'],
  role: 'viewer',
  summary: 'the latest runs, with their results',
  examples: ['runs list --limit 50'],
  syntax: (cmd) => cmd.option('--limit <n>', 'how many', '20'),
  args: (_operands, opts) => {
    const limit = runId(opts.limit);
    if (limit < 1 || limit > 1000) throw new UsageError('--limit takes a whole number from 1 to 1000');
    return { limit };
  },
  run: async (session, { limit }) => ({ kind: 'runs', runs: await (await session.ops()).store.listRuns(limit) }),
});

export const showRun = defineVerb<{ runId: number }>({
  path: ['runs', 'show'],
  aliases: ['status'],
  role: 'viewer',
  summary: 'one run: who, what, when, its events and every target’s result',
  examples: ['runs show 42', 'status 42'],
  syntax: (cmd) =>
    cmd.argument('<id>', 'the run').option('--follow', 'wait until the run ends, printing progress (command line)'),
  args: byId,
  run: async (session, { runId: id }) => {
    const { store } = await session.ops();
    const run = await store.getRun(id);
    return { kind: 'status', run, targets: await store.getTargets(id), events: await store.events(id) };
  },
});

export const lastRun = defineVerb<{ mine: boolean }>({
  path: ['runs', 'last'],
  aliases: ['last'],
  role: 'viewer',
  summary: 'the latest run (with --mine, the latest you asked for): who, what, when and its results',
  examples: ['runs last', 'last --mine'],
  syntax: (cmd) => cmd.option('--mine', 'the latest run you asked for'),
  args: (_operands, opts) => ({ mine: opts.mine === true }),
  run: async (session, { mine }) => {
    const { store } = await session.ops();
    const run = (await store.listRuns(mine ? 200 : 1)).find((r) => !mine || r.requested_by === session.actor.id);
    if (!run) throw new OpsError('not_found', mine ? 'you have no run among the latest 200' : 'no run yet');
    return { kind: 'status', run, targets: await store.getTargets(run.id), events: await store.events(run.id) };
  },
});

export const startPlanned = defineVerb<{ runId: number; hash?: string }>({
  path: ['runs', 'start'],
  aliases: ['start'],
  role: 'operator',
  summary: 'start a planned run: only its requester, and only the plan that was shown',
  examples: ['runs start 42', 'start 42'],
  syntax: (cmd) =>
    cmd
      .argument('<id>', 'the run')
      .argument('[hash]', 'the plan hash that was shown (its first 12 characters or more)'),
  args: (operands) => ({
    runId: runId(operands[0]),
    ...(typeof operands[1] === 'string' ? { hash: operands[1] } : {}),
  }),
  run: async (session, { runId: id, hash }) => {
    const rt = await session.ops();
    const run = await rt.store.getRun(id);
    if (run.requested_by !== session.actor.id)
      throw new OpsError('access_denied', `run ${id} was planned by someone else; they start it, or plan your own`);
    // A hash typed in chat may be the 12 characters the plan showed; a button carries it whole.
    const shown =
      hash !== undefined && hash.length >= 12 && run.plan_hash.startsWith(hash.toLowerCase()) ? run.plan_hash : hash;
    const { startRun, RunControlError } = await actions();
    const { started, run: after } = await startRun(rt, id, session.actor.id, shown);
    if (!started) throw new RunControlError(`run ${id} was already started`);
    const scheduled = scheduleText(after, await rt.store.getTargets(id));
    return {
      kind: 'run',
      run: after,
      summary: `Run ${id} started: ${run.command} on ${run.target_count} target${run.target_count === 1 ? '' : 's'}.${scheduled}`,
      follow: true,
    };
  },
});

export const approve = defineVerb<{ runId: number; typed: string; hash?: string }>({
  path: ['runs', 'approve'],
  aliases: ['approve'],
  role: 'approver',
  summary: 'approve and start a run another person requested, typing what the request asks',
  examples: ['runs approve 42 120', 'approve 42 physics'],
  syntax: (cmd) =>
    cmd
      .argument('<id>', 'the run')
      .argument('<typed>', 'the number of targets, or the short name for one target')
      .argument('[hash]', 'the plan hash the request showed'),
  args: (operands) => ({
    runId: runId(operands[0]),
    typed: String(operands[1]),
    ...(typeof operands[2] === 'string' ? { hash: operands[2] } : {}),
  }),
  run: async (session, { runId: id, typed, hash }) => {
    const rt = await session.ops();
    const shown = hash ?? (await rt.store.getRun(id)).plan_hash;
    const run = await (await approvals()).approveRun(
      rt,
      id,
      session.actor.id,
      typed,
      shown,
      session.policy,
      (_, requester) => session.isSamePerson(requester),
    );
    // The command line is the break-glass path: its decisions stand out in the audit and in the run's thread.
    if (session.via === 'cli')
      await (await import('../ops/executor/alerts.ts')).pushBreakGlass(rt, {
        runId: id,
        text: `Run ${id} was approved on the command line by ${session.actor.id} (break-glass).`,
      });
    return {
      kind: 'run',
      run,
      summary: `Run ${id} approved by ${session.actor.id} and started.${scheduleText(run, await rt.store.getTargets(id))}`,
      follow: true,
    };
  },
});

export const reject = defineVerb<{ runId: number }>({
  path: ['runs', 'reject'],
  aliases: ['reject'],
  role: 'approver',
  summary: 'reject a run waiting for approval; nothing runs',
  examples: ['reject 42'],
  ...ONE_RUN,
  run: async (session, { runId: id }) => {
    const rt = await session.ops();
    await (await approvals()).rejectRun(rt, id, session.actor.id);
    return {
      kind: 'run',
      run: await rt.store.getRun(id),
      summary: `Run ${id} rejected by ${session.actor.id}.`,
      follow: false,
    };
  },
});

export const cancel = defineVerb<{ runId: number }>({
  path: ['runs', 'cancel'],
  aliases: ['cancel'],
  role: 'operator',
  summary: 'start no more targets of a run; the ones under way finish and are reported',
  examples: ['runs cancel 42', 'cancel 42'],
  ...ONE_RUN,
  run: async (session, { runId: id }) => {
    const run = await (await actions()).cancelRun(await session.ops(), id, session.actor.id);
    const summary =
      run.state === 'cancelling'
        ? `Run ${id} cancelling: no more targets start; those under way finish.`
        : `Run ${id} ${run.state}.`;
    return { kind: 'run', run, summary, follow: run.state === 'cancelling' };
  },
});

export const go = defineVerb<{ runId: number }>({
  path: ['runs', 'go'],
  aliases: ['go'],
  role: 'operator',
  summary: 'let a canary run go on past its first targets',
  examples: ['runs go 42', 'go 42'],
  ...ONE_RUN,
  run: async (session, { runId: id }) => {
    const rt = await session.ops();
    await (await actions()).goRun(rt, id, session.actor.id);
    return { kind: 'run', run: await rt.store.getRun(id), summary: `Run ${id} goes on past its canary.`, follow: true };
  },
});

export const retry = defineVerb<{ runId: number; host?: string; given: Record<string, string> }>({
  path: ['runs', 'retry'],
  aliases: ['retry'],
  role: 'operator',
  summary:
    'a new run of the targets that did not succeed (or of one host); a secret the run wrote is given again as name=value',
  examples: ['runs retry 42', 'runs retry 42 --host physics', 'runs retry 43 value=…'],
  plans: true,
  syntax: (cmd) =>
    cmd
      .argument('<id>', 'the run')
      .argument('[params...]', 'secrets the run wrote, given again')
      .option('--host <name>', 'only this host (short name or wwwroot)'),
  args: (operands, opts) => ({
    runId: runId(operands[0]),
    given: parseAssignments((operands[1] as string[] | undefined) ?? []),
    ...(typeof opts.host === 'string' ? { host: opts.host } : {}),
  }),
  run: async (session, { runId: id, host, given }) => {
    await authorizeRerun(session, id);
    return afterPlan(session, await (await actions()).retryRun(await session.ops(), id, session.actor.id, host, given));
  },
});

export const revert = defineVerb<{ runId: number }>({
  path: ['runs', 'revert'],
  aliases: ['revert'],
  role: 'operator',
  summary: 'a new run that puts back the old values a reversible command recorded',
  examples: ['runs revert 42'],
  plans: true,
  ...ONE_RUN,
  run: async (session, { runId: id }) => {
    await authorizeRerun(session, id);
    return afterPlan(session, await (await actions()).revertRun(await session.ops(), id, session.actor.id));
  },
});

export const recover = defineVerb<{ runId: number }>({
  path: ['runs', 'recover'],
  aliases: ['recover'],
  role: 'operator',
  summary:
    'give a stuck run a way to end: its lost work queued again, what cannot be known marked interrupted — verify',
  examples: ['runs recover 42', 'recover 42'],
  ...ONE_RUN,
  run: async (session, { runId: id }) => {
    const { recoverRun } = await import('../ops/executor/recovery.ts');
    const { run, requeued, interrupted, alive } = await recoverRun(await session.ops(), id, session.actor.id);
    const parts = [
      requeued ? `${requeued} target${requeued === 1 ? '' : 's'} queued again` : '',
      interrupted ? `${interrupted} marked interrupted — verify` : '',
      alive ? `${alive} still queued or under way` : '',
    ].filter(Boolean);
    const summary = `Run ${id} ${run.state.replaceAll('_', ' ')}: ${parts.join(', ') || 'nothing was left to do'}.`;
    return { kind: 'run', run, summary, follow: run.state === 'running' };
  },
});

export const RUN_VERBS: readonly VerbDef<never>[] = [
  listRuns,
  showRun,
  lastRun,
  startPlanned,
  approve,
  reject,
  cancel,
  go,
  retry,
  revert,
  recover,
] as VerbDef<never>[];
