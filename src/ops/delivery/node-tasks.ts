import { join } from 'node:path';
import type { CommandContext } from '../command.ts';
import { sitePaths } from '../moodle/code-config.ts';
import { describeError } from '../moodle/db-errors.ts';
import { CLI_MAINTENANCE_FILE, removeMaintenanceFile, writeMaintenanceFile } from '../moodle/maintenance.ts';
import type { PhpScripts } from '../moodle/php.ts';
import type { MoodleTarget } from '../moodle/target.ts';
import { nodeOfDataroot, type NodeConfig } from '../nodes.ts';
import type { RunServices } from '../executor/run-services.ts';
import { redisNodeLock } from './lock.ts';
import { deliveryLayout } from './state.ts';
import { nodeReport, runStep, type NodeReport, type StepRequest } from './steps.ts';
import { runTool } from './tools.ts';
import { exists } from '../lifecycle/dataroot.ts';

/** VMoodle's wrappers a restore runs for each instance: core's upgrade.php and purge_caches.php with --host. */
export const UPGRADE_SCRIPTS: PhpScripts = {
  upgrade: { 'is-pending': 'flag', 'non-interactive': 'flag' },
  purge_caches: {},
};

/** A Moodle upgrade runs as long as its upgrade steps need: far longer than a setting's write. */
const UPGRADE_TIMEOUT_MS = 60 * 60_000;

/** What one instance's upgrade came to. */
export interface UpgradeReport {
  host: string;
  shortname: string;
  ok: boolean;
  /** upgraded, up to date, or failed. */
  outcome: 'upgraded' | 'up to date' | 'failed';
  message: string;
}

/** The work a delivery asks of one node's own worker, by name, with what each is given and answers. */
export interface NodeTasks {
  'delivery-step': { payload: StepRequest; answer: NodeReport };
  /** CLI maintenance on for the served sites whose dataroot the node mounts (those it made, by host key), or off again. */
  'delivery-maintenance': { payload: { on: true } | { on: false; hosts: string[] }; answer: { hosts: string[] } };
  'delivery-upgrade': { payload: { host: string }; answer: UpgradeReport };
  'delivery-opcache': { payload: Record<string, never>; answer: { ok: boolean; message: string } };
}

export type NodeTaskName = keyof NodeTasks;

export const hostKey = (target: MoodleTarget) => `${target.host.kind}:${target.host.id}`;

/**
 * The sites a delivery's code serves: the master and the enabled instances whose dataroot is on a node. Disabled
 * ones are named, since their database will need the upgrade before they are enabled again.
 */
export async function servedSites(ctx: CommandContext, nodes: readonly NodeConfig[]): Promise<{ served: Array<{ target: MoodleTarget; node: string }>; disabled: string[] }> {
  const placed = (await ctx.members()).flatMap((m) => {
    const node = nodeOfDataroot(nodes, m.target.dataroot);
    return node ? [{ member: m, node: node.name }] : [];
  });
  return {
    served: placed.filter((p) => p.member.enabled).map((p) => ({ target: p.member.target, node: p.node })),
    disabled: placed.filter((p) => !p.member.enabled).map((p) => p.member.name),
  };
}

/** Writes Moodle's CLI maintenance page into a site's dataroot, as maintenance.php --enable does; false when it was there. */
async function enterCliMaintenance(ctx: CommandContext, target: MoodleTarget): Promise<boolean> {
  const dataroot = target.dataroot as string;
  if (await exists(join(dataroot, CLI_MAINTENANCE_FILE))) return false;
  const { filePermissions } = await sitePaths(ctx.codeRoot(target), dataroot);
  await ctx.moodle.withStatements(target, (sql) => writeMaintenanceFile(ctx.moodle, sql, target, '', filePermissions), false);
  return true;
}

/** The run's first line Moodle wrote to say what happened, for a result. */
const said = (text: string, pattern: RegExp) => text.split('\n').map((l) => l.trim()).find((l) => pattern.test(l));

/**
 * One instance's upgrade, once, on the node that holds it: `upgrade.php --is-pending` decides (Moodle compares only
 * `allversionshash`, moodle-facts §3.7); a pending upgrade runs non-interactively under CLI maintenance (left on
 * when the site was in it already); then Moodle purges the caches of the new code.
 */
async function upgradeSite(ctx: CommandContext, target: MoodleTarget): Promise<UpgradeReport> {
  const base = { host: hostKey(target), shortname: target.host.shortname };
  const failed = (message: string): UpgradeReport => ({ ...base, ok: false, outcome: 'failed', message });
  try {
    const pending = await ctx.php(target, 'upgrade', { 'is-pending': true });
    if (pending.exitCode !== 0 && pending.exitCode !== 2) return failed(pending.message);
    let message = 'no upgrade pending';
    if (pending.exitCode === 2) {
      const made = await enterCliMaintenance(ctx, target);
      let run;
      try {
        run = await ctx.php(target, 'upgrade', { 'non-interactive': true }, UPGRADE_TIMEOUT_MS);
      } finally {
        if (made) await removeMaintenanceFile(target);
      }
      if (!run.ok) return failed(`${run.message}; CLI maintenance is as it was before`);
      message = said(run.stdout, /^Command line upgrade from .* completed successfully\.$/) ?? 'upgraded';
    }
    const purge = await ctx.php(target, 'purge_caches');
    if (!purge.ok) return failed(`${message}, but the cache purge failed: ${purge.message}`);
    return { ...base, ok: true, outcome: pending.exitCode === 2 ? 'upgraded' : 'up to date', message: `${message}; caches purged` };
  } catch (err) {
    return failed(describeError(err));
  }
}

/** Tells Redis where a node stands, for status views on machines that cannot read its files. */
async function publish(rt: RunServices, report: NodeReport): Promise<NodeReport> {
  await rt.redis.set(rt.keys.deliveryState(report.node), JSON.stringify({ ...report, at: Date.now() }));
  return report;
}

/** Says where this node stands as its worker starts, so that status views and plans know before any step. */
export async function publishNodeReport(rt: RunServices, node: NodeConfig): Promise<void> {
  await publish(rt, await nodeReport(deliveryLayout(node)));
}

/** Runs one task on this node, for the delivery run that asked for it. */
export async function runNodeTask<K extends NodeTaskName>(rt: RunServices, node: NodeConfig, task: K, payload: NodeTasks[K]['payload']): Promise<NodeTasks[K]['answer']> {
  const layout = deliveryLayout(node);
  // Only the tasks on sites read the registry: a step on the trees needs none of it.
  const sites = async () => {
    const fleet = await rt.registry.loadFleet();
    return { fleet, ctx: rt.commandContext(rt.moodleTarget(fleet, fleet.masterHost), { phpScripts: UPGRADE_SCRIPTS }, false, fleet) };
  };
  const answer = async (): Promise<unknown> => {
    switch (task) {
      case 'delivery-step':
        return publish(rt, await runStep(layout, payload as StepRequest, redisNodeLock(rt.redis, (n) => rt.keys.deliveryLock(n), rt.log)));
      case 'delivery-maintenance': {
        const asked = payload as NodeTasks['delivery-maintenance']['payload'];
        const { ctx } = await sites();
        const mine = (await servedSites(ctx, [node])).served.map((s) => s.target);
        if (!asked.on) {
          for (const target of mine.filter((t) => asked.hosts.includes(hostKey(t)))) await removeMaintenanceFile(target);
          return { hosts: asked.hosts };
        }
        const made: string[] = [];
        for (const target of mine) if (await enterCliMaintenance(ctx, target)) made.push(hostKey(target));
        return { hosts: made };
      }
      case 'delivery-upgrade': {
        const { fleet, ctx } = await sites();
        const [kind, id] = (payload as { host: string }).host.split(':');
        const host = fleet.byKindAndId(kind as string, Number(id));
        if (!host) return { host: (payload as { host: string }).host, shortname: '?', ok: false, outcome: 'failed', message: 'no longer in the registry' } satisfies UpgradeReport;
        return upgradeSite(ctx, rt.moodleTarget(fleet, host));
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
    }
    throw new Error(`unknown node task ${String(task)}`);
  };
  return (await answer()) as NodeTasks[K]['answer'];
}
