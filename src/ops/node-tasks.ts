import type { CommandContext } from './command.ts';
import { sitePaths } from './moodle/code-config.ts';
import { describeError } from './moodle/db-errors.ts';
import { removeMaintenanceFile } from './moodle/maintenance.ts';
import type { MoodleTarget } from './moodle/target.ts';
import { enterCliMaintenance, hostKey, upgradeSite, UPGRADE_SCRIPTS, type UpgradeReport } from './moodle/upgrade.ts';
import type { NodeConfig } from './nodes.ts';
import type { RunServices } from './executor/run-services.ts';
import { redisNodeLock } from './delivery/lock.ts';
import { publishReport, servedSites } from './delivery/sites.ts';
import { deliveryLayout } from './delivery/state.ts';
import { runStep, type NodeReport, type StepRequest } from './delivery/steps.ts';
import { runTool } from './delivery/tools.ts';
import { sendContents, type SendAnswer, type SendRequest } from './files/transfer.ts';
import { readLangLocal, type LangFile, type LangRequest } from './files/lang-local.ts';

/** The work a run asks of one node's own worker, by name, with what each is given and answers. */
export interface NodeTasks {
  'delivery-step': { payload: StepRequest; answer: NodeReport };
  /** CLI maintenance on for the served sites whose dataroot the node mounts (those it made, by host key), or off again. */
  'delivery-maintenance': { payload: { on: true } | { on: false; hosts: string[] }; answer: { hosts: string[] } };
  'delivery-upgrade': { payload: { host: string }; answer: UpgradeReport };
  'delivery-opcache': { payload: Record<string, never>; answer: { ok: boolean; message: string } };
  /** File contents of a source host's pool, left for a target's node (see files/transfer.ts). */
  'files-send': { payload: SendRequest; answer: SendAnswer };
  /** A source host's local language customisations. */
  'lang-read': { payload: LangRequest & { host: string }; answer: LangFile[] };
}

export type NodeTaskName = keyof NodeTasks;

/** Runs one task on this node, for the run that asked for it. */
export async function runNodeTask<K extends NodeTaskName>(rt: RunServices, node: NodeConfig, task: K, payload: NodeTasks[K]['payload']): Promise<NodeTasks[K]['answer']> {
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
    const context = () => rt.commandContext(rt.moodleTarget(fleet, fleet.masterHost), { phpScripts: UPGRADE_SCRIPTS }, false, fleet);
    return { context, site };
  };
  const paths = async (key: string) => {
    const target = (await sites()).site(key);
    if (!target?.dataroot) throw new Error(`host ${key} is no longer in the registry, or has no dataroot`);
    return sitePaths(node.codeRoot, target.dataroot);
  };
  const answer = async (): Promise<unknown> => {
    switch (task) {
      case 'delivery-step':
        return publishReport(rt, await runStep(layout, payload as StepRequest, redisNodeLock(rt.redis, (n) => rt.keys.deliveryLock(n), rt.log)));
      case 'delivery-maintenance':
        return maintenanceOnNode((await sites()).context(), node, payload as NodeTasks['delivery-maintenance']['payload']);
      case 'delivery-upgrade': {
        const { context, site } = await sites();
        const key = (payload as { host: string }).host;
        const target = site(key);
        if (!target) return { host: key, shortname: '?', ok: false, outcome: 'failed', message: 'no longer in the registry' } satisfies UpgradeReport;
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
    throw new Error(`unknown node task ${String(task)}`);
  };
  return (await answer()) as NodeTasks[K]['answer'];
}

async function maintenanceOnNode(ctx: CommandContext, node: NodeConfig, asked: NodeTasks['delivery-maintenance']['payload']): Promise<{ hosts: string[] }> {
  const mine = (await servedSites(ctx, [node])).served.map((s) => s.target);
  if (!asked.on) {
    for (const target of mine.filter((t) => asked.hosts.includes(hostKey(t)))) await removeMaintenanceFile(target);
    return { hosts: asked.hosts };
  }
  const made: string[] = [];
  for (const target of mine) if (await enterCliMaintenance(ctx, target)) made.push(hostKey(target));
  return { hosts: made };
}
