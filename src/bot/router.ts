import { Command, CommanderError } from 'commander';
import parseArgs from 'string-argv';
import type { Backend } from '../backend.ts';
import { addTargetOptions, selectorFrom } from '../verbs/target-flags.ts';
import { mergeParameters, parseAssignments, parseAttributes } from '../ops/param-words.ts';
import { CATALOG, findCommand } from '../ops/catalog/index.ts';
import { accessCategory } from '../ops/command.ts';
import { approveRun, confirmationText, needsApproval, rejectRun, requestApproval, type ApprovalPolicy } from '../ops/executor/approvals.ts';
import { cancelRun, goRun, retryRun, revertRun, startRun } from '../ops/executor/run-actions.ts';
import { describeError } from '../ops/moodle/db-errors.ts';
import { createPlan, type Plan } from '../ops/executor/planner.ts';
import { DONE_OK, type RunRow, type TargetRow } from '../ops/executor/run-model.ts';
import type { Fleet } from '../registry/fleet.ts';
import { leftOutLine, resolveTargets } from '../registry/selector.ts';
import type { Rbac } from './rbac.ts';

/** Who typed a line, and where. The id comes from the signed request (Slack) or the console's `as`, never from a button. */
export interface Actor {
  id: string;
  channel?: string;
}

/** What a front end shows for one line: text for the user or the channel, and what it may follow or ask. */
export interface Reply {
  text: string;
  /** Shown to the user alone (a preview, an error) rather than the channel. */
  ephemeral: boolean;
  /** A run the front end should follow to its end. */
  follow?: RunRow;
  /** A run waiting for the requester's own go (no approval needed). */
  confirm?: { run: RunRow };
  /** A run waiting for a second person. */
  approval?: { run: RunRow; expected: string };
  /** A preview's target flags, to run a command on the same hosts. */
  targets?: string;
}

const SAMPLE = 15;
const FLEET_CACHE_MS = 2000;

/**
 * One grammar for `/vmoodle` lines, shared by Slack and the console: the verbs, their flags (the CLI's target
 * flags and `name=value` parameters), access rules and approvals. Commands plug in from the catalogue.
 */
export class Router {
  private fleetCache: { at: number; fleet: Promise<Fleet> } | undefined;

  constructor(
    private readonly app: Backend,
    private readonly rbac: Rbac,
    private readonly policy: ApprovalPolicy,
    private readonly via: 'console' | 'slack',
  ) {}

  async handle(line: string, actor: Actor): Promise<Reply> {
    const words = parseArgs(line.trim().replace(/^\/?vmoodle\s*/, ''));
    const verb = words.shift() ?? 'help';
    try {
      return await this.dispatch(verb, words, actor);
    } catch (err) {
      return this.failure(err);
    }
  }

  /** Any error as one line for the user alone: the parser's, the product's, or a driver's explained. */
  private failure(err: unknown): Reply {
    const message = err instanceof CommanderError ? err.message.replace(/^error: /, '') : describeError(this.app.explain(err));
    return { text: `:warning: ${message.split('\n')[0]}`, ephemeral: true };
  }

  /** Slack's approval modal: the hash comes from the request the approver was shown, not from the stored run. */
  async approveFromSlack(runId: number, typed: string, shownHash: string, actor: Actor): Promise<Reply> {
    try {
      this.refuse(actor, 'approve');
      return await this.approve([String(runId), typed], actor, shownHash);
    } catch (err) {
      return this.failure(err);
    }
  }

  private refuse(actor: Actor, verb: string, category?: string): void {
    const why = this.rbac.refusal(actor.id, verb, category, actor.channel);
    if (why) throw new Error(why);
  }

  /** A commander program for one verb's flags, its errors thrown rather than printed. */
  private parser(name: string): Command {
    return new Command(name).exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} }).allowExcessArguments(false);
  }

  private async dispatch(verb: string, words: string[], actor: Actor): Promise<Reply> {
    if (!(verb in VERBS)) throw new Error(`unknown verb '${verb}'; try help`);
    this.refuse(actor, verb);
    return VERBS[verb as keyof typeof VERBS].call(this, words, actor);
  }

  private async runOf(word: string | undefined): Promise<RunRow> {
    if (!word || !/^\d+$/.test(word)) throw new Error('give a run id, e.g. status 12');
    return (await this.app.ops()).store.getRun(Number(word));
  }

  async help(_words: string[], actor: Actor): Promise<Reply> {
    const verbs = this.rbac.verbsFor(actor.id);
    const commands = [...CATALOG.values()].filter((c) => !this.rbac.refusal(actor.id, 'run', accessCategory(c), actor.channel));
    const lines = [`Verbs you may use: ${verbs.join(', ')}`];
    if (verbs.includes('run')) lines.push('Commands:', ...commands.map((c) => `• ${c.name}: ${c.summary}`));
    lines.push("Example: showtargets --match '*.example.org' --exclude '*test*'");
    return { text: lines.join('\n'), ephemeral: true };
  }

  async instances(words: string[]): Promise<Reply> {
    const opts = this.parser('instances').option('--filter <text>').option('--page <n>', '', '1').parse(words, { from: 'user' }).opts();
    const page = await (await this.app.registry()).list({ filter: opts.filter, page: Number(opts.page), perPage: 20 });
    const rows = page.items.map((i) => `${i.shortname}  ${i.vhostname}  ${i.enabled ? 'enabled' : 'disabled'}`);
    return { text: `${page.total} instances, page ${page.page} of ${page.pages}\n\`\`\`\n${rows.join('\n')}\n\`\`\``, ephemeral: true };
  }

  /** The registry as loaded at most a couple of seconds ago: previews in a burst share one load. */
  private fleet(): Promise<Fleet> {
    if (!this.fleetCache || Date.now() - this.fleetCache.at > FLEET_CACHE_MS) {
      const load = this.app.registry().then((r) => r.loadFleet());
      load.catch(() => (this.fleetCache = undefined));
      this.fleetCache = { at: Date.now(), fleet: load };
    }
    return this.fleetCache.fleet;
  }

  async showtargets(words: string[]): Promise<Reply> {
    const opts = addTargetOptions(this.parser('showtargets')).parse(words, { from: 'user' }).opts();
    const selection = resolveTargets(await this.fleet(), selectorFrom(opts));
    const { counts, targets } = selection;
    const names = targets.slice(0, SAMPLE).map((h) => `${h.shortname} (${h.wwwroot})`);
    const more = targets.length > SAMPLE ? `\n… and ${targets.length - SAMPLE} more` : '';
    const notes = [`matched ${counts.matched}`, counts.excluded ? `excluded ${counts.excluded}` : '', counts.disabledLeftOut ? `disabled left out ${counts.disabledLeftOut}` : ''].filter(Boolean).join(', ');
    const flags = words.map((w) => (/[\s'"]/.test(w) ? `"${w.replaceAll('"', '')}"` : w)).join(' ');
    const warnings = selection.leftOut.map((l) => `\n:warning: ${leftOutLine(l)}`).join('');
    return { text: `${counts.targets} targets (${notes})\n${names.join('\n')}${more}${warnings}`, ephemeral: true, targets: flags };
  }

  async run(words: string[], actor: Actor): Promise<Reply> {
    const program = addTargetOptions(this.parser('run'))
      .argument('<command>').argument('[params...]')
      .option('-a, --attributes <query>').option('--canary <n>').option('--max-failures <n>').option('--by-value <sql>');
    program.parse(words, { from: 'user' });
    const [name, assignments] = program.processedArgs as [string, string[]];
    const opts = program.opts();
    const command = findCommand(name);
    this.refuse(actor, 'run', accessCategory(command));
    const params = mergeParameters(opts.attributes ? parseAttributes(opts.attributes) : {}, parseAssignments(assignments));
    const rt = await this.app.ops();
    const plan = await createPlan(rt, {
      command: command.name, params, selector: selectorFrom(opts), requestedBy: actor.id, via: this.via,
      canary: opts.canary ? Number(opts.canary) : undefined, maxFailures: opts.maxFailures, byValue: opts.byValue,
    });
    return this.afterPlan(plan, actor);
  }

  async start(words: string[], actor: Actor): Promise<Reply> {
    const run = await this.runOf(words[0]);
    if (run.requested_by !== actor.id) throw new Error(`run ${run.id} was planned by someone else; they start it, or plan your own`);
    const { started, run: after } = await startRun(await this.app.ops(), run.id, actor.id, run.plan_hash);
    if (!started) throw new Error(`run ${run.id} was already started`);
    return { text: `Run ${run.id} started: ${run.command} on ${run.target_count} targets.`, ephemeral: false, follow: after };
  }

  /** `approve <run> <typed> [hash]`: the hash is the one the approval request showed (Slack passes it along). */
  async approve(words: string[], actor: Actor, shownHash?: string): Promise<Reply> {
    const run = await this.runOf(words[0]);
    const after = await approveRun(await this.app.ops(), run.id, actor.id, words[1] ?? '', shownHash ?? words[2] ?? run.plan_hash, this.policy);
    return { text: `Run ${run.id} approved by ${actor.id} and started.`, ephemeral: false, follow: after };
  }

  async reject(words: string[], actor: Actor): Promise<Reply> {
    const run = await this.runOf(words[0]);
    await rejectRun(await this.app.ops(), run.id, actor.id);
    return { text: `Run ${run.id} rejected by ${actor.id}.`, ephemeral: false };
  }

  async runs(): Promise<Reply> {
    const list = await (await this.app.ops()).store.listRuns(10);
    return { text: list.map((r) => `#${r.id} ${r.state} ${r.command} on ${r.target_count} by ${r.requested_by}`).join('\n') || 'No runs yet.', ephemeral: true };
  }

  async status(words: string[]): Promise<Reply> {
    const rt = await this.app.ops();
    const run = await this.runOf(words[0]);
    return { text: statusText(run, await rt.store.getTargets(run.id)), ephemeral: true };
  }

  async cancel(words: string[], actor: Actor): Promise<Reply> {
    const run = await cancelRun(await this.app.ops(), (await this.runOf(words[0])).id, actor.id);
    return { text: `Run ${run.id} ${run.state}: no more targets start; those under way finish.`, ephemeral: false, follow: run.state === 'cancelling' ? run : undefined };
  }

  async go(words: string[], actor: Actor): Promise<Reply> {
    const run = await this.runOf(words[0]);
    await goRun(await this.app.ops(), run.id, actor.id);
    return { text: `Run ${run.id} goes on past its canary.`, ephemeral: false, follow: await (await this.app.ops()).store.getRun(run.id) };
  }

  async revert(words: string[], actor: Actor): Promise<Reply> {
    const run = await this.runOf(words[0]);
    return this.afterPlan(await revertRun(await this.app.ops(), run.id, actor.id), actor);
  }

  async retry(words: string[], actor: Actor): Promise<Reply> {
    const run = await this.runOf(words[0]);
    const program = this.parser('retry').argument('<id>').argument('[params...]').option('--host <name>').parse(words, { from: 'user' });
    const [, given] = program.processedArgs as [string, string[]];
    const plan = await retryRun(await this.app.ops(), run.id, actor.id, program.opts().host, parseAssignments(given));
    return this.afterPlan(plan, actor);
  }

  private async afterPlan(plan: Plan, actor: Actor): Promise<Reply> {
    const rt = await this.app.ops();
    if (needsApproval(plan.run, plan.command.writes, this.policy)) {
      await requestApproval(rt, plan.run.id, actor.id);
      const run = await rt.store.getRun(plan.run.id);
      const expected = await confirmationText(rt, run);
      return {
        text: `${planSummary(plan)}\n:lock: Needs a second person with approver rights: \`approve ${run.id} ${expected}\` (expires in ${Math.round(this.policy.ttlMs / 60_000)} min), or \`reject ${run.id}\`.`,
        ephemeral: false,
        approval: { run, expected },
      };
    }
    return { text: `${planSummary(plan)}\nStart it with \`start ${plan.run.id}\`.`, ephemeral: true, confirm: { run: plan.run } };
  }
}

const VERBS = {
  help: Router.prototype.help,
  instances: Router.prototype.instances,
  showtargets: Router.prototype.showtargets,
  run: Router.prototype.run,
  start: Router.prototype.start,
  approve: Router.prototype.approve,
  reject: Router.prototype.reject,
  runs: Router.prototype.runs,
  status: Router.prototype.status,
  cancel: Router.prototype.cancel,
  go: Router.prototype.go,
  retry: Router.prototype.retry,
  revert: Router.prototype.revert,
} as const;

/** A plan as a message: command, parameters (secrets masked), destructive flag, target count and a preview sample. */
export function planSummary(plan: Plan): string {
  const { run, targets } = plan;
  const params = Object.entries(JSON.parse(run.params) as Record<string, string>).map(([k, v]) => `${k}=${v}`).join(' ');
  const sample = targets.slice(0, 10).map((t) => `${t.shortname}: ${t.preview_old ?? ''}${t.preview_new !== null ? ` → ${t.preview_new}` : ''}${t.preview_note ? ` (${t.preview_note})` : ''}`);
  return [
    `Run ${run.id}: \`${run.command}\` ${params}`,
    run.destructive ? ':warning: Destructive: deletes or replaces data on every target.' : '',
    `${run.target_count} target${run.target_count === 1 ? '' : 's'}${targets.length > 10 ? ' (first 10 shown)' : ''}:`,
    ...sample,
    ...(plan.leftOut ?? []).map((line) => `:warning: ${line}`),
    `Plan ${run.plan_hash.slice(0, 12)}`,
  ].filter(Boolean).join('\n');
}

/** A run's state, counts and failures grouped by their message. */
export function statusText(run: RunRow, targets: TargetRow[]): string {
  const counts = new Map<string, number>();
  const failures = new Map<string, string[]>();
  for (const t of targets) {
    counts.set(t.status, (counts.get(t.status) ?? 0) + 1);
    if (!DONE_OK.includes(t.status) && t.status !== 'pending') {
      const key = `${t.status}: ${t.message ?? ''}`;
      failures.set(key, [...(failures.get(key) ?? []), t.shortname]);
    }
  }
  const lines = [`Run ${run.id} ${run.state.replaceAll('_', ' ')}: ${[...counts].map(([s, n]) => `${n} ${s.replaceAll('_', ' ')}`).join(', ')}`];
  for (const [key, hosts] of [...failures].slice(0, 10)) lines.push(`• ${key} — ${hosts.slice(0, 5).join(', ')}${hosts.length > 5 ? ` and ${hosts.length - 5} more` : ''}`);
  return lines.join('\n');
}
