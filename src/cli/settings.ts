import type { Command } from 'commander';
import { dbHostKey } from '../ops/moodle/target.ts';
import { readSettingsFile, settingsDocument, settingsYaml } from '../settings.ts';
import { cliActor } from './verbs.ts';
import type { CliContext } from './context.ts';

/**
 * The security settings, on the command line only: whoever holds the master's credentials is its admin by
 * definition (docs/security.md), and a chat never writes them.
 */
export function registerSettings(program: Command, ctx: CliContext): void {
  const settings = program.command('settings').description('the security settings kept in the master: RBAC, approval policy, allowed database servers');

  settings
    .command('show')
    .description('print the settings as YAML, the form settings import reads')
    .addHelpText('after', '\nExample:\n  vmoodle settings show > settings.yml')
    .action(async (_opts, cmd: Command) => {
      const out = ctx.output(cmd);
      const store = await ctx.app().settings();
      const current = await store.read();
      const written = await store.written();
      out.data({ settings: settingsDocument(current), written: written ?? null });
      out.line(settingsYaml(current).trimEnd());
      if (written) out.line(`# written by ${written.by} at ${new Date(written.at).toISOString()}`);
    });

  settings
    .command('import <file>')
    .description('replace the settings with a YAML file (rbac, approval, db_servers), checked whole: a bad file changes nothing')
    .addHelpText('after', '\nExample:\n  vmoodle settings import settings.yml')
    .action(async (file: string, _opts, cmd: Command) => {
      const out = ctx.output(cmd);
      const parsed = readSettingsFile(file);
      await (await ctx.app().settings()).write(parsed, cliActor());
      out.data({ settings: settingsDocument(parsed) });
      out.line(`settings written: ${parsed.rbac ? `RBAC with ${Object.values(parsed.rbac.roles).flat().length} members` : 'no RBAC'}, approval above ${parsed.approval.threshold} targets, ${parsed.dbServers ? `${parsed.dbServers.length} allowed database servers` : 'no allowed database servers'}`);
    });

  settings
    .command('propose')
    .description('print the settings with db_servers proposed from the servers the registry uses, for review before import')
    .addHelpText('after', '\nExample:\n  vmoodle settings propose > settings.yml && $EDITOR settings.yml && vmoodle settings import settings.yml')
    .action(async (_opts, cmd: Command) => {
      const out = ctx.output(cmd);
      const app = ctx.app();
      const current = await app.security();
      const used = [...new Set((await (await app.registry()).loadAll()).map((i) => dbHostKey(i.vdbhost).toLowerCase()))].sort();
      const listed = new Map((current.dbServers ?? []).map((r) => [r.server, r]));
      const proposed = { ...current, dbServers: [...(current.dbServers ?? []), ...used.filter((s) => !listed.has(s)).map((server) => ({ server, tls: false }))] };
      out.data({ settings: settingsDocument(proposed), registryServers: used });
      out.line(`# The servers the registry uses: ${used.join(', ') || 'none'}. Review each (set tls: true and a ca where the server offers TLS), then: vmoodle settings import <this file>`);
      out.line(settingsYaml(proposed).trimEnd());
    });
}
