import { removeMaintenanceFile } from '../moodle/maintenance.ts';
import type { FleetView, MoodleSite } from '../moodle/site.ts';
import { enterCliMaintenance, hostKey } from '../moodle/site-upgrade.ts';
import type { NodeConfig } from '../../core/nodes.ts';
import { servedSites } from './sites.ts';

/**
 * CLI maintenance on for the served sites whose dataroot this node mounts (answering those it turned on, by host
 * key), or off again for the ones named.
 */
export async function maintenanceOnNode(
  ctx: MoodleSite & FleetView,
  node: NodeConfig,
  asked: { on: true } | { on: false; hosts: string[] },
): Promise<{ hosts: string[] }> {
  const mine = (await servedSites(ctx, [node])).served.map((s) => s.target);
  if (!asked.on) {
    for (const target of mine.filter((t) => asked.hosts.includes(hostKey(t)))) await removeMaintenanceFile(target);
    return { hosts: asked.hosts };
  }
  const made: string[] = [];
  for (const target of mine) if (await enterCliMaintenance(ctx, target)) made.push(hostKey(target));
  return { hosts: made };
}
