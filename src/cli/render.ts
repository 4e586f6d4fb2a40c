import type { Command as LineParser } from 'commander';
import type { CommandDef } from '../ops/commands/command.ts';
import { cellOf, comparisonOf, comparisonSummary, differences, type Comparison } from '../verbs/compare.ts';
import type { Plan } from '../ops/executor/planner.ts';
import {
  countsText,
  DONE_OK,
  FINAL_STATES,
  shownParams,
  statusCounts,
  type RunEvent,
  type RunRow,
  type TargetRow,
} from '../ops/executor/run-model.ts';
import type { Host } from '../registry/fleet.ts';
import { leftOutLine, type Selection } from '../registry/selector.ts';
import { cronLate, instanceJson, instanceState, mnetLabel } from '../registry/status.ts';
import { templateLine } from '../registry/templates.ts';
import type { View } from '../verbs/verb.ts';
import { journalLine, lintText, sessionLine, TERMINAL_STYLE, viewText } from '../verbs/text-views.ts';
import type { Output } from './output.ts';

const PREVIEW_SAMPLE = 10;
/** Up to this many targets, the report lists each; past it, only those that did not simply succeed. */
const FULL_REPORT = 50;

const time = (ms: number | null) => (ms ? new Date(ms).toISOString().replace('T', ' ').slice(0, 19) : '');
const formatTime = (t: number) => (t > 0 ? new Date(t * 1000).toISOString().replace('T', ' ').slice(0, 16) : 'never');
const formatGap = (s: number) =>
  s >= 86_400 ? `${(s / 86_400).toFixed(1)} d` : s >= 3600 ? `${(s / 3600).toFixed(1)} h` : `${Math.round(s / 60)} min`;
const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
const params = (run: RunRow, targets: readonly TargetRow[]) => Object.entries(shownParams(run, targets));

export function printPlan(out: Output, plan: Plan): void {
  const { run, targets, command } = plan;
  out.line(`Run ${run.id}: ${run.command}${run.kind !== 'run' ? ` (${run.kind} of run ${run.parent_id})` : ''}`);
  for (const [key, value] of params(run, targets)) out.line(`  ${key} = ${out.cut(value)}`);
  if (command.needsSource) out.line(`Source: ${run.source.split(':').slice(2).join(':') || 'master'}`);
  if (run.destructive) out.line('DESTRUCTIVE: this command deletes or replaces data on every target.');
  out.line(
    `${plural(targets.length, 'target')}${run.canary ? `, canary: the first ${run.canary} then wait for a go` : ''}; no new target starts once more than ${run.max_failures} fail`,
  );
  out.table(
    ['TARGET', 'NOW', 'AFTER', 'NOTE'],
    targets
      .slice(0, PREVIEW_SAMPLE)
      .map((t) => [
        t.shortname,
        t.preview_old ?? (t.preview_new !== null ? '(unset)' : ''),
        t.preview_new ?? '',
        t.preview_note ?? '',
      ]),
  );
  if (targets.length > PREVIEW_SAMPLE) out.line(`… and ${targets.length - PREVIEW_SAMPLE} more`);
  for (const line of plan.leftOut ?? []) out.line(`Warning: ${line}`);
  out.line(`Plan hash ${run.plan_hash.slice(0, 12)}`);
}

const hostJson = (h: Host) => ({
  id: h.id,
  kind: h.kind,
  shortname: h.shortname,
  name: h.name,
  wwwroot: h.wwwroot,
  enabled: h.enabled,
});

export function printSelection(out: Output, selection: Selection): void {
  const { counts } = selection;
  out.data({
    source: hostJson(selection.source),
    targets: selection.targets.map(hostJson),
    counts,
    leftOut: selection.leftOut.map(leftOutLine),
  });
  const notes = [
    `matched ${counts.matched}`,
    counts.excluded ? `excluded ${counts.excluded}` : '',
    counts.disabledLeftOut ? `disabled left out ${counts.disabledLeftOut}` : '',
    counts.sourceLeftOut ? 'source left out' : '',
    counts.filteredOut ? `filtered out ${counts.filteredOut}` : '',
  ].filter(Boolean);
  out.line(`${plural(counts.targets, 'target')} (${notes.join(', ')}; ${counts.registry} instances in the registry)`);
  out.table(
    ['SHORTNAME', 'NAME', 'WWWROOT', 'STATE'],
    selection.targets.map((h) => [
      h.shortname,
      h.name,
      h.wwwroot,
      h.kind === 'master' ? 'master' : h.enabled ? 'enabled' : 'disabled',
    ]),
  );
  for (const left of selection.leftOut) out.line(`Warning: ${leftOutLine(left)}`);
}

function targetJson(t: TargetRow) {
  return {
    shortname: t.shortname,
    wwwroot: t.wwwroot,
    status: t.status,
    old: t.old_value,
    new: t.new_value,
    message: t.message,
    value: t.returned_value,
    attempts: t.attempts,
    durationMs: t.duration_ms,
  };
}

/** Up to this many hosts, a comparison's table has a column per host; past it, the hosts that differ are listed. */
const MATRIX_HOSTS = 8;

/** A compare run's differences: the items hosts disagree on, as a table; the JSON form carries the whole matrix. */
function printComparison(out: Output, cmp: Comparison): void {
  for (const line of comparisonSummary(cmp).slice(0, 1)) out.line(line);
  const diffs = differences(cmp);
  if (diffs.length === 0) return;
  const item = cmp.item.toUpperCase();
  if (cmp.hosts.length <= MATRIX_HOSTS) {
    out.table(
      [item, ...cmp.hosts],
      diffs.map((d) => [d.item, ...cmp.hosts.map((h) => cellOf(cmp, d.item, h))]),
    );
  } else {
    out.table(
      [item, 'MOST HOSTS', 'THE OTHERS'],
      diffs.map((d) => [d.item, d.majority, d.odd.map((o) => `${o.host}=${o.value}`).join(' ')]),
    );
  }
}

const comparisonJson = (cmp: Comparison) => ({
  item: cmp.item,
  hosts: cmp.hosts,
  matrix: Object.fromEntries(
    cmp.items.map((item) => [item, Object.fromEntries(cmp.hosts.map((h) => [h, cellOf(cmp, item, h)]))]),
  ),
  differences: differences(cmp),
});

/** The end of a run (or of its canary): counts and every target that did not simply succeed. Returns whether all these succeeded. */
export function printReport(out: Output, run: RunRow, targets: TargetRow[], head: object = {}): boolean {
  const counts = statusCounts(targets);
  const cmp = comparisonOf(run, targets);
  out.data({
    ...head,
    run: run.id,
    state: run.state,
    counts: Object.fromEntries(counts),
    targets: targets.map(targetJson),
    ...(cmp ? { comparison: comparisonJson(cmp) } : {}),
  });
  out.line(`Run ${run.id} ${run.state}: ${countsText(counts)}`);
  if (cmp) printComparison(out, cmp);
  const notable = cmp
    ? targets.filter((t) => !DONE_OK.includes(t.status))
    : targets.length <= FULL_REPORT
      ? targets
      : targets.filter((t) => !DONE_OK.includes(t.status) || t.returned_value);
  if (notable.length > 0)
    out.table(
      ['TARGET', 'STATUS', 'OLD', 'NEW', 'MESSAGE'],
      notable.map((t) => [
        t.shortname,
        t.status,
        t.old_value ?? '',
        t.new_value ?? '',
        t.returned_value ?? t.message ?? '',
      ]),
    );
  return targets.every((t) => DONE_OK.includes(t.status));
}

/** Who, what, when and what happened, then the report; the JSON form carries the same. */
export function printStatus(out: Output, run: RunRow, targets: TargetRow[], events: RunEvent[]): boolean {
  out.line(
    `Run ${run.id}: ${run.command} by ${run.requested_by} via ${run.via}, ${time(run.created_at)}${run.parent_id ? ` (${run.kind} of run ${run.parent_id})` : ''}`,
  );
  for (const [key, value] of params(run, targets)) out.line(`  ${key} = ${out.cut(value)}`);
  for (const event of events)
    out.line(`  ${time(event.at)} ${event.kind} by ${event.actor}${event.detail ? `: ${event.detail}` : ''}`);
  const head = {
    command: run.command,
    kind: run.kind,
    parent: run.parent_id,
    params: Object.fromEntries(params(run, targets)),
    requestedBy: run.requested_by,
    via: run.via,
    createdAt: run.created_at,
    startedAt: run.started_at,
    finishedAt: run.finished_at,
    planHash: run.plan_hash,
    events: events.map((e) => ({ kind: e.kind, actor: e.actor, at: e.at, detail: e.detail })),
  };
  return printReport(out, run, targets, head) && FINAL_STATES.includes(run.state);
}

export function describeCommand(out: Output, command: CommandDef): void {
  const traits = [
    typeof command.destructive === 'function'
      ? 'destructive unless a single SELECT'
      : command.destructive
        ? 'destructive'
        : '',
    command.reversible ? 'reversible (vmoodle runs revert)' : '',
    command.needsSource ? 'reads from the source host (--fromhost, default the master)' : '',
  ].filter(Boolean);
  out.data({
    ...command,
    destructive: typeof command.destructive === 'function' ? 'unless a single SELECT' : command.destructive,
  });
  out.line(`${command.name}: ${command.summary}`);
  if (traits.length) out.line(traits.join('; '));
  out.line();
  out.table(
    ['PARAMETER', 'TYPE', 'DEFAULT', 'MEANING'],
    command.params.map((p) => [
      p.name,
      p.choices ? `${p.type}: ${p.choices.join('|')}` : p.type,
      p.default ?? (p.type === 'boolean' ? '0' : '(required)'),
      p.help ? `${p.label}; ${p.help}` : p.label,
    ]),
  );
  const example = command.params
    .filter((p) => p.default === undefined && p.type !== 'boolean')
    .map((p) => `${p.name}=…`)
    .join(' ');
  out.line(`\nExample:\n  vmoodle run ${command.name} --match '*.example.org' ${example}`.trimEnd());
}

/**
 * A verb's view on the terminal, or as one JSON document with --json. Returns false when what it shows did not
 * succeed (the exit code is then 1). Plans are printed by the caller, which confirms and starts them.
 */
export function printView(out: Output, view: View, program: LineParser): boolean {
  switch (view.kind) {
    case 'plan':
      printPlan(out, view.plan);
      return true;
    case 'run':
      out.data({ run: view.run.id, state: view.run.state });
      out.line(view.summary);
      return true;
    case 'status':
      return printStatus(out, view.run, view.targets, view.events);
    case 'runs':
      out.data(
        view.runs.map((r) => ({
          id: r.id,
          state: r.state,
          command: r.command,
          targets: r.target_count,
          requestedBy: r.requested_by,
          createdAt: r.created_at,
          summary: r.summary ? JSON.parse(r.summary) : null,
        })),
      );
      out.table(
        ['ID', 'STATE', 'COMMAND', 'TARGETS', 'BY', 'CREATED', 'RESULT'],
        view.runs.map((r) => [
          r.id,
          r.state,
          r.command,
          r.target_count,
          r.requested_by,
          time(r.created_at),
          r.summary
            ? Object.entries(JSON.parse(r.summary) as Record<string, number>)
                .map(([s, n]) => `${n} ${s}`)
                .join(', ')
            : '',
        ]),
      );
      return true;
    case 'selection':
      printSelection(out, view.selection);
      return true;
    case 'instances': {
      const { page } = view;
      out.data({ ...page, items: page.items.map(instanceJson) });
      out.table(
        ['ID', 'SHORTNAME', 'NAME', 'WWWROOT', 'STATE', 'MNET', 'CRONS', 'LAST CRON', 'GAP'],
        page.items.map((i) => [
          i.id,
          i.shortname,
          i.name,
          i.vhostname,
          instanceState(i),
          mnetLabel(i.mnet),
          i.croncount,
          formatTime(i.lastcron),
          i.lastcrongap || i.lastcron ? `${formatGap(i.lastcrongap)}${cronLate(i) ? ' LATE' : ''}` : '-',
        ]),
      );
      out.line(`page ${page.page} of ${page.pages}, ${plural(page.total, 'instance')}`);
      return true;
    }
    case 'cron': {
      const now = Math.floor(Date.now() / 1000);
      out.data({
        schedule: view.schedule ?? null,
        strategy: view.strategy,
        total: view.total,
        hosts: view.hosts.map((h) => ({
          ...instanceJson(h.instance),
          outcome: h.outcome ?? null,
          outcomeAt: h.at ?? null,
          late: cronLate(h.instance, now),
        })),
      });
      out.line(
        `The fleet's cron: ${view.schedule ? `${view.strategy} on '${view.schedule}' (UTC)` : 'off (VMOODLE_CRON)'}; ${plural(view.total, 'enabled host')}, the longest waiting first`,
      );
      out.table(
        ['SHORTNAME', 'WWWROOT', 'CRONS', 'LAST CRON', 'GAP', 'LAST OUTCOME'],
        view.hosts.map((h) => [
          h.instance.shortname,
          h.instance.vhostname,
          h.instance.croncount,
          formatTime(h.instance.lastcron),
          h.instance.lastcron
            ? `${formatGap(now - h.instance.lastcron)}${cronLate(h.instance, now) ? ' LATE' : ''}`
            : 'never',
          h.outcome ?? '-',
        ]),
      );
      if (view.total > view.hosts.length) out.line(`… and ${view.total - view.hosts.length} more (--limit)`);
      return view.hosts.every((h) => !cronLate(h.instance, now) && (h.outcome ?? 'completed') === 'completed');
    }
    case 'lint':
      out.data({ file: view.file, lines: view.lines, problems: view.problems });
      out.line(lintText(view));
      return view.problems.length === 0;
    case 'registry':
      out.data(view.data);
      out.line(view.summary);
      return true;
    case 'templates':
      out.data(view.templates);
      if (view.templates.length === 0) out.line('No templates yet: vmoodle lifecycle snapshot makes one.');
      for (const t of view.templates) out.line(templateLine(t));
      return true;
    case 'template':
      out.data(view.template);
      out.line(`${view.deleted ? 'deleted ' : ''}${templateLine(view.template)}`);
      return true;
    case 'delivery':
      out.data({ nodes: view.nodes, session: view.session ?? null, recent: view.recent });
      out.table(
        ['NODE', 'MODE', 'SERVES', 'LAST STEP', 'ALLOWS'],
        view.nodes.map(({ node, report }) => [
          node,
          report?.mode ?? 'no report',
          report?.live ?? '-',
          report?.lastStep
            ? `${report.lastStep.step} ${report.lastStep.ok ? 'ok' : 'failed'} ${time(report.lastStep.at)}`
            : '-',
          report?.allowed.join(', ') ?? '-',
        ]),
      );
      out.line(sessionLine(view, TERMINAL_STYLE));
      for (const entry of view.recent) out.line(journalLine(entry));
      return view.nodes.every((n) => n.report);
    case 'delivery-session':
      out.data({ session: view.session, entries: view.entries });
      out.line(viewText(view, TERMINAL_STYLE));
      return true;
    case 'help': {
      if (view.command) {
        describeCommand(out, view.command);
        return true;
      }
      const verb = view.verb;
      if (verb) {
        const found = verb.path.reduce<LineParser | undefined>(
          (cmd, word) => cmd?.commands.find((c) => c.name() === word),
          program,
        );
        found?.outputHelp();
        return true;
      }
      out.data(view.commands.map((c) => ({ name: c.name, summary: c.summary })));
      if (out.json) return true;
      program.outputHelp();
      out.line('\nCommands to run (vmoodle help <name> for one):');
      out.table(
        ['COMMAND', 'WHAT IT DOES'],
        view.commands.map((c) => [c.name, c.summary]),
      );
      return true;
    }
  }
}
