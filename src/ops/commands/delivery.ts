import { defineCommand, type CommandContext, type CommandDef, type ParamSpec } from './command.ts';
import { servedSites } from '../delivery/sites.ts';
import { hostKey, type UpgradeReport } from '../moodle/site-upgrade.ts';
import { after, allowedSteps, DeliveryStateError, SERVING_STEPS, STEPS, type Step } from '../delivery/state.ts';
import { checkComponent, type NodeReport, type StepRequest } from '../delivery/steps.ts';
import { checkRef } from '../delivery/vcs.ts';
import { mapLimit } from '../../core/map-limit.ts';
import { describeError } from '../../core/db/db-errors.ts';
import { errorKind } from '../../core/errors.ts';

export class DeliveryError extends errorKind('target') {}

/** Upgrades started at once across the fleet; each node's max_php caps its own share. */
const UPGRADE_CONCURRENCY = 16;

/** Files of an update shown in its result; the journal keeps them all. */
const FILES_SHOWN = 20;

/** The parameters every delivery command takes, each used by the steps it names. */
const PARAMS = {
  component: {
    name: 'component',
    type: 'text',
    default: '',
    label: 'Component path (secure, update)',
    help: 'a path relative to the code tree (mod/forum) to secure or update that part only; empty for the whole tree',
    validate: (v) => (v ? checkComponent(v) : undefined),
  },
  supersave: {
    name: 'supersave',
    type: 'boolean',
    default: '0',
    label: 'Secure into SUPERSAVE too, a second safe copy',
  },
  ref: {
    name: 'ref',
    type: 'text',
    default: '',
    label: 'Branch, tag or commit (update)',
    help: "empty: the tree's own upstream branch (git) or HEAD (svn)",
    validate: (v) => (v ? checkRef(v) : undefined),
  },
  comment: { name: 'comment', type: 'text', default: '', label: 'Comment for the journal' },
} as const satisfies Record<string, ParamSpec>;

type DeliveryParams = Readonly<Record<string, string | undefined>>;

function nodesOf(ctx: CommandContext) {
  if (ctx.delivery.nodes.length === 0)
    throw new DeliveryStateError(
      'delivery works on the web nodes, and none is configured (set VMOODLE_NODES to a nodes file)',
    );
  return ctx.delivery.nodes;
}

/**
 * Refuses at once steps that the nodes' last reports say are out of order, following each node through the
 * sequence; each node checks again against its state file when a step runs.
 */
async function checkOrder(ctx: CommandContext, steps: readonly Step[], p: DeliveryParams): Promise<void> {
  for (const node of nodesOf(ctx)) {
    const report = await ctx.delivery.lastReport(node.name);
    if (!report) continue;
    let state = report.mode === 'unconverted' ? undefined : { mode: report.mode, secured: report.secured };
    let hasSave = report.hasSave;
    for (const step of steps) {
      const allowed = allowedSteps(state, hasSave);
      if (!allowed.includes(step)) {
        const where =
          state === undefined
            ? 'not converted yet'
            : `in ${state.mode}${step === 'switch' && !state.secured ? ' with no SAVE copy secured since the code last changed' : ''}`;
        throw new DeliveryStateError(
          `${step} is not allowed${steps.length > 1 ? ` at that point of ${steps.join(', ')}` : ' now'}: node ${node.name} is ${where} and allows ${allowed.join(', ')}`,
        );
      }
      ({ state, hasSave } = after(step, state, hasSave, p.component || undefined));
    }
  }
}

/** Said before a rollback serves the older code again. */
const ROLLBACK_WARNING = 'database upgrades already made may not be reversible: the older code may not run on them';

/** Where each node stands, for the preview, with the rollback's warning when the steps hold one. */
async function previewNodes(ctx: CommandContext, steps: readonly Step[]): Promise<{ note: string }> {
  const parts = await Promise.all(
    nodesOf(ctx).map(async (node) => {
      const report = await ctx.delivery.lastReport(node.name);
      return report
        ? `${node.name}: ${report.mode}, serves ${report.live}`
        : `${node.name}: no report yet (start its worker)`;
    }),
  );
  return { note: [...(steps.includes('rollback') ? [`WARNING: ${ROLLBACK_WARNING}`] : []), ...parts].join('; ') };
}

const changedFiles = (report: NodeReport) => {
  const files = report.changes?.files ?? [];
  return files.length === 0
    ? ''
    : `: ${files.slice(0, FILES_SHOWN).join(', ')}${files.length > FILES_SHOWN ? `, and ${files.length - FILES_SHOWN} more` : ''}`;
};

const by = (ctx: CommandContext) => ctx.run?.requestedBy ?? 'unknown';

/**
 * Runs a file step on every node at once and logs each node's outcome; it ends when every node has, and fails
 * when one node failed.
 */
async function onEveryNode(ctx: CommandContext, req: Omit<StepRequest, 'by'>, comment: string): Promise<string> {
  const nodes = nodesOf(ctx);
  ctx.step(`${req.step} on ${nodes.length} node${nodes.length === 1 ? '' : 's'}`);
  const reports = await Promise.all(
    nodes.map((node) => ctx.onNode(node.name, 'delivery-step', { ...req, by: by(ctx) })),
  );
  for (const report of reports) {
    await ctx.delivery.journal.log({
      run_id: ctx.run?.id ?? null,
      step: req.step,
      node: report.node,
      component: req.component ?? null,
      comment: comment || null,
      ok: report.ok,
      summary: report.summary,
      detail: report.changes ? `${report.changes.range}\n${report.changes.files.join('\n')}` : null,
      by: by(ctx),
    });
  }
  const failed = reports.filter((r) => !r.ok);
  if (failed.length > 0) {
    const done = reports.filter((r) => r.ok);
    throw new DeliveryError(
      [
        ...failed.map((r) => `${r.node}: ${r.summary}`),
        ...(done.length
          ? [
              `${req.step} done on ${done.map((r) => r.node).join(', ')}: the nodes now differ; run it again once the cause is fixed, or roll back`,
            ]
          : []),
      ].join('; '),
    );
  }
  return reports.map((r) => `${r.node}: ${r.summary}${changedFiles(r)}`).join('; ');
}

/** What the upgrades of a restore came to, in one line. */
function upgradeLine(reports: readonly UpgradeReport[], disabled: readonly string[]): string {
  const count = (outcome: UpgradeReport['outcome']) => reports.filter((r) => r.outcome === outcome).length;
  return [
    `${reports.length} site${reports.length === 1 ? '' : 's'}: ${count('upgraded')} upgraded, ${count('up to date')} up to date, ${count('failed')} failed`,
    ...reports.filter((r) => !r.ok).map((r) => `${r.shortname}: ${r.message}`),
    ...(disabled.length ? [`not upgraded, disabled: ${disabled.join(', ')} (upgrade each before enabling it)`] : []),
  ].join('; ');
}

/**
 * Step 4: every node serves the updated tree first; only then is each site's database upgraded, once, on the
 * node that holds it; then each node's opcode cache is reset.
 */
async function restore(ctx: CommandContext, p: DeliveryParams): Promise<string> {
  const nodes = nodesOf(ctx);
  const swapped = await onEveryNode(ctx, { step: 'restore' }, p.comment ?? '');
  const { served, disabled } = await servedSites(ctx, nodes);
  ctx.step(`upgrading ${served.length} site${served.length === 1 ? '' : 's'}`);
  const upgrades = await mapLimit(served, UPGRADE_CONCURRENCY, ({ target, node }) =>
    ctx.onNode(node, 'delivery-upgrade', { host: hostKey(target) }),
  );
  const upgraded = upgradeLine(upgrades, disabled);
  const failed = upgrades.filter((u) => !u.ok);
  await ctx.delivery.journal.log({
    run_id: ctx.run?.id ?? null,
    step: 'restore',
    node: '*',
    component: null,
    comment: null,
    ok: failed.length === 0,
    summary: `upgrade of ${upgraded}`,
    detail: upgrades.map((u) => `${u.shortname}: ${u.outcome}: ${u.message}`).join('\n'),
    by: by(ctx),
  });
  const resets = await Promise.all(
    nodes.map(async (node) => ({ node: node.name, ...(await ctx.onNode(node.name, 'delivery-opcache', {})) })),
  );
  const resetLine = resets.map((r) => `${r.node}: ${r.message}`).join('; ');
  if (failed.length > 0 || resets.some((r) => !r.ok)) {
    const what =
      failed.length > 0
        ? `${failed.length} of ${upgrades.length} site upgrades failed`
        : 'an opcode cache reset failed';
    throw new DeliveryError(
      `the new code is served on every node, but ${what}: roll back (delivery/rollback) to serve the previous code, then restore again once the cause is fixed; upgrade of ${upgraded}; ${resetLine}`,
    );
  }
  return `${swapped}; upgrade of ${upgraded}; ${resetLine}`;
}

/** Once per node: every site goes into CLI maintenance before any node moves its code, and leaves it whatever happened. */
async function convert(ctx: CommandContext, p: DeliveryParams): Promise<string> {
  const nodes = nodesOf(ctx);
  const made = await Promise.allSettled(
    nodes.map(async (node) => ({
      node: node.name,
      ...(await ctx.onNode(node.name, 'delivery-maintenance', { on: true })),
    })),
  );
  try {
    const refused = made.flatMap((m, i) =>
      m.status === 'rejected' ? [`${nodes[i]?.name}: ${describeError(m.reason)}`] : [],
    );
    if (refused.length > 0)
      throw new DeliveryError(`CLI maintenance could not be turned on (${refused.join('; ')}); nothing was converted`);
    const moved = await onEveryNode(ctx, { step: 'convert' }, p.comment ?? '');
    const sites = made.reduce((n, m) => n + (m.status === 'fulfilled' ? m.value.hosts.length : 0), 0);
    return `${moved}; ${sites} site${sites === 1 ? '' : 's'} put in CLI maintenance for the move and taken out after`;
  } finally {
    await Promise.all(
      made.flatMap((m) =>
        m.status === 'fulfilled'
          ? [ctx.onNode(m.value.node, 'delivery-maintenance', { on: false, hosts: m.value.hosts })]
          : [],
      ),
    );
  }
}

/** What each step does across the nodes, with the parameters it uses. */
const STEP_WORK: Record<Step, (ctx: CommandContext, p: DeliveryParams) => Promise<string>> = {
  convert,
  secure: (ctx, p) =>
    onEveryNode(
      ctx,
      { step: 'secure', ...(p.component ? { component: p.component } : {}), superSave: p.supersave === '1' },
      p.comment ?? '',
    ),
  switch: (ctx, p) => onEveryNode(ctx, { step: 'switch' }, p.comment ?? ''),
  update: (ctx, p) =>
    onEveryNode(
      ctx,
      { step: 'update', ...(p.ref ? { ref: p.ref } : {}), ...(p.component ? { component: p.component } : {}) },
      p.comment ?? '',
    ),
  restore,
  rollback: (ctx, p) => onEveryNode(ctx, { step: 'rollback' }, p.comment ?? ''),
};

/** Runs steps in order, each on every node, the next only once every node finished the one before. */
async function runSteps(ctx: CommandContext, steps: readonly Step[], p: DeliveryParams) {
  const done: string[] = [];
  for (const step of steps) {
    try {
      done.push(`${step}: ${await STEP_WORK[step](ctx, p)}`);
    } catch (err) {
      const before = done.length ? `${done.map((d) => d.split(':')[0]).join(', ')} done; ` : '';
      throw new DeliveryError(`${before}${step} failed: ${describeError(err)}`);
    }
  }
  const reports = await Promise.all(nodesOf(ctx).map((node) => ctx.delivery.lastReport(node.name)));
  return {
    status: 'applied' as const,
    new: reports.flatMap((r) => (r ? [`${r.node}: ${r.mode}, serves ${r.live}`] : [])).join('; '),
    message: done.join(' | '),
  };
}

/** The whole fleet's code is one target: the master stands for it, and its lock keeps delivery runs one at a time. */
const ON_THE_CODE = {
  category: 'delivery',
  reversible: false,
  // A step's trees moved on a node that died mid-step: the node's state file says where they are, not a rerun.
  idempotent: false,
  needsSource: false,
  writes: true,
  runsOn: 'any',
  timeoutSeconds: 4 * 3600,
} as const;

const SUMMARIES: Record<Step, string> = {
  convert:
    "Once per node, before any step: move the served code directory into the version-controlled tree's place and serve it through a symlink, with the sites in CLI maintenance meanwhile",
  secure:
    'Step 1: copy the served code into SAVE on every node (deletions and dotfiles too), whole or one component; supersave=1 into SUPERSAVE too',
  switch: 'Step 2: serve the SAVE copy on every node (an atomic symlink swap), so that the code can be updated',
  update:
    'Step 3: update the version-controlled tree on every node (git fetch and check out a branch, tag or commit; svn update), whole or one component, showing what changed',
  restore:
    "Step 4: serve the updated tree on every node, then upgrade each site once (upgrade.php --is-pending first, under CLI maintenance), purge its caches and reset each node's opcode cache",
  rollback: `Emergency rollback: serve the SAVE copy again on every node (${ROLLBACK_WARNING})`,
};

/** The parameters each step uses. */
const STEP_PARAMS: Record<Step, ParamSpec[]> = {
  convert: [],
  secure: [PARAMS.component, PARAMS.supersave],
  switch: [],
  update: [PARAMS.ref, PARAMS.component],
  restore: [],
  rollback: [],
};

const stepCommand = (step: Step): CommandDef =>
  defineCommand({
    ...ON_THE_CODE,
    name: `delivery/${step}`,
    summary: SUMMARIES[step],
    params: [...STEP_PARAMS[step], PARAMS.comment],
    destructive: SERVING_STEPS.includes(step),
    check: (ctx, p) => checkOrder(ctx, [step], p),
    preview: (ctx) => previewNodes(ctx, [step]),
    apply: (ctx, _code, p) => runSteps(ctx, [step], p),
  });

const stepsOf = (p: DeliveryParams) => (p.steps ?? '').split(',').filter(Boolean) as Step[];

/** tool_delivery's "run all": the chosen steps in order, as one run. */
const sequence = defineCommand({
  ...ON_THE_CODE,
  name: 'delivery/steps',
  summary:
    "Several steps in one run, in the order given (tool_delivery's run all): each on every node, the next once every node finished",
  params: [
    {
      name: 'steps',
      type: 'menum',
      choices: STEPS,
      label: 'Steps, in order',
      validate: (v) => (v.split(',').length > new Set(v.split(',')).size ? 'a step is named twice' : undefined),
    },
    PARAMS.component,
    PARAMS.supersave,
    PARAMS.ref,
    PARAMS.comment,
  ],
  destructive: (p) => stepsOf(p).some((s) => SERVING_STEPS.includes(s)),
  check: (ctx, p) => checkOrder(ctx, stepsOf(p), p),
  preview: (ctx, _code, p) => previewNodes(ctx, stepsOf(p)),
  apply: (ctx, _code, p) => runSteps(ctx, stepsOf(p), p),
});

export const DELIVERY_COMMANDS: readonly CommandDef[] = [...STEPS.map(stepCommand), sequence];
