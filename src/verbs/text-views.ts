import type { ErrorReport } from '../core/errors.ts';
import { comparisonOf, comparisonSummary } from './compare.ts';
import type { Plan } from '../ops/executor/planner.ts';
import {
  countsText,
  DONE_OK,
  shownParams,
  statusCounts,
  type RunRow,
  type TargetRow,
} from '../ops/executor/run-model.ts';
import { leftOutLine } from '../registry/selector.ts';
import { cronLate } from '../registry/status.ts';
import { templateLine } from '../registry/templates.ts';
import type { View } from './verb.ts';

/**
 * How a chat shows emphasis. Slack reads mrkdwn; the terminal chat shows plain words, so that nobody reads
 * `:warning:` or backticks there.
 */
export interface ChatStyle {
  code(text: string): string;
  warning: string;
  lock: string;
}

export const SLACK_STYLE: ChatStyle = { code: (t) => `\`${t}\``, warning: ':warning:', lock: ':lock:' };
export const TERMINAL_STYLE: ChatStyle = { code: (t) => t, warning: 'Warning:', lock: 'Approval:' };

const SAMPLE = 15;
const PLAN_SAMPLE = 10;
const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** A plan as a message: command, parameters (secrets masked), destructive flag, target count and a preview sample. */
export function planText(plan: Plan, style: ChatStyle): string {
  const { run, targets } = plan;
  const params = Object.entries(shownParams(run, targets))
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  const sample = targets.slice(0, PLAN_SAMPLE).map((t) => {
    const change = `${t.preview_old ?? ''}${t.preview_new !== null ? ` → ${t.preview_new}` : ''}`;
    return `${t.shortname}: ${[change, t.preview_note ? `(${t.preview_note})` : ''].filter(Boolean).join(' ')}`;
  });
  return [
    `Run ${run.id}: ${style.code(run.command)} ${params}${run.kind !== 'run' ? ` (${run.kind} of run ${run.parent_id})` : ''}`,
    run.destructive ? `${style.warning} Destructive: deletes or replaces data on every target.` : '',
    `${plural(run.target_count, 'target')}${targets.length > PLAN_SAMPLE ? ` (first ${PLAN_SAMPLE} shown)` : ''}:`,
    ...sample,
    ...(plan.leftOut ?? []).map((line) => `${style.warning} ${line}`),
    `Plan ${run.plan_hash.slice(0, 12)}`,
  ]
    .filter(Boolean)
    .join('\n');
}

/** A run's state, counts, and what did not succeed (or still waits for a reason) grouped by message. */
export function statusText(run: RunRow, targets: TargetRow[]): string {
  const failures = new Map<string, string[]>();
  for (const t of targets) {
    if (!DONE_OK.includes(t.status) && (t.status !== 'pending' || t.message)) {
      const key = `${t.status}: ${t.message ?? ''}`;
      failures.set(key, [...(failures.get(key) ?? []), t.shortname]);
    }
  }
  const lines = [`Run ${run.id} ${run.state.replaceAll('_', ' ')}: ${countsText(statusCounts(targets))}`];
  for (const [key, hosts] of [...failures].slice(0, 10))
    lines.push(`• ${key} — ${hosts.slice(0, 5).join(', ')}${hosts.length > 5 ? ` and ${hosts.length - 5} more` : ''}`);
  const comparison = comparisonOf(run, targets);
  if (comparison) lines.push(...comparisonSummary(comparison).filter((l) => !l.includes(' could not be read: ')));
  return lines.join('\n');
}

/** What a canary that stopped says: how to go on, or stop. */
export const canaryText = (run: RunRow, style: ChatStyle) =>
  `The canary is done (${run.canary} of ${run.target_count}): ${style.code(`go ${run.id}`)} to go on with the rest, or ${style.code(`cancel ${run.id}`)}.`;

export function errorText(report: ErrorReport, style: ChatStyle): string {
  return `${style.warning} ${report.message} (${report.code})${report.hint ? `\n${report.hint}` : ''}`;
}

/** A file's check: its verdict, then each bad line. */
export const lintText = (view: Extract<View, { kind: 'lint' }>) =>
  [
    `${view.file}: ${plural(view.lines, 'line')} checked, ${view.problems.length ? plural(view.problems.length, 'problem') : 'no problem'}`,
    ...view.problems.map((p) => `line ${p.line}: ${p.message}`),
  ].join('\n');

const ago = (ms: number) => {
  const minutes = Math.round((Date.now() - ms) / 60_000);
  return minutes < 60
    ? `${minutes} min ago`
    : minutes < 2880
      ? `${Math.round(minutes / 60)} h ago`
      : `${Math.round(minutes / 1440)} d ago`;
};

type DeliveryView = Extract<View, { kind: 'delivery' }>;

/** One node's delivery state in a line: its mode, the tree it serves and its last step. */
function nodeLine({ node, report }: DeliveryView['nodes'][number]): string {
  if (!report) return `${node}: no report yet: start its worker (vmoodle worker --node ${node})`;
  const last = report.lastStep;
  const step = last
    ? `; last ${last.step} by ${last.by} ${ago(last.at)}: ${last.ok ? 'ok' : `failed: ${last.summary}`}`
    : '';
  return `${node}: ${report.mode}, serves ${report.live}${step}; allows ${report.allowed.join(', ')}`;
}

/** The steps every node that reported allows: what a delivery may run next. */
export const allowedEverywhere = (view: DeliveryView) => {
  const reports = view.nodes.flatMap((n) => (n.report ? [n.report] : []));
  return reports.length === 0
    ? []
    : (reports[0]?.allowed ?? []).filter((step) => reports.every((r) => r.allowed.includes(step)));
};

export const sessionLine = (view: DeliveryView, style: ChatStyle) =>
  view.session
    ? `Delivery session ${view.session.id} open: ${view.session.title} (by ${view.session.opened_by}); ${style.code('deliver close')} ends it with its report`
    : `No delivery session open: ${style.code('deliver open "<title>"')} starts a journal`;

export const journalLine = (e: DeliveryView['recent'][number]) =>
  `${new Date(e.at).toISOString().slice(0, 16).replace('T', ' ')} ${e.step} on ${e.node === '*' ? 'the fleet' : e.node} by ${e.by}: ${e.ok ? 'ok' : 'FAILED'}: ${e.summary}`;

function deliveryText(view: DeliveryView, style: ChatStyle): string {
  if (view.nodes.length === 0)
    return 'No web nodes are configured (VMOODLE_NODES): delivery works on their code trees.';
  const next = allowedEverywhere(view);
  return [
    `Delivery on ${plural(view.nodes.length, 'node')}:`,
    ...view.nodes.map((n) => `• ${nodeLine(n)}`),
    next.length
      ? `Next: ${next.map((s) => style.code(`deliver ${s}`)).join(', ')}`
      : `${style.warning} The nodes allow no common step: bring them to one state first`,
    sessionLine(view, style),
    ...(view.recent.length ? ['Latest steps:', ...view.recent.slice(0, 5).map((e) => `• ${journalLine(e)}`)] : []),
  ].join('\n');
}

/** Any view as chat text. */
export function viewText(view: View, style: ChatStyle): string {
  switch (view.kind) {
    case 'plan': {
      const { run } = view.plan;
      if (view.approval) {
        return `${planText(view.plan, style)}\n${style.lock} Needs a second person with approver rights: ${style.code(`approve ${run.id} ${view.approval.expected}`)} (expires in ${view.approval.ttlMinutes} min), or ${style.code(`reject ${run.id}`)}.`;
      }
      return `${planText(view.plan, style)}\nStart it with ${style.code(`start ${run.id}`)}.`;
    }
    case 'run':
      return view.summary;
    case 'status':
      return statusText(view.run, view.targets);
    case 'runs':
      return (
        view.runs.map((r) => `#${r.id} ${r.state} ${r.command} on ${r.target_count} by ${r.requested_by}`).join('\n') ||
        'No runs yet.'
      );
    case 'selection': {
      const { counts, targets, leftOut } = view.selection;
      const names = targets.slice(0, SAMPLE).map((h) => `${h.shortname} (${h.wwwroot})`);
      const more = targets.length > SAMPLE ? `\n… and ${targets.length - SAMPLE} more` : '';
      const notes = [
        `matched ${counts.matched}`,
        counts.excluded ? `excluded ${counts.excluded}` : '',
        counts.disabledLeftOut ? `disabled left out ${counts.disabledLeftOut}` : '',
      ]
        .filter(Boolean)
        .join(', ');
      const warnings = leftOut.map((l) => `\n${style.warning} ${leftOutLine(l)}`).join('');
      return `${plural(counts.targets, 'target')} (${notes})\n${names.join('\n')}${more}${warnings}`;
    }
    case 'instances': {
      const { page } = view;
      const rows = page.items.map((i) => `${i.shortname}  ${i.vhostname}  ${i.enabled ? 'enabled' : 'disabled'}`);
      return `${page.total} instances, page ${page.page} of ${page.pages}\n${rows.join('\n')}`;
    }
    case 'cron': {
      const now = Math.floor(Date.now() / 1000);
      const rows = view.hosts.map((h) => {
        const late = cronLate(h.instance, now);
        const gap = h.instance.lastcron ? `${Math.round((now - h.instance.lastcron) / 60)} min ago` : 'never';
        return `${late ? `${style.warning} ` : ''}${h.instance.shortname} ${h.instance.vhostname}: ${h.instance.croncount} crons, last ${gap}${h.outcome ? `, ${h.outcome}` : ''}`;
      });
      const head = `The fleet's cron: ${view.schedule ? `${view.strategy} on ${style.code(view.schedule)} (UTC)` : 'off'}; ${plural(view.total, 'enabled host')}, the longest waiting first`;
      return [head, ...rows, view.total > view.hosts.length ? `… and ${view.total - view.hosts.length} more` : '']
        .filter(Boolean)
        .join('\n');
    }
    case 'registry':
      return view.summary;
    case 'lint':
      return lintText(view);
    case 'templates':
      return view.templates.length
        ? [
            `${plural(view.templates.length, 'template')}, the newest first`,
            ...view.templates.map((t) => `• ${templateLine(t)}`),
          ].join('\n')
        : 'No templates yet: lifecycle snapshot makes one.';
    case 'template':
      return `${view.deleted ? 'Deleted ' : ''}${templateLine(view.template)}`;
    case 'delivery':
      return deliveryText(view, style);
    case 'delivery-session':
      return (
        view.report ??
        `Delivery session ${view.session.id} opened: ${view.session.title}. Every step is logged into it until ${style.code('deliver close')}.`
      );
    case 'help': {
      if (view.command) {
        const c = view.command;
        return [
          `${style.code(c.name)}: ${c.summary}`,
          ...c.params.map(
            (p) =>
              `• ${p.name} (${p.type}${p.default !== undefined ? `, default ${p.default || "''"}` : p.type === 'boolean' ? ', default 0' : ', required'}): ${p.label}`,
          ),
        ].join('\n');
      }
      if (view.verb)
        return `${style.code(view.verb.path.join(' '))}: ${view.verb.summary}\nExamples:\n${view.verb.examples.map((e) => `• ${style.code(e)}`).join('\n')}`;
      const lines = [`Verbs you may use: ${view.verbs.map((v) => v.label).join(', ')}`];
      if (view.commands.length > 0 && view.verbs.some((v) => v.path[0] === 'run'))
        lines.push('Commands:', ...view.commands.map((c) => `• ${c.name}: ${c.summary}`));
      lines.push(
        `Example: ${style.code("showtargets --match '*.example.org' --exclude '*test*'")}; add --help to a verb for its flags.`,
      );
      return lines.join('\n');
    }
  }
}
