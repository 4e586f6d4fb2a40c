import type { Command } from 'commander';
import { cancelRun, goRun, retryRun, revertRun } from '../ops/executor/run-actions.ts';
import { parseAssignments } from '../ops/param-words.ts';
import type { Plan } from '../ops/executor/planner.ts';
import type { RunServices } from '../ops/executor/run-services.ts';
import type { CliContext } from './context.ts';
import { cliActor, executePlan, followRun, printPlan, reportRun } from './execute.ts';

const runId = (value: string) => {
  if (!/^\d+$/.test(value)) throw new Error(`'${value}' is not a run id`);
  return Number(value);
};

const time = (ms: number | null) => (ms ? new Date(ms).toISOString().replace('T', ' ').slice(0, 19) : '');

export function registerRuns(program: Command, ctx: CliContext): void {
  const runs = program.command('runs').description('runs and their results, from the audit trail');

  runs
    .command('list')
    .description('the latest runs')
    .option('--limit <n>', 'how many', (v) => runId(v), 20)
    .addHelpText('after', '\nExample:\n  vmoodle runs list --limit 50')
    .action(async (opts, cmd: Command) => {
      const out = ctx.output(cmd);
      const rt = await ctx.app().ops();
      const list = await rt.store.listRuns(opts.limit);
      out.data(list.map((r) => ({ id: r.id, state: r.state, command: r.command, targets: r.target_count, requestedBy: r.requested_by, createdAt: r.created_at, summary: r.summary ? JSON.parse(r.summary) : null })));
      out.table(['ID', 'STATE', 'COMMAND', 'TARGETS', 'BY', 'CREATED', 'RESULT'], list.map((r) => [
        r.id, r.state, r.command, r.target_count, r.requested_by, time(r.created_at),
        r.summary ? Object.entries(JSON.parse(r.summary) as Record<string, number>).map(([s, n]) => `${n} ${s}`).join(', ') : '',
      ]));
    });

  runs
    .command('show <id>')
    .description('one run: who, what, when, and every target’s result (waits for it with --follow)')
    .option('--follow', 'wait until the run ends, printing progress')
    .addHelpText('after', '\nExample:\n  vmoodle runs show 42')
    .action(async (id: string, opts, cmd: Command) => {
      const out = ctx.output(cmd);
      const rt = await ctx.app().ops();
      const run = await rt.store.getRun(runId(id));
      out.line(`Run ${run.id}: ${run.command} by ${run.requested_by} via ${run.via}, ${time(run.created_at)}${run.parent_id ? ` (${run.kind} of run ${run.parent_id})` : ''}`);
      for (const [key, value] of Object.entries(JSON.parse(run.params) as Record<string, string>)) out.line(`  ${key} = ${value}`);
      for (const event of await rt.store.events(run.id)) out.line(`  ${time(event.at)} ${event.kind} by ${event.actor}${event.detail ? `: ${event.detail}` : ''}`);
      if (opts.follow && (run.state === 'running' || run.state === 'cancelling')) {
        await followRun(ctx, out, rt, run.id, run.target_count);
        return;
      }
      await reportRun(ctx, out, run, await rt.store.getTargets(run.id));
    });

  runs
    .command('cancel <id>')
    .description('start no more targets of a run; the ones under way finish and are reported')
    .action(async (id: string, _opts, cmd: Command) => {
      const out = ctx.output(cmd);
      const run = await cancelRun(await ctx.app().ops(), runId(id), cliActor());
      out.data({ run: run.id, state: run.state });
      out.line(`Run ${run.id} ${run.state}.`);
    });

  runs
    .command('go <id>')
    .description('let a canary run go on past its first targets')
    .action(async (id: string, _opts, cmd: Command) => {
      await goRun(await ctx.app().ops(), runId(id), cliActor());
      ctx.output(cmd).line(`Run ${id} goes on.`);
    });

  /** A run made from an ended one: planned, shown and confirmed like a new run. */
  const derived = (usage: string, description: string) => runs
    .command(usage)
    .description(description)
    .option('-y, --yes', 'run without asking')
    .option('--confirm <count>', 'for a destructive command: the number of targets')
    .option('--detach', 'start the run and return');
  const execute = async (cmd: Command, make: (rt: RunServices) => Promise<Plan>) => {
    const out = ctx.output(cmd);
    const rt = await ctx.app().ops();
    const plan = await make(rt);
    printPlan(out, plan);
    await executePlan(ctx, out, rt, plan, cmd.opts());
  };

  derived('retry <id> [params...]', 'a new run of the targets that did not succeed (or of one host); a secret the run wrote is given again as name=value')
    .option('--host <name>', 'only this host (short name or wwwroot)')
    .action((id: string, words: string[], opts: { host?: string }, cmd: Command) =>
      execute(cmd, (rt) => retryRun(rt, runId(id), cliActor(), opts.host, parseAssignments(words))));

  derived('revert <id>', 'a new run that puts back the old values a reversible command recorded')
    .action((id: string, _opts: unknown, cmd: Command) => execute(cmd, (rt) => revertRun(rt, runId(id), cliActor())));
}
