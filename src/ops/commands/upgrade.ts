import { errorKind } from '../../core/errors.ts';
import { defineCommand, type CommandContext, type CommandDef } from './command.ts';
import {
  codeVersions,
  databaseVersions,
  versionGaps,
  versionText,
  type SiteVersions,
  type VersionGaps,
} from '../moodle/code-versions.ts';
import { describeError } from '../../core/db/db-errors.ts';
import { PhpError } from '../moodle/php.ts';
import type { MoodleTarget } from '../moodle/target.ts';
import { maintenanceOf, pendingOf, upgradeSite, UPGRADE_SCRIPTS, UPGRADE_TIMEOUT_MS } from '../moodle/site-upgrade.ts';
import { READ_ONLY } from './traits.ts';

class UpgradeRefusal extends errorKind('target') {}

/** Plugins named in a message at most; the count says how many there are. */
const NAMED_PLUGINS = 5;

const named = (items: string[]) =>
  `${items.slice(0, NAMED_PLUGINS).join(', ')}${items.length > NAMED_PLUGINS ? ` and ${items.length - NAMED_PLUGINS} more` : ''}`;

/** What the database and the node's code say a site runs, and where they differ. */
interface Versions {
  db: SiteVersions;
  code: SiteVersions;
  gaps: VersionGaps;
  node: string;
}

const readDatabase = (ctx: CommandContext, target: MoodleTarget) =>
  ctx.moodle.withStatements(target, (sql) => databaseVersions(ctx.moodle, sql, target), false);

/** The database's versions (read now unless given) against the code of the site's node. */
async function readVersions(ctx: CommandContext, target: MoodleTarget, known?: SiteVersions): Promise<Versions> {
  const codeRoot = ctx.codeRoot(target);
  if (!codeRoot)
    throw new UpgradeRefusal("no node holds this site's dataroot, so there is no code to compare its database with");
  const db = known ?? (await readDatabase(ctx, target));
  const code = await codeVersions(codeRoot);
  return { db, code, gaps: versionGaps(db, code), node: codeRoot };
}

/** The differences an operator reads: core's, then plugins newer, older, added and missing. */
function gapsText({ db, code, gaps }: Versions): string[] {
  return [
    gaps.core === 'same'
      ? `core ${versionText(db)} in both`
      : `core ${versionText(db)} → ${versionText(code)}${gaps.core === 'older' ? ' (older code)' : ''}`,
    ...(gaps.newer.length
      ? [`${gaps.newer.length} plugins newer: ${named(gaps.newer.map((g) => `${g.plugin} ${g.from} → ${g.to}`))}`]
      : []),
    ...(gaps.older.length
      ? [
          `${gaps.older.length} plugins older in the code: ${named(gaps.older.map((g) => `${g.plugin} ${g.from} → ${g.to}`))}`,
        ]
      : []),
    ...(gaps.added.length ? [`${gaps.added.length} plugins to install: ${named(gaps.added)}`] : []),
    ...(gaps.missing.length ? [`${gaps.missing.length} installed plugins missing from the code`] : []),
  ];
}

/** Moodle refuses to run older code over a newer database: said before anything runs. */
function downgrade(v: Versions): string | undefined {
  const older = [
    ...(v.gaps.core === 'older' ? [`core ${v.db.core?.text} → ${v.code.core?.text}`] : []),
    ...v.gaps.older.map((g) => `${g.plugin} ${g.from} → ${g.to}`),
  ];
  if (older.length === 0) return undefined;
  return `refused: the code in ${v.node} is older than the database (${named(older)}); Moodle cannot downgrade, so deliver the newer code first. Nothing was run`;
}

export const checkStatus = defineCommand({
  name: 'upgrade/checkstatus',
  category: 'upgrade',
  summary: "Compare each site's database versions with its node's code, and ask Moodle whether an upgrade is pending",
  params: [],
  ...READ_ONLY,
  runsOn: 'php',
  phpScripts: UPGRADE_SCRIPTS,
  async apply(ctx, target) {
    const versions = await readVersions(ctx, target);
    // Moodle decides by the hash of every version.php (allversionshash, moodle-facts §3.7), which only it computes.
    const pending = pendingOf(await ctx.php(target, 'upgrade', { 'is-pending': true }));
    if (pending.failed !== undefined) throw new PhpError(pending.failed);
    let said = 'upgrade.php: no upgrade pending';
    if (pending.pending) {
      const need = maintenanceOf(await ctx.php(target, 'upgrade', { 'is-maintenance-required': true }));
      const users =
        need.failed !== undefined
          ? `whether users will see maintenance is not known (${need.failed})`
          : need.maintenance === false
            ? 'users will not be put in maintenance'
            : 'users will be put in maintenance';
      said = `upgrade.php: an upgrade is pending; ${users}`;
    }
    const refusal = downgrade(versions);
    return {
      status: 'applied',
      message: [
        ...gapsText(versions),
        said,
        ...(refusal ? ['an upgrade would be refused: the code is older'] : []),
      ].join('; '),
      value: JSON.stringify({
        database: { version: versions.db.core?.text ?? null, release: versions.db.release ?? null },
        code: { version: versions.code.core?.text ?? null, release: versions.code.release ?? null },
        pending: pending.pending,
        newer: versions.gaps.newer,
        older: versions.gaps.older,
        added: versions.gaps.added,
        missing: versions.gaps.missing.length,
      }),
    };
  },
});

export const upgrade = defineCommand({
  name: 'upgrade/upgrade',
  category: 'upgrade',
  summary: "Upgrade each site's database to the code its node serves, with Moodle's CLI upgrade under CLI maintenance",
  params: [],
  destructive: true,
  reversible: false,
  idempotent: true,
  needsSource: false,
  writes: true,
  runsOn: 'php',
  phpScripts: UPGRADE_SCRIPTS,
  timeoutSeconds: UPGRADE_TIMEOUT_MS / 1000,
  async preview(ctx, target) {
    const db = await readDatabase(ctx, target);
    if (!ctx.codeRoot(target))
      return { old: versionText(db), note: 'no node holds its dataroot: it cannot be upgraded' };
    try {
      const v = await readVersions(ctx, target, db);
      return { old: versionText(db), new: versionText(v.code), note: downgrade(v) ?? gapsText(v).join('; ') };
    } catch (err) {
      // The plan may be made where the nodes' code cannot be read; the node reads it before upgrading.
      return {
        old: versionText(db),
        note: `the code is read on its node when the upgrade runs (${describeError(err)})`,
      };
    }
  },
  async apply(ctx, target) {
    const versions = await readVersions(ctx, target);
    const refusal = downgrade(versions);
    if (refusal) throw new UpgradeRefusal(refusal);
    const report = await upgradeSite(ctx, target);
    if (!report.ok) throw new PhpError(report.message);
    if (report.outcome === 'up to date')
      return {
        status: 'already_applied',
        old: versionText(versions.db),
        new: versionText(versions.db),
        message: report.message,
      };
    const after = await readDatabase(ctx, target);
    return {
      status: 'applied',
      old: report.from ?? versionText(versions.db),
      new: report.to ?? versionText(after),
      message: report.message,
    };
  },
});

export const UPGRADE_COMMANDS: readonly CommandDef[] = [checkStatus, upgrade];
