import { UnrecoverableError } from 'bullmq';
import { commandContext } from './command-contexts.ts';
import { sitePaths } from '../moodle/code-config.ts';
import { describeError } from '../../core/db/db-errors.ts';
import { type MoodleTarget, TargetError } from '../moodle/target.ts';
import { upgradeSite, UPGRADE_SCRIPTS, type UpgradeReport } from '../moodle/site-upgrade.ts';
import type { NodeConfig } from '../../core/nodes.ts';
import type { NodeTaskName, NodeTasks } from '../commands/node-tasks.ts';
import type { RunServices } from './run-services.ts';
import { redisNodeLock } from '../delivery/lock.ts';
import { maintenanceOnNode } from '../delivery/node-maintenance.ts';
import { publishReport } from '../delivery/sites.ts';
import { deliveryLayout } from '../delivery/state.ts';
import { runStep, type StepRequest } from '../delivery/steps.ts';
import { runTool } from '../delivery/tools.ts';
import { sendContents, type SendRequest } from '../files/transfer.ts';
import { readLangLocal } from '../files/lang-local.ts';

/** Runs one task on this node, for the run that asked for it. */
export async function runNodeTask<K extends NodeTaskName>(
  rt: RunServices,
  node: NodeConfig,
  task: K,
  payload: NodeTasks[K]['payload'],
): Promise<NodeTasks[K]['answer']> {
  const layout = deliveryLayout(node);
  // Only the tasks on sites read the registry: a step on the trees needs none of it.
  const sites = async () => {
    const fleet = await rt.registry.loadFleet();
    const site = (key: string): MoodleTarget | undefined => {
      const [kind, id] = key.split(':');
      const host = fleet.byKindAndId(kind as string, Number(id));
      return host ? rt.moodleTarget(fleet, host) : undefined;
    };
    // Only the work on sites through Moodle needs a command's context; reading a site's files needs its paths alone.
    const context = () =>
      commandContext(rt, rt.moodleTarget(fleet, fleet.masterHost), { phpScripts: UPGRADE_SCRIPTS }, false, fleet);
    return { context, site };
  };
  const paths = async (key: string) => {
    const target = (await sites()).site(key);
    if (!target?.dataroot) throw new TargetError(`host ${key} is no longer in the registry, or has no dataroot`);
    return sitePaths(node.codeRoot, target.dataroot);
  };
  const answer = async (): Promise<unknown> => {
    switch (task) {
      case 'delivery-step':
        return publishReport(
          rt,
          await runStep(
            layout,
            payload as StepRequest,
            redisNodeLock(rt.redis, (n) => rt.keys.deliveryLock(n), rt.log),
          ),
        );
      case 'delivery-maintenance':
        return maintenanceOnNode(
          (await sites()).context(),
          node,
          payload as NodeTasks['delivery-maintenance']['payload'],
        );
      case 'delivery-upgrade': {
        const { context, site } = await sites();
        const key = (payload as { host: string }).host;
        const target = site(key);
        if (!target)
          return {
            host: key,
            shortname: '?',
            ok: false,
            outcome: 'failed',
            message: 'no longer in the registry',
          } satisfies UpgradeReport;
        return upgradeSite(context(), target);
      }
      case 'delivery-opcache': {
        if (!node.opcacheReset) return { ok: true, message: 'no opcache_reset command configured' };
        try {
          await runTool(node.opcacheReset, { node: node.name, timeoutMs: 120_000 });
          return { ok: true, message: 'opcode cache reset' };
        } catch (err) {
          return { ok: false, message: describeError(err) };
        }
      }
      case 'files-send': {
        const req = payload as SendRequest;
        return sendContents(rt.redis, rt.keys, node, (await paths(req.host)).filedir, req);
      }
      case 'lang-read': {
        const req = payload as NodeTasks['lang-read']['payload'];
        return readLangLocal((await paths(req.host)).langlocalroot, req);
      }
    }
    throw new UnrecoverableError(`unknown node task ${String(task)}`);
  };
  return (await answer()) as NodeTasks[K]['answer'];
}
