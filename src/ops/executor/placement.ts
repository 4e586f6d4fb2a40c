import { placementOf, placingDataroot, type CommandDef, type Params } from '../commands/command.ts';
import type { MoodleTarget } from '../moodle/target.ts';
import { nodeOfDataroot, noNodeReason, type NodeConfig } from '../../core/nodes.ts';
import { errorKind } from '../../core/errors.ts';

/** A plan that cannot be made as asked: the operator changes the request. */
export class PlanError extends errorKind('bad_plan') {}

export interface PlacedTarget {
  target: MoodleTarget;
  /** The node whose queue runs it, or null when any worker may. */
  node: string | null;
}

/**
 * Which queue each target's work goes to. A command that works on files or through Moodle's PHP runs on the node
 * that mounts the target's dataroot; a target under no configured node is left out, with why.
 */
export function placeTargets(
  nodes: readonly NodeConfig[],
  command: CommandDef,
  params: Params,
  targets: readonly MoodleTarget[],
): { placed: PlacedTarget[]; leftOut: string[] } {
  const placement = placementOf(command, params);
  if (placement === 'any' || (placement === 'node' && nodes.length === 0))
    return { placed: targets.map((target) => ({ target, node: null })), leftOut: [] };
  if (nodes.length === 0) {
    throw new PlanError(
      `${command.name} with these parameters runs Moodle's PHP on the node that holds each instance, and no nodes are configured (set VMOODLE_NODES to a nodes file)`,
    );
  }
  const placed: PlacedTarget[] = [];
  const leftOut: string[] = [];
  for (const target of targets) {
    const dataroot = placingDataroot(command, params, target);
    const node = nodeOfDataroot(nodes, dataroot);
    if (node) placed.push({ target, node: node.name });
    else leftOut.push(`left out ${target.host.shortname} (${target.host.wwwroot}): ${noNodeReason(nodes, dataroot)}`);
  }
  return { placed, leftOut };
}

/** What the preview says of where a target runs. */
export function placementNote(command: CommandDef, params: Params, node: string | null): string | undefined {
  if (!node) return undefined;
  return placementOf(command, params) === 'php' ? `through Moodle's PHP on node ${node}` : `on node ${node}`;
}
