import { join } from 'node:path';
import type { MoodleSite } from './site.ts';
import { exists } from './dataroot.ts';
import { sitePaths } from './code-config.ts';
import { describeError } from '../../core/db/db-errors.ts';
import { CLI_MAINTENANCE_FILE, removeMaintenanceFile, writeMaintenanceFile } from './maintenance.ts';
import type { PhpResult, PhpScripts } from './php.ts';
import type { MoodleTarget } from './target.ts';

/** VMoodle's wrappers an upgrade runs, with --host: core's upgrade.php and purge_caches.php. */
export const UPGRADE_SCRIPTS: PhpScripts = {
  upgrade: { 'is-pending': 'flag', 'is-maintenance-required': 'flag', 'non-interactive': 'flag' },
  purge_caches: {},
};

/** A Moodle upgrade runs as long as its upgrade steps need: far longer than a setting's write. */
export const UPGRADE_TIMEOUT_MS = 60 * 60_000;

/** What upgrade.php prints (moodle-facts §3.7), read for what it means. */
const SAID = {
  pending: /^An upgrade is pending$/m,
  none: /^No upgrade needed for the installed version (.+)\. Thanks for coming anyway!$/m,
  upgraded: /^Command line upgrade from (.+) to (.+) completed successfully\.$/m,
  maintenance: /This upgrade WILL result in maintenance mode for users\./,
  noMaintenance: /This upgrade WILL NOT result in maintenance mode for users\./,
} as const;

const output = (run: PhpResult) => `${run.stdout}\n${run.stderr}`;

/** What `upgrade.php --is-pending` said: exit 2 with "An upgrade is pending", 0 with "No upgrade needed", else a failure. */
export type Pending = { pending: boolean; failed?: undefined } | { failed: string };

export function pendingOf(run: PhpResult): Pending {
  if (run.exitCode === 0 && run.ok) return { pending: false };
  // Exit 2 is also core's refusal of an unknown option: only the sentence says an upgrade waits.
  if (run.exitCode === 2 && SAID.pending.test(output(run))) return { pending: true };
  return { failed: run.message };
}

/** What `upgrade.php --is-maintenance-required` said of a pending upgrade: whether users will see maintenance. */
export function maintenanceOf(
  run: PhpResult,
): { maintenance: boolean | undefined; failed?: undefined } | { failed: string } {
  if (run.exitCode === 0 && run.ok) return { maintenance: undefined };
  if (run.exitCode === 3 && SAID.noMaintenance.test(output(run))) return { maintenance: false };
  if (run.exitCode === 2 && SAID.maintenance.test(output(run))) return { maintenance: true };
  return { failed: run.message };
}

/** What one site's upgrade came to. */
export interface UpgradeReport {
  host: string;
  shortname: string;
  ok: boolean;
  outcome: 'upgraded' | 'up to date' | 'failed';
  message: string;
  /** The versions Moodle said it upgraded between. */
  from?: string;
  to?: string;
}

export const hostKey = (target: MoodleTarget) => `${target.host.kind}:${target.host.id}`;

/** Writes Moodle's CLI maintenance page into a site's dataroot, as maintenance.php --enable does; false when it was there. */
export async function enterCliMaintenance(
  ctx: Pick<MoodleSite, 'moodle' | 'codeRoot'>,
  target: MoodleTarget,
): Promise<boolean> {
  const dataroot = target.dataroot as string;
  if (await exists(join(dataroot, CLI_MAINTENANCE_FILE))) return false;
  const { filePermissions } = await sitePaths(ctx.codeRoot(target), dataroot);
  await ctx.moodle.withStatements(
    target,
    (sql) => writeMaintenanceFile(ctx.moodle, sql, target, '', filePermissions),
    false,
  );
  return true;
}

/**
 * One site's upgrade, once, on the node that holds it: `upgrade.php --is-pending` decides (Moodle compares only
 * `allversionshash`, moodle-facts §3.7); a pending upgrade runs non-interactively under CLI maintenance (left on
 * when the site was in it already); then Moodle purges the caches of the new code.
 */
export async function upgradeSite(ctx: MoodleSite, target: MoodleTarget): Promise<UpgradeReport> {
  const base = { host: hostKey(target), shortname: target.host.shortname };
  const failed = (message: string): UpgradeReport => ({ ...base, ok: false, outcome: 'failed', message });
  try {
    const pending = pendingOf(await ctx.php(target, 'upgrade', { 'is-pending': true }));
    if (pending.failed !== undefined) return failed(pending.failed);
    let message = 'no upgrade pending';
    let upgraded: Pick<UpgradeReport, 'from' | 'to'> | undefined;
    if (pending.pending) {
      ctx.step('upgrading');
      const made = await enterCliMaintenance(ctx, target);
      let run;
      try {
        run = await ctx.php(target, 'upgrade', { 'non-interactive': true }, UPGRADE_TIMEOUT_MS);
      } finally {
        if (made) await removeMaintenanceFile(target);
      }
      if (!run.ok) return failed(`${run.message}; CLI maintenance is as it was before`);
      const done = SAID.upgraded.exec(run.stdout);
      const none = SAID.none.exec(output(run));
      // Another run may have upgraded it between the two calls: then Moodle says there was nothing to do.
      if (!none || done) upgraded = done ? { from: done[1] as string, to: done[2] as string } : {};
      message = done?.[0] ?? none?.[0] ?? 'upgraded (upgrade.php did not say between which versions)';
    }
    const purge = await ctx.php(target, 'purge_caches');
    if (!purge.ok) return failed(`${message}, but the cache purge failed: ${purge.message}`);
    return {
      ...base,
      ok: true,
      outcome: upgraded ? 'upgraded' : 'up to date',
      message: `${message}; caches purged`,
      ...upgraded,
    };
  } catch (err) {
    return failed(describeError(err));
  }
}
