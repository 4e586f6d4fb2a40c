import type { Command as LineParser } from 'commander';
import { UsageError } from '../core/errors.ts';
import { instanceHost } from '../registry/fleet.ts';
import { instanceTarget, masterTarget } from '../ops/moodle/target.ts';
import type { CliContext } from './context.ts';

interface PackFlags {
  from: string;
  to: string;
  out?: string;
  newDirroot: string;
  newDbhost?: string;
  newDatarootRoot?: string;
  backupDir: string;
  webUser: string;
  php: string;
  master: boolean;
  withCredentials?: boolean;
  dryRun?: boolean;
}

/**
 * The yearly move to the next Moodle version (seed 003, VMoodle's generatecopyscripts): scripts written on the
 * command line, for an admin to read, rehearse and run on the machines; nothing here touches a site.
 */
export function registerMigration(program: LineParser, ctx: CliContext): void {
  const migration = program
    .command('migration')
    .description('the move of the fleet to the next Moodle version, built beside the live one');

  migration
    .command('pack [names...]')
    .description(
      'write, per site (the master and every enabled instance, or those named), the scripts that build its next version beside it, and a checklist',
    )
    .requiredOption('--from <version>', 'the live version word, as in the names (e.g. 45)')
    .requiredOption('--to <version>', 'the next version word (e.g. 50)')
    .requiredOption('--new-dirroot <path>', "the next version's Moodle code tree on the new machine")
    .option('--out <folder>', 'where the pack is written (not with --dry-run)')
    .option('--new-dbhost <host:port>', "the new database server (default: each site's own)")
    .option(
      '--new-dataroot-root <folder>',
      'where the new dataroots go, each keeping its folder name (default: beside the old, renamed)',
    )
    .option('--backup-dir <folder>', "where step 1 keeps the databases' dumps", '/var/backups/vmoodle-migration')
    .option('--web-user <name>', "the web server's user Moodle's PHP runs as ('' for the caller)", 'www-data')
    .option('--php <path>', 'the PHP CLI on the new machine', '/usr/bin/php')
    .option('--no-master', 'leave the master out')
    .option(
      '--with-credentials',
      'also write the MySQL option files with the logins from the registry (mode 0600); otherwise the checklist says what to put in them',
    )
    .option('--dry-run', 'print what each script would do; write nothing')
    .addHelpText(
      'after',
      '\nExamples:\n  vmoodle migration pack --from 45 --to 50 --new-dirroot /var/www/moodle50 --dry-run\n  vmoodle migration pack --from 45 --to 50 --new-dirroot /var/www/moodle50 --out /root/move-50 law arts',
    )
    .action(async (names: string[], flags: PackFlags, cmd: LineParser) => {
      const out = ctx.output(cmd);
      if (!flags.dryRun && !flags.out)
        throw new UsageError('--out is needed to write the pack (or --dry-run to see it)');
      const app = ctx.app();
      const registry = await app.registry();
      const fleet = await registry.loadFleet();
      const instances = names.length
        ? await Promise.all(names.map((n) => registry.get(n)))
        : fleet.instances.filter((i) => i.enabled);
      const { migrationPack } = await import('../ops/lifecycle/migration-pack.ts');
      const masterSite = {
        kind: 'master' as const,
        shortname: fleet.masterHost.shortname,
        wwwroot: app.config.master.wwwroot ?? '',
        target: masterTarget(fleet.masterHost, app.config, app.urls.mysqlUrl),
      };
      if (!masterSite.wwwroot)
        throw new UsageError("the master's wwwroot is not configured (VMOODLE_MASTER_WWWROOT): the pack needs it");
      const sites = [
        ...(flags.master ? [masterSite] : []),
        ...instances.map((i) => ({
          kind: 'instance' as const,
          shortname: i.shortname,
          wwwroot: i.vhostname,
          target: instanceTarget(instanceHost(i), i),
        })),
      ];
      if (sites.length === 0) throw new UsageError('no site to move');
      const options = {
        from: flags.from,
        to: flags.to,
        newDirroot: flags.newDirroot,
        newDbHost: flags.newDbhost,
        newDatarootRoot: flags.newDatarootRoot,
        backupDir: flags.backupDir,
        webUser: flags.webUser,
        php: flags.php,
      };
      const pack = await migrationPack(sites, masterSite, options, {
        out: flags.dryRun ? undefined : flags.out,
        withCredentials: flags.withCredentials === true,
      });
      out.data({
        dryRun: flags.dryRun === true,
        sites: pack.entries.map((e) => ({ site: e.site.shortname, env: e.env, steps: e.steps })),
        written: pack.written,
      });
      out.table(
        ['SITE', 'SCRIPT', 'WHAT IT DOES'],
        pack.entries.flatMap((e) => e.steps.map((s) => [e.site.shortname, s.file, s.summary])),
      );
      out.line(
        flags.dryRun
          ? `dry run: ${pack.entries.length} sites, nothing written`
          : `wrote the pack for ${pack.entries.length} sites into ${flags.out}: start with its CHECKLIST.md`,
      );
    });
}
