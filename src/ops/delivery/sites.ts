import type { Redis } from 'ioredis';
import type { FleetView } from '../moodle/site.ts';
import type { MoodleTarget } from '../moodle/target.ts';
import { nodeOfDataroot, type NodeConfig } from '../../core/nodes.ts';
import type { RedisKeys } from '../../core/redis-keys.ts';
import { deliveryLayout } from './state.ts';
import { nodeReport, type NodeReport } from './steps.ts';

/**
 * The sites a delivery's code serves: the master and the enabled instances whose dataroot is on a node. Disabled
 * ones are named, since their database will need the upgrade before they are enabled again.
 */
export async function servedSites(
  ctx: FleetView,
  nodes: readonly NodeConfig[],
): Promise<{ served: Array<{ target: MoodleTarget; node: string }>; disabled: string[] }> {
  const placed = (await ctx.members()).flatMap((m) => {
    const node = nodeOfDataroot(nodes, m.target.dataroot);
    return node ? [{ member: m, node: node.name }] : [];
  });
  return {
    served: placed.filter((p) => p.member.enabled).map((p) => ({ target: p.member.target, node: p.node })),
    disabled: placed.filter((p) => !p.member.enabled).map((p) => p.member.name),
  };
}

/** Where nodes tell where their delivery stands: the product's Redis and its key names. */
export interface ReportBoard {
  redis: Redis;
  keys: Pick<RedisKeys, 'deliveryState'>;
}

/** Tells Redis where a node stands, for status views on machines that cannot read its files. */
export async function publishReport(rt: ReportBoard, report: NodeReport): Promise<NodeReport> {
  await rt.redis.set(rt.keys.deliveryState(report.node), JSON.stringify({ ...report, at: Date.now() }));
  return report;
}

/** Says where this node stands as its worker starts, so that status views and plans know before any step. */
export async function publishNodeReport(rt: ReportBoard, node: NodeConfig): Promise<void> {
  await publishReport(rt, await nodeReport(deliveryLayout(node)));
}
