import { userInfo } from 'node:os';
import { Command as LineParser } from 'commander';
import { approvalPolicy } from '../ops/executor/approval-policy.ts';
import { invoke, VERBS } from '../verbs/index.ts';
import { Rbac } from '../verbs/rbac.ts';
import { NO_SETTINGS } from '../core/security-settings.ts';
import { FINAL_STATES } from '../ops/executor/run-model.ts';
import { Session, type VerbDef } from '../verbs/verb.ts';
import type { CliContext } from './context.ts';
import { executePlan, followOnTerminal } from './execute.ts';
import { printPlan, printView } from './render.ts';

/** Who the audit names for a command line run: the operating-system user. */
export const cliActor = () => `${userInfo().username}@cli`;

const GROUPS: Record<string, string> = {
  runs: 'runs and their results, from the audit trail: plan, start, approve, cancel, go, retry, revert',
  instances: 'the registry of Moodle instances (VMoodle local_vmoodle)',
};

/**
 * The command line's session: break-glass, audited as user@cli; approving is checked against the RBAC in the
 * master's settings, never a file the caller's environment names.
 */
export async function cliSession(ctx: CliContext, verb: Pick<VerbDef, 'role' | 'plans'>): Promise<Session> {
  const backend = ctx.app();
  // Only approving and planning read the policy; help and the registry's pages work without the settings.
  const security = verb.role === 'approver' || verb.plans ? await backend.security() : NO_SETTINGS;
  return new Session(
    backend,
    { id: cliActor() },
    'cli',
    approvalPolicy(security.approval),
    {
      kind: 'break-glass',
      rbac: security.rbac ? new Rbac(security.rbac) : undefined,
      user: userInfo().username,
    },
    ctx.io.env,
  );
}

/** Options only the command line has, for verbs that make a plan: it confirms, starts and follows it itself. */
function addConfirmOptions(cmd: LineParser): LineParser {
  return cmd
    .option('-y, --yes', 'run without asking')
    .option('--confirm <count>', 'for a destructive command: the number of targets, typed to confirm')
    .option('--detach', 'start the run and return; follow it with vmoodle runs show <id> --follow');
}

async function act(ctx: CliContext, verb: VerbDef<never>, cmd: LineParser): Promise<void> {
  const out = ctx.output(cmd);
  const opts = cmd.opts();
  const session = await cliSession(ctx, verb);
  const view = await invoke(session, verb, verb.args(cmd.processedArgs, opts));
  if (view.kind === 'plan') {
    printPlan(out, view.plan);
    await executePlan(ctx, out, session, view.plan, opts);
    return;
  }
  if (view.kind === 'status' && opts.follow === true && !FINAL_STATES.includes(view.run.state)) {
    await followOnTerminal(ctx, out, session, view.run);
    return;
  }
  const ok = printView(out, view, programOf(cmd));
  // A run being cancelled is not followed here: the cancel is done; runs show --follow watches the rest finish.
  if (view.kind === 'run' && view.follow && view.run.state === 'running')
    await followOnTerminal(ctx, out, session, view.run);
  else if (!ok) ctx.exitCode = 1;
}

const programOf = (cmd: LineParser): LineParser => (cmd.parent ? programOf(cmd.parent) : cmd);

function attach(ctx: CliContext, parent: LineParser, name: string, verb: VerbDef<never>, hidden: boolean): void {
  const cmd = verb.syntax(new LineParser(name).copyInheritedSettings(parent).description(verb.summary));
  if (verb.plans) addConfirmOptions(cmd);
  cmd.addHelpText('after', `\nExamples:\n${verb.examples.map((e) => `  vmoodle ${e}`).join('\n')}`);
  cmd.action((...all: unknown[]) => act(ctx, verb, all.at(-1) as LineParser));
  parent.addCommand(cmd, { hidden });
}

/**
 * Every verb on the command line, from its one definition: `vmoodle runs cancel 42`, and the chat's short forms
 * (`vmoodle cancel 42`, `vmoodle runs status 42`) where no other command has the word. `vmoodle start` stays the
 * product's start; `vmoodle runs start 42` starts a run.
 */
export function registerVerbs(program: LineParser, ctx: CliContext): void {
  const taken = (cmd: LineParser, word: string) =>
    cmd.commands.some((c) => c.name() === word || c.aliases().includes(word));
  for (const verb of VERBS) {
    const [first, second] = verb.path as [string, string | undefined];
    let parent = program;
    if (second !== undefined) {
      parent =
        program.commands.find((c) => c.name() === first) ?? program.command(first).description(GROUPS[first] ?? first);
    }
    attach(ctx, parent, second ?? first, verb, false);
    for (const alias of verb.aliases) {
      if (second !== undefined && !taken(parent, alias) && alias !== first) attach(ctx, parent, alias, verb, true);
      if (!taken(program, alias)) attach(ctx, program, alias, verb, true);
    }
  }
}
