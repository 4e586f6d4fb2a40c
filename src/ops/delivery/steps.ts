import { readlink } from 'node:fs/promises';
import { basename, dirname, join, normalize } from 'node:path';
import { randomUUID } from 'node:crypto';
import { describeError } from '../../core/db/db-errors.ts';
import {
  allowedSteps,
  pathKind,
  readState,
  refusal,
  writeState,
  type DeliveryLayout,
  type NodeState,
  type Step,
} from './state.ts';
import { runTool, ToolError, type ToolOptions } from './tools.ts';
import { checkRef, updateTree, type Changes } from './vcs.ts';
import { exists } from '../moodle/dataroot.ts';

export interface StepRequest {
  step: Step;
  /** Who asked for it, as the journal names them. */
  by: string;
  /** A relative path in the code tree (`mod/forum`), for a partial secure or update. */
  component?: string;
  /** Secure into SUPERSAVE too. */
  superSave?: boolean;
  /** The branch, tag or commit an update checks out. */
  ref?: string;
}

/** What a node says after a step, or when asked where it stands. */
export interface NodeReport {
  node: string;
  ok: boolean;
  summary: string;
  mode: NodeState['mode'] | 'unconverted';
  /** Whether SAVE holds a copy of the live code taken since it last changed. */
  secured: boolean;
  hasSave: boolean;
  /** The tree the served path points to (`moodle-VCS`), or what the path is. */
  live: string;
  allowed: Step[];
  changes?: Changes;
  lastStep?: NodeState['history'][number];
}

/** Holds a node for one step at a time; `take` says who holds it when it is busy. */
export interface NodeLock {
  take(node: string, holder: string): Promise<{ release(): Promise<void> } | { busy: string }>;
}

/** A component path: relative, inside the tree, nothing a command could read as an option. */
const COMPONENT = /^(?!-)[A-Za-z0-9._-]+(?:\/[A-Za-z0-9._-]+)*$/;

export function checkComponent(component: string): string | undefined {
  const clean = normalize(component).replace(/\/+$/, '');
  if (!COMPONENT.test(clean) || clean.split('/').some((part) => part === '..' || part === '.')) {
    return `'${component}' is not a component path: give a path relative to the code tree, such as mod/forum`;
  }
  return undefined;
}

/** Where the served path points, as a tree name, or what it is instead. */
async function liveOf(layout: DeliveryLayout): Promise<string> {
  const kind = await pathKind(layout.link);
  return kind === 'symlink' ? basename(await readlink(layout.link)) : kind === 'directory' ? 'a directory' : kind;
}

/** The state as a report, with the steps it allows. */
export async function nodeReport(layout: DeliveryLayout, ok = true, summary = ''): Promise<NodeReport> {
  const state = await readState(layout);
  const hasSave = await exists(layout.save);
  return {
    node: layout.node,
    ok,
    summary,
    mode: state?.mode ?? 'unconverted',
    secured: state?.secured ?? false,
    hasSave,
    live: await liveOf(layout),
    allowed: allowedSteps(state, hasSave),
    ...(state?.history.length ? { lastStep: state.history.at(-1) } : {}),
  };
}

/**
 * Points the served path at a tree in one rename(2): a new symlink is made beside it and renamed over it, so a
 * request finds either the old tree or the new one, never no path. The tree must look like Moodle's code.
 */
export async function swapLink(layout: DeliveryLayout, tree: string, opts: ToolOptions): Promise<void> {
  if (!(await exists(join(tree, 'version.php'))))
    throw new ToolError(
      `node ${layout.node}: ${tree} has no version.php, so it is not a Moodle code tree; the served code was left as it was`,
    );
  const aside = join(dirname(layout.link), `.${basename(layout.link)}.${randomUUID().slice(0, 8)}.new`);
  await runTool(['ln', '-s', basename(tree), aside], opts);
  try {
    await runTool(['mv', '-T', aside, layout.link], opts);
  } catch (err) {
    // biome-ignore lint/plugin: the link set aside is removed at best: the move's own failure is the one reported
    await runTool(['rm', '-f', aside], opts).catch(() => undefined);
    throw err;
  }
  const now = await liveOf(layout);
  if (now !== basename(tree))
    throw new ToolError(`node ${layout.node}: ${layout.link} points to ${now} after the swap, not ${basename(tree)}`);
}

/** Copies a tree (or one component of it) into another, deletions and dotfiles included. */
async function syncTree(from: string, to: string, component: string | undefined, opts: ToolOptions): Promise<void> {
  const part = component ?? '';
  if (component !== undefined && !(await exists(join(from, part))))
    throw new ToolError(`node ${opts.node}: the component ${component} is not in ${from}`);
  await runTool(['mkdir', '-p', join(to, part)], opts);
  await runTool(['rsync', '-a', '--delete', `${join(from, part)}/`, `${join(to, part)}/`], opts);
}

/**
 * Moves a served directory aside into the version-controlled tree's place and puts a symlink where it was: the
 * only moment with no served path, which is why the sites are in CLI maintenance meanwhile.
 */
async function convert(layout: DeliveryLayout, opts: ToolOptions): Promise<string> {
  const kind = await pathKind(layout.link);
  if (kind === 'symlink') {
    const live = await liveOf(layout);
    if (live !== basename(layout.vcs))
      throw new ToolError(
        `node ${layout.node}: ${layout.link} is a symlink to ${await readlink(layout.link)}, not ${basename(layout.vcs)}: point it at ${layout.vcs} to adopt it`,
      );
    return `${layout.link} already pointed to ${basename(layout.vcs)}; adopted`;
  }
  if (kind !== 'directory')
    throw new ToolError(
      `node ${layout.node}: ${layout.link} is ${kind === 'missing' ? 'missing' : 'not a directory'}, so there is no code to convert`,
    );
  if ((await pathKind(layout.vcs)) !== 'missing')
    throw new ToolError(`node ${layout.node}: ${layout.vcs} exists already; move it away before converting`);
  const aside = join(dirname(layout.link), `.${basename(layout.link)}.convert.new`);
  await runTool(['ln', '-sfn', basename(layout.vcs), aside], opts);
  await runTool(['mv', '-T', layout.link, layout.vcs], opts);
  await runTool(['mv', '-T', aside, layout.link], opts);
  return `${layout.link} moved to ${basename(layout.vcs)} and replaced by a symlink to it`;
}

/** Does one step's work on the trees; returns what it did, and the state after it. */
async function work(
  layout: DeliveryLayout,
  state: NodeState,
  req: StepRequest,
  opts: ToolOptions,
): Promise<{ state: NodeState; summary: string; changes?: Changes }> {
  const { component } = req;
  switch (req.step) {
    case 'convert':
      return { state, summary: await convert(layout, opts) };
    case 'secure': {
      const hadSave = await exists(layout.save);
      if (component !== undefined && !hadSave)
        throw new ToolError(
          `node ${layout.node}: there is no SAVE copy to update one component of: secure the whole tree first`,
        );
      const copies = [layout.save, ...(req.superSave ? [layout.supersave] : [])];
      for (const copy of copies) await syncTree(layout.vcs, copy, component, opts);
      const what = component ? `the component ${component}` : 'the live tree';
      return {
        state: { ...state, secured: component === undefined || state.secured },
        summary: `${what} copied into ${copies.map((c) => basename(c)).join(' and ')}`,
      };
    }
    case 'switch':
    case 'rollback':
      await swapLink(layout, layout.save, opts);
      return {
        state: { ...state, mode: 'delivery' },
        summary: `${basename(layout.link)} now serves ${basename(layout.save)}`,
      };
    case 'update': {
      const changes = await updateTree(layout.vcs, req.ref, component, opts);
      const commits =
        changes.commits === undefined ? '' : `, ${changes.commits} commit${changes.commits === 1 ? '' : 's'}`;
      return {
        state,
        changes,
        summary: `${basename(layout.vcs)} updated (${changes.vcs} ${changes.range}${commits}, ${changes.files.length} file${changes.files.length === 1 ? '' : 's'} changed)`,
      };
    }
    case 'restore':
      await swapLink(layout, layout.vcs, opts);
      return {
        state: { ...state, mode: 'production', secured: false },
        summary: `${basename(layout.link)} now serves ${basename(layout.vcs)}`,
      };
  }
}

/**
 * Runs one delivery step on this node: under the node's lock, only when its state allows it, with the step, its
 * outcome and the new state written to the state file. A failed step leaves the state as it was.
 */
export async function runStep(layout: DeliveryLayout, req: StepRequest, lock: NodeLock): Promise<NodeReport> {
  const bad =
    (req.component !== undefined ? checkComponent(req.component) : undefined) ??
    (req.ref !== undefined ? checkRef(req.ref) : undefined);
  if (bad) return nodeReport(layout, false, `refused: ${bad}`);
  const held = await lock.take(layout.node, `${req.step} by ${req.by}`);
  if ('busy' in held)
    return nodeReport(layout, false, `node ${layout.node} is busy: ${held.busy}; try again when it ends`);
  try {
    const state = await readState(layout);
    const why = refusal(layout, state, await exists(layout.save), req.step);
    if (why) return await nodeReport(layout, false, `refused: ${why}`);
    const before: NodeState = state ?? { version: 1, mode: 'production', secured: false, history: [] };
    const opts: ToolOptions = { node: layout.node, user: layout.user };
    const entry = {
      step: req.step,
      at: Date.now(),
      by: req.by,
      ...(req.component ? { component: req.component } : {}),
    };
    try {
      const done = await work(layout, before, req, opts);
      await writeState(layout, {
        ...done.state,
        history: [...before.history, { ...entry, ok: true, summary: done.summary, ms: Date.now() - entry.at }],
      });
      return { ...(await nodeReport(layout, true, done.summary)), ...(done.changes ? { changes: done.changes } : {}) };
    } catch (err) {
      const summary = describeError(err);
      if (state)
        await writeState(layout, {
          ...before,
          history: [...before.history, { ...entry, ok: false, summary, ms: Date.now() - entry.at }],
        });
      return nodeReport(layout, false, summary);
    }
  } finally {
    await held.release();
  }
}
