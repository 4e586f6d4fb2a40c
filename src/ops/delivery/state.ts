import { lstat, readFile, rename, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { errorKind } from '../../core/errors.ts';
import type { NodeConfig } from '../../core/nodes.ts';

/**
 * Where a node's code trees are. The node's code root is the path the web server serves (`…/moodle`); beside it
 * live the version-controlled tree that updates land in, the SAVE copy that serves users during a delivery, an
 * optional SUPERSAVE copy, and the state file. Once converted, the code root is a symlink to one of the trees.
 */
export interface DeliveryLayout {
  node: string;
  user: string | undefined;
  /** The served path: a symlink to the live tree. */
  link: string;
  vcs: string;
  save: string;
  supersave: string;
  stateFile: string;
}

export function deliveryLayout(node: NodeConfig): DeliveryLayout {
  const dir = dirname(node.codeRoot);
  const name = basename(node.codeRoot);
  return {
    node: node.name,
    user: node.deliveryUser,
    link: node.codeRoot,
    vcs: join(dir, `${name}-VCS`),
    save: join(dir, `${name}-SAVE`),
    supersave: join(dir, `${name}-SUPERSAVE`),
    stateFile: join(dir, `.${name}-delivery.json`),
  };
}

/** tool_delivery's two modes: production serves the version-controlled tree, delivery the SAVE copy. */
export type Mode = 'production' | 'delivery';

export const STEPS = ['convert', 'secure', 'switch', 'update', 'restore', 'rollback'] as const;
export type Step = (typeof STEPS)[number];

/** Steps that change the code users are served: destructive, so a second person approves them in chat. */
export const SERVING_STEPS: readonly Step[] = ['convert', 'switch', 'restore', 'rollback'];

export interface HistoryEntry {
  step: Step;
  at: number;
  by: string;
  ok: boolean;
  summary: string;
  /** How long it took, in ms. */
  ms: number;
  component?: string;
}

export interface NodeState {
  version: 1;
  mode: Mode;
  /** Whether SAVE holds a copy of the live code taken since it last changed (a switch serves it). */
  secured: boolean;
  history: HistoryEntry[];
}

/** Steps a node's history keeps; the journal in the master database keeps them all. */
const HISTORY_KEPT = 200;

export class DeliveryStateError extends errorKind('run_state') {}

export async function readState(layout: DeliveryLayout): Promise<NodeState | undefined> {
  let text: string;
  try {
    text = await readFile(layout.stateFile, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  let state: NodeState;
  try {
    state = JSON.parse(text) as NodeState;
  } catch {
    throw new DeliveryStateError(
      `node ${layout.node}: the delivery state file ${layout.stateFile} is not valid JSON; fix it or restore it from the journal`,
    );
  }
  if (
    state.version !== 1 ||
    (state.mode !== 'production' && state.mode !== 'delivery') ||
    !Array.isArray(state.history)
  ) {
    throw new DeliveryStateError(
      `node ${layout.node}: the delivery state file ${layout.stateFile} is not one this version wrote`,
    );
  }
  return state;
}

/** Written aside and renamed into place, so that a crash never leaves half a state file. */
export async function writeState(layout: DeliveryLayout, state: NodeState): Promise<void> {
  const kept = { ...state, history: state.history.slice(-HISTORY_KEPT) };
  const aside = `${layout.stateFile}.${process.pid}.tmp`;
  await writeFile(aside, `${JSON.stringify(kept, null, 2)}\n`, { mode: 0o644 });
  await rename(aside, layout.stateFile);
}

/** The steps a node's state allows, in tool_delivery's order: production 1–2, delivery 3–4, rollback whenever SAVE can serve. */
export function allowedSteps(state: Pick<NodeState, 'mode' | 'secured'> | undefined, hasSave: boolean): Step[] {
  if (!state) return ['convert'];
  if (state.mode === 'production')
    return ['secure', ...(state.secured ? (['switch'] as const) : []), ...(hasSave ? (['rollback'] as const) : [])];
  return ['update', 'restore'];
}

const WHY: Record<Step, string> = {
  convert: 'it is done once, before any other step',
  secure: 'secure copies the code users are served, in production',
  switch: 'switch serves the SAVE copy, which needs a secure step since the code last changed',
  update: 'update works on the version-controlled tree while users are served the SAVE copy, in delivery',
  restore: 'restore serves the updated tree again, in delivery',
  rollback: 'rollback serves the SAVE copy again, in production, once there is one',
};

/** The mode and SAVE copy a step leaves a node in, for checking a sequence of steps before it runs. */
export function after(
  step: Step,
  state: Pick<NodeState, 'mode' | 'secured'> | undefined,
  hasSave: boolean,
  component?: string,
): { state: Pick<NodeState, 'mode' | 'secured'>; hasSave: boolean } {
  const now = state ?? { mode: 'production' as const, secured: false };
  switch (step) {
    case 'convert':
      return { state: { mode: 'production', secured: false }, hasSave };
    case 'secure':
      return { state: { ...now, secured: component === undefined || now.secured }, hasSave: true };
    case 'switch':
    case 'rollback':
      return { state: { ...now, mode: 'delivery' }, hasSave };
    case 'update':
      return { state: now, hasSave };
    case 'restore':
      return { state: { mode: 'production', secured: false }, hasSave };
  }
}

/** Why a step may not run now on this node, or undefined. */
export function refusal(
  layout: DeliveryLayout,
  state: NodeState | undefined,
  hasSave: boolean,
  step: Step,
): string | undefined {
  const allowed = allowedSteps(state, hasSave);
  if (allowed.includes(step)) return undefined;
  if (!state) return `node ${layout.node} has not been converted to the delivery layout: run deliver convert first`;
  if (step === 'convert')
    return `node ${layout.node} is already converted: ${layout.link} is a symlink the delivery steps swap`;
  return `${step} is not allowed on node ${layout.node} in ${state.mode} (${WHY[step]}); allowed now: ${allowed.join(', ')}`;
}

/** What a path is: a symlink (and to where), a directory, or nothing. */
export async function pathKind(path: string): Promise<'symlink' | 'directory' | 'missing' | 'other'> {
  try {
    const stat = await lstat(path);
    return stat.isSymbolicLink() ? 'symlink' : stat.isDirectory() ? 'directory' : 'other';
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    throw err;
  }
}
